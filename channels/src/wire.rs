//! The byte form of a message, for crossing between protection domains: how a message goes between a ring-0
//! channel and a ring-3 SIP, which never sees the exchange heap (docs/protection.md, "How a message crosses").
//!
//! Every exchangeable type encodes itself (`Exchangeable::__encode`, consuming the value: blocks are freed as
//! they are written out, endpoints move into the platform's handle table) and decodes itself
//! (`Exchangeable::__decode`, building fresh blocks charged to the caller and taking endpoints out of the
//! table). The impls are written by this crate and by the trusted macros of `contracts`, like `__visit`.
//!
//! The format: integers little-endian at their width (`usize`/`isize` as 64 bits), `bool` one byte (0 or 1),
//! `char` its scalar value in four bytes, `f32`/`f64` their bits; an enum, `Option` and `Result` a variant index
//! (one byte for `Option`/`Result`, four for enums) then that variant's fields; an array its elements; an `ExBox`
//! its value; an `ExVec` its length (four bytes) then its elements; an `ExString` its length then UTF-8; an
//! endpoint its handle (four bytes); an `ExAny` its type's name (as a string) then its value.
//!
//! Against a hostile encoder (a ring-3 SIP writes the bytes the kernel decodes): decoding is safe code that
//! checks every tag, length and handle and answers a [`WireError`], never a panic; it recurses at most
//! [`MAX_DEPTH`] boxes deep and makes at most as many elements as the input has bytes (plus a small allowance for
//! zero-sized ones), so neither the kernel's stack nor its time depends on a length the sender wrote. Encoding
//! is bounded the same way ([`MAX_DEPTH`], [`MAX_MESSAGE`]), because a ring-0 sender may hand the kernel a list
//! a million boxes deep. A message that cannot cross fails its channel; nothing else.
//!
//! Not here: the handle tables (the kernel side is [`proxy`](crate::proxy), the ring-3 side is the ring-3
//! transport's own handles) and the calls that move the bytes.

use crate::exany::ExAny;
use crate::exchangeable::Exchangeable;
#[cfg(not(feature = "ring3"))]
use alloc::boxed::Box;
use alloc::vec::Vec;
#[cfg(not(feature = "ring3"))]
use core::any::Any;
use core::any::TypeId;
use core::fmt;

/// The deepest a message may nest boxes (and vectors of boxes, and `ExAny`s) to cross a protection boundary.
/// The kernel decodes and encodes on a ring-3 thread's 16 KiB kernel stack, one frame chain per level (about 450
/// bytes a level for the largest frames measured in the kernel build): 16 levels take under half of it.
pub const MAX_DEPTH: u32 = 16;

/// The most bytes one message may take in its byte form.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Bytes an encoder keeps in itself before it uses its buffer: a short message (a tag and three words, most
/// messages of the system contracts) is encoded without touching the heap, and crosses in registers.
pub const SHORT_MESSAGE: usize = 32;

/// `Encoder::short_len` once the message has outgrown the inline bytes.
const SPILLED: usize = usize::MAX;

/// Zero-sized elements a decoded message may hold beyond one per input byte.
const ELEMENT_ALLOWANCE: usize = 4096;

/// Why a message could not be encoded or decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WireError {
    /// The bytes end before the value does.
    Truncated,
    /// Bytes left over after the value.
    Trailing,
    /// A tag, `bool`, `char`, UTF-8 text or length that no value of the type has.
    BadValue,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Longer than [`MAX_MESSAGE`], or more elements than the bytes can describe.
    TooLong,
    /// A handle that names no endpoint of the caller's, or one of another type.
    BadHandle,
    /// Too many endpoints held through handles.
    TooManyHandles,
    /// The exchange (or the caller's quota) cannot hold the decoded value.
    OutOfMemory,
    /// A value of a type that cannot cross (an `ExAny` of an unregistered type, a raw channel of no contract).
    Unsupported,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "message truncated",
            WireError::Trailing => "bytes after the message",
            WireError::BadValue => "a value no message of the type has (bad tag, bool, char, text or length)",
            WireError::TooDeep => "message nested too deeply to cross",
            WireError::TooLong => "message too long to cross",
            WireError::BadHandle => "no such endpoint handle (or one of another type)",
            WireError::TooManyHandles => "too many endpoints held",
            WireError::OutOfMemory => "exchange heap exhausted (or exchange quota spent)",
            WireError::Unsupported => "a value of this type cannot cross a protection boundary",
        })
    }
}

