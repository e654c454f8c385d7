//! Raw endpoints in the ring-3 build: handles to endpoints the kernel holds for this SIP, used through calls
//! (the [`Transport`] the ring-3 runtime installs), with messages crossing in their byte form
//! ([`wire`](crate::wire)). The API is the ring-0 build's, so `contract!`'s endpoints and every service compile
//! unchanged; docs/protection.md ("How a message crosses") has the design.
//!
//! Not here: the calls themselves (the ring-3 runtime implements [`Transport`] with `syscall`s), anything of
//! the exchange heap (a ring-3 SIP's blocks live in its own heap: [`LocalExchange`]).
//!
//! Invariants: an endpoint owns its handle; dropping it closes the handle, sending it inside a message hands
//! the handle to the kernel (the endpoint is forgotten, not closed). A refused send rebuilds the message from
//! its own bytes, which the kernel leaves untouched when it refuses (it looks at the peer before decoding), so
//! "a failed send gives the message back" holds here too. A message that cannot be put in its byte form at all
//! (nested deeper than `wire::MAX_DEPTH`, longer than `wire::MAX_MESSAGE`) ends the SIP with a panic that says
//! so: it cannot be given back, because encoding consumed it.

use crate::endpoint::{CallFailed, Closed};
use crate::exchangeable::Exchangeable;
use crate::platform::{self, AllocError, Blocking, Exchange, Owner};
pub use crate::raw_shared::{RecvWait, Status, TryRecvError, TrySendError};
use crate::trusted::Trusted;
use crate::walk::Walk;
use crate::wire::{self, Decoder, Encoder, Finished, NoEndpoints, WireError};
use alloc::vec::Vec;
use core::alloc::Layout;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

/// Why the kernel refused a send.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SendRefused {
    /// The peer is gone; the message's bytes and handles are untouched.
    Closed,
    /// The kernel refused the message or the handle (not a message of the channel, a full ring): the channel
    /// is broken and the message is gone.
    Broken,
}

/// Why a receive returned no message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RecvRefused {
    /// Nothing queued (only without waiting).
    Empty,
    /// Nothing queued and the peer is gone (or no such handle).
    Closed,
}

/// Why a send-then-receive ([`Transport::send_then_recv`]) returned no answer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CallRefused {
    /// The peer was gone before the send: nothing of the message was taken.
    NotSent,
    /// The message was sent, and the peer is gone without an answer (or no such handle).
    Closed,
    /// The kernel refused the message (as [`SendRefused::Broken`]).
    Broken,
}

/// The calls behind ring-3 endpoints, installed by the ring-3 runtime ([`install`]).
pub trait Transport: Sync {
    /// Opens a channel of the contract whose raw pair type is named `pair` (`core::any::type_name`): the two
    /// handles (client side, server side).
    fn open(&self, pair: &str) -> Result<(u32, u32), AllocError>;
    /// Sends `message` on `handle`.
    fn send(&self, handle: u32, message: Message<'_>) -> Result<(), SendRefused>;
    /// Receives the oldest message on `handle`, waiting for one if `wait`: a short one as it came back, in
    /// registers (`Ok(Some(..))`, `buffer` untouched); a longer one in `buffer` (replacing its contents, growing
    /// it as needed), `Ok(None)`.
    fn recv(&self, handle: u32, buffer: &mut Vec<u8>, wait: bool) -> Result<Option<Short>, RecvRefused>;
    /// Sends `bytes` on `handle`, then receives on it, waiting, as [`Transport::recv`] does: a request and its
    /// answer (or an answer and the next request). A transport that can do both in one call overrides this.
    fn send_then_recv(
        &self,
        handle: u32,
        message: Message<'_>,
        buffer: &mut Vec<u8>,
    ) -> Result<Option<Short>, CallRefused> {
        send_then_recv_in_two(self, handle, message, buffer)
    }
    /// The endpoint's state; `None` if `handle` names no endpoint.
    fn status(&self, handle: u32) -> Option<Status>;
    /// Whether the endpoints `a` and `b` are the two ends of one channel.
    fn are_peers(&self, a: u32, b: u32) -> bool;
    /// Blocks until one of `handles` has a message or a closed peer (or spuriously).
    fn wait_any(&self, handles: &[u32]);
    /// Closes `handle` (the peer sees `Closed`).
    fn close(&self, handle: u32);
    /// A typed endpoint was dropped mid-protocol (`Exchange::dropped_mid_protocol`): report it (the image logs
    /// it at debug level). Nothing by default.
    fn dropped_mid_protocol(&self, contract: &'static str, state: &'static str, side: &'static str) {
        let _ = (contract, state, side);
    }
}

/// A message in its byte form, on its way to the kernel.
#[derive(Clone, Copy)]
pub enum Message<'a> {
    /// At most `wire::SHORT_MESSAGE` bytes, as the little-endian words of the registers they cross in (the rest
    /// zero), and how many bytes.
    Short([u64; 4], usize),
    /// A longer one, which crosses through memory.
    Long(&'a [u8]),
}

/// A short message as it arrived, in the four registers of a call's answer.
pub struct Short {
    words: [[u8; 8]; 4],
    len: usize,
}

impl Short {
    /// The message of `len` bytes at the start of `words` (`None` if `len` is beyond them).
    pub fn new(words: [[u8; 8]; 4], len: usize) -> Option<Self> {
        (len <= 32).then_some(Self { words, len })
    }

