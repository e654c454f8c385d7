//! [`ExAny`]: one exchangeable value of any type, sealed in the exchange heap, with its type checked when it
//! is taken out. This is how endpoints of contracts a carrier does not know travel: a name service forwards a
//! client's fresh server end to a provider without naming its contract, and a parent hands a new SIP its first
//! value.
//!
//! Sealed: when an `ExAny` is made, everything its value holds (blocks, endpoints) is recorded as held *by the
//! `ExAny`'s block* (`ledger::Holder::Sealed`). From then on the `ExAny` travels as one block: a carrier that
//! receives and forwards it is charged for that block only, and never walks the value (what is sealed stays
//! charged to whoever paid for it when it was sealed); whoever opens it with [`ExAny::downcast`] takes
//! everything in it (and is charged for it), and whoever drops it unopened frees everything in it from the
//! records. So a value a carrier does not want (a huge one, or one of another type) costs the carrier nothing
//! and runs none of its code.
//!
//! Not here: any check of *which* contract a value speaks beyond its exact Rust type (the receiver asks for the
//! type it serves; anything else comes back to it unchanged).
//!
//! Invariants: an `ExAny` owns exactly one `ExBox<E>`'s block (as a raw pointer) for the `E` whose `TypeId` it
//! records, with everything `E` holds sealed in it; it is rebuilt into the box only with the same `E`
//! ([`ExAny::downcast`]), after everything is unsealed.

use crate::exbox::ExBox;
use crate::exchangeable::Exchangeable;
use crate::platform::{self, AllocError};
use crate::walk::{Action, Walk, walk};
use crate::wire::{Decoder, Encoder, WireError};
use core::alloc::Layout;
use core::any::TypeId;
use core::fmt;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

/// A type-erased exchangeable value in the exchange heap; sending it moves only a pointer and a type tag.
pub struct ExAny {
    /// From `ExBox::<E>::into_raw`.
    block: NonNull<u8>,
    /// `Layout::new::<E>()`.
    layout: Layout,
    type_id: TypeId,
    type_name: &'static str,
    /// Opens the `ExAny` as the `E` it is and encodes the value (`wire`): made by `new` for that `E`.
    encode: fn(ExAny, &mut Encoder<'_>) -> Result<(), WireError>,
}

// SAFETY: the value is `Send` (required by `new`; `seal` relies on `Exchangeable`'s contract, which makes every
// exchangeable type `Send`), and the `ExAny` is its only owner.
unsafe impl Send for ExAny {}

impl ExAny {
    /// Moves `value` into the exchange heap and seals it; gives it back if the heap (or the caller's exchange
    /// quota, which pays for the new block) is exhausted.
    pub fn new<E: Exchangeable + Send>(value: E) -> Result<Self, (E, AllocError)> {
        Self::seal(value)
    }

    /// [`ExAny::new`] without the `Send` bound, which every `Exchangeable` type meets by its contract (the
    /// decoder of `wire` makes `ExAny`s of registered types; a `Send` bound there would repeat every
    /// non-`Send` payload error of a contract at its registration).
    pub(crate) fn seal<E: Exchangeable>(value: E) -> Result<Self, (E, AllocError)> {
        let boxed = ExBox::try_new(value)?;
        if E::__TRACKED && size_of::<E>() != 0 {
            walk(&*boxed, Action::Seal(boxed_block(&boxed)));
        }
        Ok(Self {
            block: boxed.into_raw().cast(),
            layout: Layout::new::<E>(),
            type_id: TypeId::of::<E>(),
            type_name: core::any::type_name::<E>(),
            encode: encode_as::<E>,
        })
    }

    /// Whether the value is an `E`.
    pub fn is<E: Exchangeable>(&self) -> bool {
        self.type_id == TypeId::of::<E>()
    }

    /// The Rust type of the value (for error messages and listings; not a stable identifier).
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// The value, if it is an `E` and the caller's exchange quota can take everything it holds; otherwise the
    /// `ExAny` comes back unchanged (still sealed).
    pub fn downcast<E: Exchangeable + Send>(self) -> Result<E, Self> {
        self.open()
    }

    /// [`ExAny::downcast`] without the `Send` bound (see [`ExAny::seal`]).
    fn open<E: Exchangeable>(self) -> Result<E, Self> {
        if !self.is::<E>() {
            return Err(self);
        }
        if self.layout.size() != 0 && !platform::current().exchange.unseal(self.block) {
            return Err(self);
        }
        let this = ManuallyDrop::new(self);
        // SAFETY: the block came from `ExBox::<E>::into_raw` in `new` for this same `E` (the TypeId matched), its
        // contents are the caller's again (unsealed), and `ManuallyDrop` retires this handle, so the box is
        // rebuilt exactly once.
        let boxed = unsafe { ExBox::<E>::from_raw(this.block.cast()) };
        Ok(boxed.into_inner())
    }
}

/// Encodes `any`, an `E`, as its type's name and then the value.
fn encode_as<E: Exchangeable>(any: ExAny, out: &mut Encoder<'_>) -> Result<(), WireError> {
    let name = any.type_name.as_bytes();
    out.put_len(name.len())?;
    out.put_bytes(name)?;
    // The value leaves the capsule as the caller's (charged to it, as any receiver that opens one).
    let value = any.open::<E>().map_err(|_| WireError::OutOfMemory)?;
    out.nested(value)
}

/// The block of a non-zero-sized box (as the records know it).
fn boxed_block<E: Exchangeable>(boxed: &ExBox<E>) -> NonNull<u8> {
    NonNull::from(&**boxed).cast()
}

impl Drop for ExAny {
    fn drop(&mut self) {
        // Frees the block and, from the records, everything sealed in it: no code of the value's type runs.
        Walk::free_capsule(self.block, self.layout);
    }
}

// SAFETY: an `ExAny` holds its block; everything its value holds is sealed in that block and recorded so.
unsafe impl Exchangeable for ExAny {
    fn __visit(&self, walk: &mut Walk<'_>) {
        walk.capsule(self.block, self.layout);
    }

    fn __encode(self, out: &mut Encoder<'_>) -> Result<(), WireError> {
        if crate::wire::any_crossing(self.type_name.as_bytes()).is_none() {
            return Err(WireError::Unsupported);
        }
        (self.encode)(self, out)
    }

    fn __decode(input: &mut Decoder<'_>) -> Result<Self, WireError> {
        let len = input.take_len()?;
        let name = input.take_bytes(len)?;
        let crossing = crate::wire::any_crossing(name).ok_or(WireError::Unsupported)?;
        (crossing.decode)(input)
    }
}

impl fmt::Debug for ExAny {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExAny({})", self.type_name)
    }
}