/// An endpoint held for a ring-3 SIP, type-erased (the kernel side: [`Proxied`](crate::proxy::Proxied)).
#[cfg(not(feature = "ring3"))]
pub type Held = Box<dyn crate::proxy::Proxied>;
/// In ring 3 endpoints are handles already: nothing is held for them.
#[cfg(feature = "ring3")]
pub type Held = core::convert::Infallible;

/// Where endpoints go when a message is encoded and come from when it is decoded: the handle table of the
/// ring-3 SIP the message crosses to or from. [`Endpoints::take_as`] hands an endpoint out only if it has the
/// type the decoder expects, and leaves it in place otherwise.
pub trait Endpoints {
    /// Keeps `endpoint` and names it by a new handle.
    fn put(&mut self, endpoint: Held) -> Result<u32, WireError>;

    /// Takes the endpoint named `handle` if it is of the type `expected` (a `RawEndpoint`'s).
    fn take_as(&mut self, handle: u32, expected: TypeId) -> Result<Held, WireError>;

    /// Drops (closes) the endpoint named `handle`: one an encoding put there, of a message that then could not
    /// be encoded whole.
    fn discard(&mut self, handle: u32);
}

/// Records the handles an encoding gives out, so a failed one can take them back.
struct Recording<'a> {
    inner: &'a mut dyn Endpoints,
    put: Vec<u32>,
}

#[cfg_attr(feature = "ring3", allow(unreachable_code, reason = "nothing is held for a ring-3 SIP: `Held` is empty"))]
impl Endpoints for Recording<'_> {
    fn put(&mut self, endpoint: Held) -> Result<u32, WireError> {
        self.put.try_reserve(1).map_err(|_| WireError::OutOfMemory)?;
        let handle = self.inner.put(endpoint)?;
        self.put.push(handle);
        Ok(handle)
    }

    fn take_as(&mut self, handle: u32, expected: TypeId) -> Result<Held, WireError> {
        self.inner.take_as(handle, expected)
    }

    fn discard(&mut self, handle: u32) {
        self.inner.discard(handle);
    }
}

/// A message on its way out: its bytes so far, its depth, and where its endpoints go.
pub struct Encoder<'a> {
    /// The message's bytes while it is short.
    short: [u8; SHORT_MESSAGE],
    /// How many of `short` are the message's, or [`SPILLED`]: the message is longer, all of it in `bytes`.
    short_len: usize,
    /// The message's bytes once it is longer than [`SHORT_MESSAGE`] (a buffer kept for reuse until then).
    bytes: Vec<u8>,
    depth: u32,
    /// Elements of vectors and strings so far: the decoder allows no more than the bytes plus an allowance.
    elements: usize,
    #[cfg_attr(feature = "ring3", allow(dead_code, reason = "ring-3 endpoints are handles already"))]
    endpoints: &'a mut dyn Endpoints,
}

impl<'a> Encoder<'a> {
    /// An encoder that goes on in `bytes` (empty: a buffer kept for its capacity) once the message is longer
    /// than [`SHORT_MESSAGE`].
    #[inline]
    pub(crate) fn into(bytes: Vec<u8>, endpoints: &'a mut dyn Endpoints) -> Self {
        Self { short: [0; SHORT_MESSAGE], short_len: 0, bytes, depth: 0, elements: 0, endpoints }
    }

    /// The message's length so far.
    #[inline]
    fn len(&self) -> usize {
        if self.short_len == SPILLED { self.bytes.len() } else { self.short_len }
    }

    /// Whether the decoder will accept as many elements as were encoded (zero-sized ones take no bytes).
    #[inline]
    pub(crate) fn check_elements(&self) -> Result<(), WireError> {
        if self.elements > self.len() + ELEMENT_ALLOWANCE { Err(WireError::TooLong) } else { Ok(()) }
    }