    /// Its bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.words.as_flattened()[..self.len]
    }
}

/// [`Transport::send_then_recv`] as a send and then a receive, two calls (the default, and what a transport does
/// for a message too long for its one call).
pub fn send_then_recv_in_two<T: Transport + ?Sized>(
    transport: &T,
    handle: u32,
    message: Message<'_>,
    buffer: &mut Vec<u8>,
) -> Result<Option<Short>, CallRefused> {
    match transport.send(handle, message) {
        Ok(()) => transport.recv(handle, buffer, true).map_err(|_| CallRefused::Closed),
        Err(SendRefused::Closed) => Err(CallRefused::NotSent),
        Err(SendRefused::Broken) => Err(CallRefused::Broken),
    }
}

static TRANSPORT: spin::Once<&'static dyn Transport> = spin::Once::new();

/// Installs the ring-3 platform: `transport` for endpoints, this SIP's own heap for exchange blocks. Call it
/// before the first channel operation.
pub fn install(trusted: &Trusted, transport: &'static dyn Transport) -> Result<(), platform::AlreadyInstalled> {
    platform::install(trusted, platform::Platform { exchange: &LocalExchange, blocking: &LocalBlocking })?;
    TRANSPORT.call_once(|| transport);
    Ok(())
}

fn transport() -> &'static dyn Transport {
    match TRANSPORT.get() {
        Some(transport) => *transport,
        None => panic!("channels used in ring 3 before the transport was installed"),
    }
}

/// A ring-3 SIP's exchange blocks: its own heap (they cross by copy, so nobody else ever holds them), with no
/// records to keep.
pub struct LocalExchange;

// SAFETY: blocks come from the global allocator with the requested layout and go back to it once; ownership
// changes are no-ops (only this SIP ever holds its blocks; the kernel re-records what crosses).
unsafe impl Exchange for LocalExchange {
    fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: `layout` is non-zero-sized (the trait's contract).
        NonNull::new(unsafe { alloc::alloc::alloc(layout) }).ok_or(AllocError)
    }

    unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller promises `block` came from `allocate` with `layout`.
        unsafe { alloc::alloc::dealloc(block.as_ptr(), layout) }
    }

    fn open(&self, _: crate::ledger::ChannelId) {}

    fn send(&self, _: crate::ledger::Item, _: crate::ledger::RingId) {}

    fn receive(&self, _: crate::ledger::Item, _: crate::ledger::RingId) -> bool {
        true
    }

    fn give(&self, _: crate::ledger::Item, _: Owner, _: Owner) {}

    fn seal(&self, _: crate::ledger::Item, _: NonNull<u8>) {}

    fn unseal(&self, _: NonNull<u8>) -> bool {
        true
    }

    fn release(&self, _: crate::ledger::Side) {}

    fn dropped_mid_protocol(&self, contract: &'static str, state: &'static str, side: &'static str) {
        transport().dropped_mid_protocol(contract, state, side);
    }
}