    /// The message in the buffer the encoder was given.
    #[inline]
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, WireError> {
        if self.short_len != SPILLED {
            self.bytes.clear();
            self.bytes.try_reserve(self.short_len).map_err(|_| WireError::OutOfMemory)?;
            self.bytes.extend_from_slice(&self.short[..self.short_len]);
        }
        Ok(self.bytes)
    }

    /// The message: a short one as its bytes and length (the buffer the encoder was given comes back unused), a
    /// longer one in that buffer.
    #[inline]
    #[cfg_attr(not(feature = "ring3"), allow(dead_code, reason = "the ring-3 sends' encoding"))]
    pub(crate) fn finish_short(self) -> Finished {
        if self.short_len == SPILLED {
            return Finished::Long(self.bytes);
        }
        if self.bytes.capacity() == 0 {
            // Nothing to free: without this, dropping the unused buffer is a call.
            core::mem::forget(self.bytes);
        }
        Finished::Short(self.short, self.short_len)
    }

    /// Appends raw bytes.
    #[doc(hidden)]
    #[inline]
    pub fn put_bytes(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        let at = self.short_len;
        // `SPILLED` is above `SHORT_MESSAGE`: a spilled message never comes back here.
        if at <= SHORT_MESSAGE && bytes.len() <= SHORT_MESSAGE - at {
            // Byte by byte, not `copy_from_slice`: for the fixed lengths of integers this is one store, without
            // the overlap check a copy makes in a build with debug assertions.
            for (to, from) in self.short[at..].iter_mut().zip(bytes) {
                *to = *from;
            }
            self.short_len = at + bytes.len();
            return Ok(());
        }
        self.put_long(bytes)
    }

    /// Appends raw bytes to a message that is or becomes longer than [`SHORT_MESSAGE`].
    #[inline(never)]
    fn put_long(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        if self.len() + bytes.len() > MAX_MESSAGE {
            return Err(WireError::TooLong);
        }
        if self.short_len != SPILLED {
            self.bytes.clear();
            self.bytes.try_reserve(self.short_len + bytes.len()).map_err(|_| WireError::OutOfMemory)?;
            self.bytes.extend_from_slice(&self.short[..self.short_len]);
            self.short_len = SPILLED;
        }
        self.bytes.try_reserve(bytes.len()).map_err(|_| WireError::OutOfMemory)?;
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    /// Appends an enum's variant index.
    #[doc(hidden)]
    #[inline]
    pub fn put_tag(&mut self, tag: u32) -> Result<(), WireError> {
        self.put_bytes(&tag.to_le_bytes())
    }

    /// Appends a length.
    #[inline]
    pub(crate) fn put_len(&mut self, len: usize) -> Result<(), WireError> {
        self.elements = self.elements.saturating_add(len);
        let len = u32::try_from(len).map_err(|_| WireError::TooLong)?;
        self.put_bytes(&len.to_le_bytes())
    }

    /// Encodes `value` one level deeper (inside a box or a vector).
    pub(crate) fn nested<T: Exchangeable>(&mut self, value: T) -> Result<(), WireError> {
        if self.depth >= MAX_DEPTH {
            return Err(WireError::TooDeep);
        }
        self.depth += 1;
        let result = value.__encode(self);
        self.depth -= 1;
        result
    }

    /// Moves an endpoint into the handle table and appends its handle.
    #[cfg(not(feature = "ring3"))]
    pub(crate) fn put_endpoint(&mut self, endpoint: Held) -> Result<(), WireError> {
        let handle = self.endpoints.put(endpoint)?;
        self.put_bytes(&handle.to_le_bytes())
    }
}

/// An encoded message ([`Encoder::finish_short`]).
#[cfg_attr(not(feature = "ring3"), allow(dead_code, reason = "the ring-3 sends' encoding"))]
pub(crate) enum Finished {
    /// At most [`SHORT_MESSAGE`] bytes: the bytes and how many are the message's.
    Short([u8; SHORT_MESSAGE], usize),
    /// A longer one.
    Long(Vec<u8>),
}

/// A message on its way in: the bytes left, its depth, its element budget and where its endpoints come from.
pub struct Decoder<'a> {
    input: &'a [u8],
    depth: u32,
    /// Elements still allowed (module docs).
    elements: usize,
    #[cfg_attr(feature = "ring3", allow(dead_code, reason = "ring-3 endpoints are handles already"))]
    endpoints: &'a mut dyn Endpoints,
}

impl<'a> Decoder<'a> {
    #[inline]
    pub(crate) fn new(input: &'a [u8], endpoints: &'a mut dyn Endpoints) -> Self {
        Self { input, depth: 0, elements: input.len() + ELEMENT_ALLOWANCE, endpoints }
    }

    /// Whether every byte was used.
    #[inline]
    pub(crate) fn finish(self) -> Result<(), WireError> {
        if self.input.is_empty() { Ok(()) } else { Err(WireError::Trailing) }
    }

    /// Takes the next `N` bytes.
    #[doc(hidden)]
    #[inline]
    pub fn take_array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, rest) = self.input.split_first_chunk::<N>().ok_or(WireError::Truncated)?;
        self.input = rest;
        Ok(*head)
    }

    /// Bytes not read yet.
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.input.len()
    }

    /// Takes the next `len` bytes.
    #[inline]
    pub(crate) fn take_bytes(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        let (head, rest) = self.input.split_at_checked(len).ok_or(WireError::Truncated)?;
        self.input = rest;
        Ok(head)
    }

    /// Takes an enum's variant index.
    #[doc(hidden)]
    #[inline]
    pub fn take_tag(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take_array()?))
    }

    /// Takes a length of `len` elements, charged against the element budget.
    #[inline]
    pub(crate) fn take_len(&mut self) -> Result<usize, WireError> {
        let len = usize::try_from(u32::from_le_bytes(self.take_array()?)).map_err(|_| WireError::TooLong)?;
        self.elements = self.elements.checked_sub(len).ok_or(WireError::TooLong)?;
        Ok(len)
    }

    /// Decodes a `T` one level deeper.
    pub(crate) fn nested<T: Exchangeable>(&mut self) -> Result<T, WireError> {
        if self.depth >= MAX_DEPTH {
            return Err(WireError::TooDeep);
        }
        self.depth += 1;
        let result = T::__decode(self);
        self.depth -= 1;
        result
    }

    /// The endpoint named by the next handle, if it is a `T`.
    #[cfg(not(feature = "ring3"))]
    pub(crate) fn take_endpoint<T: Any>(&mut self) -> Result<T, WireError> {
        let handle = u32::from_le_bytes(self.take_array()?);
        let endpoint = self.endpoints.take_as(handle, TypeId::of::<T>())?;
        endpoint.into_any().downcast::<T>().map(|end| *end).map_err(|_| WireError::BadHandle)
    }
}

/// Encodes `message` for a ring-3 receiver; its endpoints move into `endpoints`. On an error the message is
/// gone: what it held is freed and its endpoints are closed (also those already put in the table).
pub fn encode<T: Exchangeable>(message: T, endpoints: &mut dyn Endpoints) -> Result<Vec<u8>, WireError> {
    encode_recorded(message, endpoints).map(|(bytes, _)| bytes)
}

/// [`encode`], and the handles the message's endpoints went under.
pub fn encode_recorded<T: Exchangeable>(
    message: T,
    endpoints: &mut dyn Endpoints,
) -> Result<(Vec<u8>, Vec<u32>), WireError> {
    encode_recorded_into(Vec::new(), message, endpoints)
}

/// [`encode_recorded`] into `buffer` (empty, kept from an earlier message for its capacity).
pub fn encode_recorded_into<T: Exchangeable>(
    buffer: Vec<u8>,
    message: T,
    endpoints: &mut dyn Endpoints,
) -> Result<(Vec<u8>, Vec<u32>), WireError> {
    let mut recording = Recording { inner: endpoints, put: Vec::new() };
    let mut encoder = Encoder::into(buffer, &mut recording);
    let encoded = message.__encode(&mut encoder).and_then(|()| encoder.check_elements());
    match encoded.and_then(|()| encoder.finish()) {
        Ok(bytes) => Ok((bytes, recording.put)),
        Err(error) => {
            for handle in recording.put {
                recording.inner.discard(handle);
            }
            Err(error)
        }
    }
}