/// Blocking in ring 3 happens in the kernel's calls; nothing here parks.
struct LocalBlocking;

impl Blocking for LocalBlocking {
    fn token(&self) -> u64 {
        0
    }

    fn wake(&self, _: u64) {}

    fn park(&self) {
        core::hint::spin_loop();
    }
}

/// One end of a raw channel, as a handle: sends `Tx`, receives `Rx`.
pub struct RawEndpoint<Tx, Rx> {
    handle: u32,
    /// Messages received so far (wrapping): rotates `select`'s polling order.
    consumed: usize,
    /// Owns the side; `!Sync` (the cell).
    _owns: PhantomData<(Tx, Rx, core::cell::Cell<()>)>,
}

/// The two ends of a raw channel: the first sends `A`s and receives `B`s, the second the reverse.
pub type Pair<A, B> = (RawEndpoint<A, B>, RawEndpoint<B, A>);

impl<Tx, Rx> RawEndpoint<Tx, Rx> {
    fn from_handle(handle: u32) -> Self {
        Self { handle, consumed: 0, _owns: PhantomData }
    }

    /// Gives up the handle without closing it (it travels in a message).
    fn into_handle(self) -> u32 {
        core::mem::ManuallyDrop::new(self).handle
    }
}

/// Opens a channel of a contract (the kernel knows which by the pair's type); capacities are the contract's.
/// Calls the allocation-error handler if the kernel cannot, as `Box::new` does. See [`try_pair`].
pub fn pair<A: Exchangeable, B: Exchangeable>(a_capacity: usize, b_capacity: usize) -> Pair<A, B> {
    match try_pair(a_capacity, b_capacity) {
        Ok(pair) => pair,
        Err(_) => alloc::alloc::handle_alloc_error(Layout::new::<Pair<A, B>>()),
    }
}

/// [`pair`], or the error if the kernel cannot open it (out of memory or quota, or a pair of no contract: only
/// contracts' channels cross into ring 3).
pub fn try_pair<A: Exchangeable, B: Exchangeable>(_: usize, _: usize) -> Result<Pair<A, B>, AllocError> {
    let (a, b) = transport().open(core::any::type_name::<Pair<A, B>>())?;
    Ok((RawEndpoint::from_handle(a), RawEndpoint::from_handle(b)))
}

/// The SIP's startup endpoint (what its parent handed it: `sip_runtime::Startup`), if it has one; the kernel
/// holds it under handle 0 (`proxy::HandleTable::STARTUP`). Trusted: only the runtime, once, may make it.
pub fn startup(trusted: &Trusted) -> Option<RawEndpoint<(), crate::ExAny>> {
    let _ = trusted;
    transport().status(0).map(|_| RawEndpoint::from_handle(0))
}

/// Something `select` can wait on: an endpoint's handle.
pub(crate) trait Readiness {
    fn handle(&self) -> u32;
}

impl<Tx, Rx> Readiness for RawEndpoint<Tx, Rx> {
    fn handle(&self) -> u32 {
        self.handle
    }
}

/// Blocks until one of `sources` is ready (through the kernel).
pub(crate) fn block_on(sources: &[&dyn Readiness]) {
    let handles: Vec<u32> = sources.iter().map(|source| source.handle()).collect();
    transport().wait_any(&handles);
}

/// The endpoints the SIP's pending future receives are waiting on, since its executor last took them
/// ([`take_interest`]): ring 3 leaves no token in a ring, so the executor (`sip_runtime::continuations::block_on`)
/// waits on these in the kernel when no future asked to be polled again at once.
static INTEREST: spin::Mutex<Vec<u32>> = spin::Mutex::new(Vec::new());

/// Notes that a future receive is waiting on `handle` (see [`INTEREST`]).
fn note_interest(handle: u32) {
    let mut interest = INTEREST.lock();
    if !interest.contains(&handle) {
        interest.push(handle);
    }
}

/// The endpoints this SIP's pending future receives wait on, taken (the executor's round starts afresh).
pub fn take_interest() -> Vec<u32> {
    core::mem::take(&mut *INTEREST.lock())
}

/// Blocks until one of `handles` has a message or a closed peer (or spuriously): what an executor does when its
/// futures wait only on receives ([`take_interest`]).
pub fn wait_for_any(handles: &[u32]) {
    transport().wait_any(handles);
}

/// A future select's wait: ring 3 leaves no token anywhere; the sources are noted as the executor's interest
/// ([`take_interest`]), which waits on them in the kernel. Reports "registered": the select polls again when
/// its executor does.
pub(crate) fn register_all<'a>(
    sources: impl Iterator<Item = &'a dyn Readiness> + Clone,
    waker: &core::task::Waker,
) -> Option<bool> {
    let _ = waker;
    sources.for_each(|source| note_interest(source.handle()));
    Some(true)
}

/// Nothing to take out (see [`register_all`]).
pub(crate) fn unregister_all<'a>(sources: impl Iterator<Item = &'a dyn Readiness>) {
    let _ = sources;
}

/// Closes an endpoint held inside a message being freed.
pub(crate) fn close_handle(handle: u32) {
    transport().close(handle);
}

impl<Tx, Rx> RawEndpoint<Tx, Rx> {
    pub(crate) fn readiness(&self) -> &dyn Readiness {
        self
    }

    pub(crate) fn consumed(&self) -> usize {
        self.consumed
    }

    /// The kernel's view; a handle it does not know (the kernel broke it) reads as a closed peer.
    fn status(&self) -> Status {
        transport().status(self.handle).unwrap_or(Status { peer_closed: true, ..Status::default() })
    }

    /// Whether the peer endpoint is gone.
    pub fn is_peer_closed(&self) -> bool {
        self.status().peer_closed
    }

    /// Messages waiting to be received.
    pub fn queued(&self) -> usize {
        self.status().queued
    }

    /// Messages sent and not yet received by the peer.
    pub fn in_flight(&self) -> usize {
        self.status().in_flight
    }

    /// The most messages that can be in flight towards the peer.
    pub fn send_capacity(&self) -> usize {
        self.status().send_capacity
    }

    /// The most messages that can be in flight towards us.
    pub fn recv_capacity(&self) -> usize {
        self.status().recv_capacity
    }

    /// Whether both endpoints share one channel (one is the other's peer).
    pub fn is_peer_of<A, B>(&self, other: &RawEndpoint<A, B>) -> bool {
        transport().are_peers(self.handle, other.handle)
    }
}

/// A message in its byte form, encoded here: a short one on the stack, as the words it crosses in.
enum Outgoing {
    Short([u64; 4], usize),
    Long(Vec<u8>),
}

impl Outgoing {
    #[inline]
    fn message(&self) -> Message<'_> {
        match self {
            Outgoing::Short(words, len) => Message::Short(*words, *len),
            Outgoing::Long(bytes) => Message::Long(bytes),
        }
    }

    /// The value it encodes, rebuilt (after a refused send), with the first `skip` bytes (a tag) left out.
    fn rebuild<T: Exchangeable>(&self, skip: usize) -> T {
        let short = match self {
            Outgoing::Short(words, len) => Some((words.map(u64::to_le_bytes), *len)),
            Outgoing::Long(_) => None,
        };
        let bytes = match (&short, self) {
            (Some((bytes, len)), _) => &bytes.as_flattened()[..*len],
            (None, Outgoing::Long(bytes)) => bytes.as_slice(),
            (None, Outgoing::Short(..)) => unreachable!("a short message has its bytes above"),
        };
        match wire::decode(bytes.get(skip..).unwrap_or_default(), &mut NoEndpoints) {
            Ok(value) => value,
            Err(error) => panic!("a refused message could not be rebuilt: {error}"),
        }
    }
}