/// Decodes a `T` from everything in `bytes`, taking its endpoints out of `endpoints`.
pub fn decode<T: Exchangeable>(bytes: &[u8], endpoints: &mut dyn Endpoints) -> Result<T, WireError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(WireError::TooLong);
    }
    let mut decoder = Decoder::new(bytes, endpoints);
    let value = T::__decode(&mut decoder)?;
    decoder.finish()?;
    Ok(value)
}

/// A table that holds no endpoints: for messages that carry none (a plain value, or a test).
pub struct NoEndpoints;

impl Endpoints for NoEndpoints {
    fn put(&mut self, _: Held) -> Result<u32, WireError> {
        Err(WireError::Unsupported)
    }

    fn take_as(&mut self, _: u32, _: TypeId) -> Result<Held, WireError> {
        Err(WireError::BadHandle)
    }

    fn discard(&mut self, _: u32) {}
}

/// A type whose values may cross inside an [`ExAny`]: its name on the wire and how to rebuild one. `contract!`
/// registers every endpoint type of its contract ([`VALUES`]); an `ExAny` of any other type does not cross.
pub struct AnyCrossing {
    /// The type's name (`core::any::type_name`: both sides are built by one compiler from one source).
    pub name: fn() -> &'static str,
    /// Decodes a value of the type and seals it in an `ExAny`.
    pub decode: fn(&mut Decoder<'_>) -> Result<ExAny, WireError>,
}

impl AnyCrossing {
    /// The entry for `E`.
    pub const fn of<E: Exchangeable>() -> Self {
        Self { name: core::any::type_name::<E>, decode: decode_any::<E> }
    }
}

fn decode_any<E: Exchangeable>(decoder: &mut Decoder<'_>) -> Result<ExAny, WireError> {
    let value = decoder.nested::<E>()?;
    ExAny::seal(value).map_err(|_| WireError::OutOfMemory)
}

/// Every type that may cross inside an `ExAny`.
#[linkme::distributed_slice]
pub static VALUES: [AnyCrossing];

/// The registered decoder for the type named `name`.
pub(crate) fn any_crossing(name: &[u8]) -> Option<&'static AnyCrossing> {
    VALUES.iter().find(|entry| (entry.name)().as_bytes() == name)
}

/// A contract whose channels a ring-3 SIP may open (registered by `contract!`): its raw pair's type name, as
/// the ring-3 side names it, and how to open one.
pub struct ChannelCrossing {
    /// `core::any::type_name` of the contract's raw pair (`ContractPair<C>`: the client's raw endpoint, then the
    /// server's), as the ring-3 side names what it opens.
    pub name: fn() -> &'static str,
    /// Opens a channel of the contract, both ends held for the caller.
    #[cfg(not(feature = "ring3"))]
    pub open: fn() -> Result<(Held, Held), crate::AllocError>,
}

impl ChannelCrossing {
    /// The entry for contract `C`.
    pub const fn of<C: crate::Contract>() -> Self {
        Self {
            name: core::any::type_name::<crate::ContractPair<C>>,
            #[cfg(not(feature = "ring3"))]
            open: open_pair::<C>,
        }
    }
}

#[cfg(not(feature = "ring3"))]
fn open_pair<C: crate::Contract>() -> Result<(Held, Held), crate::AllocError> {
    let (client, server) = crate::try_contract_pair::<C>()?;
    Ok((crate::proxy::hold(client), crate::proxy::hold(server)))
}

/// The channel of a SIP's startup value (`sip_runtime::Startup`: one `ExAny` to the new SIP, nothing back), the
/// one channel of no contract a ring-3 SIP may open: a ring-3 parent hands its child a value as a ring-0 one does.
/// What may travel in it is what may cross in any `ExAny` ([`VALUES`]).
#[linkme::distributed_slice(CHANNELS)]
static STARTUP_CHANNEL: ChannelCrossing = ChannelCrossing {
    name: core::any::type_name::<crate::raw::Pair<crate::ExAny, ()>>,
    #[cfg(not(feature = "ring3"))]
    open: open_startup,
};