/// `value`'s byte form after `tag` (if any); a value that has none ends the SIP (module docs).
#[inline]
fn encode<T: Exchangeable>(tag: Option<u32>, value: T) -> Outgoing {
    let mut endpoints = NoEndpoints;
    let mut out = Encoder::into(Vec::new(), &mut endpoints);
    let encoded = match tag {
        Some(tag) => out.put_tag(tag).and_then(|()| value.__encode(&mut out)),
        None => value.__encode(&mut out),
    }
    .and_then(|()| out.check_elements());
    match encoded {
        Ok(()) => match out.finish_short() {
            Finished::Short(bytes, len) => {
                let (words, _) = bytes.as_chunks::<8>();
                Outgoing::Short(core::array::from_fn(|i| u64::from_le_bytes(words[i])), len)
            }
            Finished::Long(bytes) => Outgoing::Long(bytes),
        },
        Err(error) => panic!("a message that cannot cross into the kernel: {error}"),
    }
}

/// The buffer receives take long messages into, kept for its capacity (a message then costs no allocation). A
/// receive holds its lock: a nested or concurrent use (none today) only allocates.
static RECV_BUFFER: spin::Mutex<Vec<u8>> = spin::Mutex::new(Vec::new());

impl<Tx: Exchangeable, Rx: Exchangeable> RawEndpoint<Tx, Rx> {
    /// Sends without blocking; gives the message back if the peer is gone.
    pub fn try_send(&mut self, message: Tx) -> Result<(), TrySendError<Tx>> {
        let bytes = encode(None, message);
        match transport().send(self.handle, bytes.message()) {
            Ok(()) => Ok(()),
            Err(SendRefused::Closed) => Err(TrySendError::PeerClosed(bytes.rebuild(0))),
            Err(SendRefused::Broken) => panic!("the kernel refused a message on a channel: channel broken"),
        }
    }

    /// Sends; gives the message back if the peer is gone.
    pub fn send(&mut self, message: Tx) -> Result<(), Tx> {
        self.try_send(message).map_err(TrySendError::into_inner)
    }

    /// Sends `wrap(payload)`, the variant `tag` of `Tx`, or gives `payload` back if the peer is gone.
    pub fn send_mapped<P: Exchangeable>(&mut self, payload: P, tag: u32, wrap: impl FnOnce(P) -> Tx) -> Result<(), P> {
        let _ = wrap;
        let bytes = encode(Some(tag), payload);
        match transport().send(self.handle, bytes.message()) {
            Ok(()) => Ok(()),
            Err(SendRefused::Closed) => Err(bytes.rebuild(4)),
            Err(SendRefused::Broken) => panic!("the kernel refused a message on a channel: channel broken"),
        }
    }

    /// [`send_mapped`](Self::send_mapped), then [`recv`](Self::recv), through one call where the transport has
    /// one (`CHANNEL_CALL`); the payload comes back if the peer was gone before the send.
    pub fn send_mapped_then_recv<P: Exchangeable>(
        &mut self,
        payload: P,
        tag: u32,
        wrap: impl FnOnce(P) -> Tx,
    ) -> Result<Rx, CallFailed<P>> {
        let _ = wrap;
        let bytes = encode(Some(tag), payload);
        let decode = |bytes: &[u8]| wire::decode(bytes, &mut NoEndpoints).map_err(|_| CallFailed::Closed);
        // The receive's buffer, as in `receive`.
        let mut kept = RECV_BUFFER.try_lock();
        let mut own = None;
        let buffer = match kept.as_deref_mut() {
            Some(buffer) => buffer,
            None => own.insert(Vec::new()),
        };
        let answer = match transport().send_then_recv(self.handle, bytes.message(), buffer) {
            Ok(Some(short)) => decode(short.bytes()),
            Ok(None) => decode(buffer),
            Err(CallRefused::NotSent) => Err(CallFailed::NotSent(bytes.rebuild(4))),
            Err(CallRefused::Closed) => Err(CallFailed::Closed),
            Err(CallRefused::Broken) => panic!("the kernel refused a message on a channel: channel broken"),
        };
        drop(kept);
        self.consumed = self.consumed.wrapping_add(usize::from(answer.is_ok()));
        answer
    }

    /// Receives without blocking.
    pub fn try_recv(&mut self) -> Result<Rx, TryRecvError> {
        self.receive(false).map_err(|refused| match refused {
            RecvRefused::Empty => TryRecvError::Empty,
            RecvRefused::Closed => TryRecvError::Closed,
        })
    }

    /// Receives, waiting in the kernel until a message arrives or the peer is gone.
    pub fn recv(&mut self) -> Result<Rx, Closed> {
        self.receive(true).map_err(|_| Closed)
    }

    /// [`recv`](Self::recv) as a future. In ring 3 there are no task tokens (docs/thread-models.md, decision 7):
    /// it looks, and while nothing is there notes the endpoint for its executor to wait on ([`poll_recv`]).
    ///
    /// [`poll_recv`]: Self::poll_recv
    pub async fn recv_async(&mut self) -> Result<Rx, Closed> {
        let mut wait = RecvWait::Fresh;
        core::future::poll_fn(|cx| self.poll_recv(cx, &mut wait)).await
    }

    /// One poll of a future receive (the typed receive's future, `crate::RecvTyped`): the message or `Closed`
    /// if there, else `Pending` with the endpoint noted for the executor to wait on (no tokens in ring 3:
    /// [`take_interest`]).
    #[doc(hidden)]
    pub fn poll_recv(
        &mut self,
        cx: &mut core::task::Context<'_>,
        _wait: &mut RecvWait,
    ) -> core::task::Poll<Result<Rx, Closed>> {
        let _ = cx;
        match self.try_recv() {
            Ok(message) => core::task::Poll::Ready(Ok(message)),
            Err(TryRecvError::Closed) => core::task::Poll::Ready(Err(Closed)),
            // The executor waits on the endpoint in the kernel, or polls again if another future asked it to.
            Err(TryRecvError::Empty) => {
                note_interest(self.handle);
                core::task::Poll::Pending
            }
        }
    }

    /// Nothing to take out: ring 3 leaves no token anywhere.
    #[doc(hidden)]
    pub fn forget_registration(&self) {}

    fn receive(&mut self, wait: bool) -> Result<Rx, RecvRefused> {
        // The kernel wrote these bytes from a typed message: a failure to decode them is the kernel's bug, and
        // the channel is treated as broken.
        let decode = |bytes: &[u8]| wire::decode(bytes, &mut NoEndpoints).map_err(|_| RecvRefused::Closed);
        // The buffer is offered to every receive, so a longer message costs one call too; a short one comes in
        // registers and leaves it alone. Used in place, held across the call: a second receive meanwhile (only
        // another thread's) takes a buffer of its own rather than wait.
        let mut kept = RECV_BUFFER.try_lock();
        let mut own = None;
        let buffer = match kept.as_deref_mut() {
            Some(buffer) => buffer,
            None => own.insert(Vec::new()),
        };
        let message = transport().recv(self.handle, buffer, wait).and_then(|short| match short {
            Some(short) => decode(short.bytes()),
            None => decode(buffer),
        });
        drop(kept);
        self.consumed = self.consumed.wrapping_add(usize::from(message.is_ok()));
        message
    }
}

impl<Tx, Rx> Drop for RawEndpoint<Tx, Rx> {
    fn drop(&mut self) {
        transport().close(self.handle);
    }
}

impl<Tx, Rx> fmt::Debug for RawEndpoint<Tx, Rx> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawEndpoint").field("handle", &self.handle).finish()
    }
}

// SAFETY: an endpoint holds its handle, visited (closed when freed); nothing else.
unsafe impl<Tx: Exchangeable, Rx: Exchangeable> Exchangeable for RawEndpoint<Tx, Rx> {
    fn __visit(&self, walk: &mut Walk<'_>) {
        walk.endpoint_handle(self.handle);
    }

    fn __encode(self, out: &mut Encoder<'_>) -> Result<(), WireError> {
        out.put_bytes(&self.into_handle().to_le_bytes())
    }

    fn __decode(input: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(Self::from_handle(u32::from_le_bytes(input.take_array()?)))
    }
}