#[cfg(not(feature = "ring3"))]
fn open_startup() -> Result<(Held, Held), crate::AllocError> {
    // The capacities of `Startup::new`'s own pair: one value, no answer.
    let (sender, receiver) = crate::raw::try_pair::<crate::ExAny, ()>(1, 0)?;
    Ok((crate::proxy::hold(sender), crate::proxy::hold(receiver)))
}

/// Every contract whose channels may be opened from ring 3.
#[linkme::distributed_slice]
pub static CHANNELS: [ChannelCrossing];

/// The contract whose pair type is named `name`.
pub fn channel_crossing(name: &[u8]) -> Option<&'static ChannelCrossing> {
    CHANNELS.iter().find(|entry| (entry.name)().as_bytes() == name)
}

/// Registers contract `$contract`'s channels and its endpoint types `$endpoint` as what may cross between ring
/// 0 and ring 3 ([`CHANNELS`], [`VALUES`]). Used by `contract!` only; a trusted macro of this crate, so the
/// registrations' `static`s are written here and not in the crates that declare contracts (the isolation audit
/// keeps statics out of those, as `sip_runtime::sip!` keeps the manifests').
#[doc(hidden)]
#[macro_export]
macro_rules! __register_crossings {
    ($contract:ty; $($endpoint:ty),* $(,)?) => {
        const _: () = {
            #[$crate::__linkme::distributed_slice($crate::wire::CHANNELS)]
            #[linkme(crate = $crate::__linkme)]
            static CHANNEL: $crate::wire::ChannelCrossing = $crate::wire::ChannelCrossing::of::<$contract>();
        };
        $(
            const _: () = {
                #[$crate::__linkme::distributed_slice($crate::wire::VALUES)]
                #[linkme(crate = $crate::__linkme)]
                static VALUE: $crate::wire::AnyCrossing = $crate::wire::AnyCrossing::of::<$endpoint>();
            };
        )*
    };
}

macro_rules! numbers {
    ($($t:ty),*) => {
        $(
            impl Wire for $t {
                #[inline]
                fn encode(self, out: &mut Encoder<'_>) -> Result<(), WireError> {
                    out.put_bytes(&self.to_le_bytes())
                }

                #[inline]
                fn decode(input: &mut Decoder<'_>) -> Result<Self, WireError> {
                    Ok(<$t>::from_le_bytes(input.take_array()?))
                }
            }
        )*
    };
}

/// The byte form of the plain leaves (used by their `Exchangeable` impls).
pub(crate) trait Wire: Sized {
    fn encode(self, out: &mut Encoder<'_>) -> Result<(), WireError>;
    fn decode(input: &mut Decoder<'_>) -> Result<Self, WireError>;
}

numbers!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64);

impl Wire for usize {
    fn encode(self, out: &mut Encoder<'_>) -> Result<(), WireError> {
        (self as u64).encode(out)
    }

    fn decode(input: &mut Decoder<'_>) -> Result<Self, WireError> {
        usize::try_from(u64::decode(input)?).map_err(|_| WireError::BadValue)
    }
}

impl Wire for isize {
    fn encode(self, out: &mut Encoder<'_>) -> Result<(), WireError> {
        (self as i64).encode(out)
    }

    fn decode(input: &mut Decoder<'_>) -> Result<Self, WireError> {
        isize::try_from(i64::decode(input)?).map_err(|_| WireError::BadValue)
    }
}

impl Wire for bool {
    fn encode(self, out: &mut Encoder<'_>) -> Result<(), WireError> {
        u8::from(self).encode(out)
    }

    fn decode(input: &mut Decoder<'_>) -> Result<Self, WireError> {
        match u8::decode(input)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::BadValue),
        }
    }
}

impl Wire for char {
    fn encode(self, out: &mut Encoder<'_>) -> Result<(), WireError> {
        u32::from(self).encode(out)
    }

    fn decode(input: &mut Decoder<'_>) -> Result<Self, WireError> {
        char::from_u32(u32::decode(input)?).ok_or(WireError::BadValue)
    }
}

impl Wire for () {
    fn encode(self, _: &mut Encoder<'_>) -> Result<(), WireError> {
        Ok(())
    }

    fn decode(_: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(())
    }
}
