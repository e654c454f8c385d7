//! [`ExAny`]: one exchangeable value of any type, in the exchange heap, with its type checked when it is taken
//! out. This is how endpoints of contracts a carrier does not know travel: a name service forwards a client's
//! fresh server end to a provider without naming its contract, and a parent hands a new SIP its first endpoint
//! through the kernel.
//!
//! Not here: any check of *which* contract a value speaks beyond its exact Rust type (the receiver asks for the
//! type it serves; anything else comes back to it unchanged).
//!
//! Invariants: an `ExAny` owns exactly one `ExBox<E>` (as a raw pointer) for the `E` whose `TypeId` it records,
//! and the functions it stores are the ones instantiated for that `E`; it is rebuilt into the box only with the
//! same `E` ([`ExAny::downcast`]). Dropping it drops the value, as dropping the box would (an endpoint inside is
//! closed).

use crate::exbox::ExBox;
use crate::exchangeable::{Exchangeable, Sealed};
use crate::platform::{self, AllocError, ExchangeHeap, Owner};
use core::any::TypeId;
use core::fmt;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

/// A type-erased exchangeable value in the exchange heap; sending it moves only a pointer and a type tag.
pub struct ExAny {
    /// From `ExBox::<E>::into_raw`.
    block: NonNull<u8>,
    type_id: TypeId,
    type_name: &'static str,
    /// `transfer_as::<E>`: re-records the box and everything reachable from the value.
    transfer: unsafe fn(NonNull<u8>, &dyn ExchangeHeap, Owner),
    /// `drop_as::<E>`: drops the value and frees the block.
    drop: unsafe fn(NonNull<u8>),
}

// SAFETY: the value is `Send` (required by `new`), and the `ExAny` is its only owner.
unsafe impl Send for ExAny {}

impl ExAny {
    /// Moves `value` into the exchange heap; gives it back if the heap (or the owner's quota) is exhausted.
    pub fn new<E: Exchangeable + Send>(value: E) -> Result<Self, (E, AllocError)> {
        let boxed = ExBox::try_new(value)?;
        Ok(Self {
            block: boxed.into_raw().cast(),
            type_id: TypeId::of::<E>(),
            type_name: core::any::type_name::<E>(),
            transfer: transfer_as::<E>,
            drop: drop_as::<E>,
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

    /// The value, if it is an `E`; otherwise the `ExAny` comes back unchanged.
    pub fn downcast<E: Exchangeable + Send>(self) -> Result<E, Self> {
        if !self.is::<E>() {
            return Err(self);
        }
        let this = ManuallyDrop::new(self);
        // SAFETY: the block came from `ExBox::<E>::into_raw` in `new` for this same `E` (the TypeId matched), and
        // `ManuallyDrop` retires this handle, so the box is rebuilt exactly once.
        let boxed = unsafe { ExBox::<E>::from_raw(this.block.cast()) };
        Ok(boxed.into_inner())
    }

    /// Re-records every block of the value as owned by `to`: what sending does, for hand-overs that do not go
    /// through a channel (a value given to a SIP when it is spawned).
    pub fn transfer(&self, to: Owner) {
        self.__transfer(platform::current().heap, to);
    }

    /// Gives the value up without dropping or freeing it, for an owner whose blocks were reclaimed by owner
    /// record (the kernel, for a dead SIP's untaken startup value): dropping it then would free them twice.
    pub fn forget_reclaimed(self) {
        let _ = ManuallyDrop::new(self);
    }
}

/// # Safety
/// `block` is the live block of an `ExBox<E>` held by an `ExAny`.
unsafe fn transfer_as<E: Exchangeable>(block: NonNull<u8>, heap: &dyn ExchangeHeap, to: Owner) {
    // SAFETY: the caller guarantees a live `ExBox<E>`; the rebuilt box is only borrowed here and given up again
    // (`ManuallyDrop`) without being dropped.
    let boxed = ManuallyDrop::new(unsafe { ExBox::<E>::from_raw(block.cast()) });
    boxed.__transfer(heap, to);
}

/// # Safety
/// `block` is the live block of an `ExBox<E>` held by an `ExAny` that is never used again.
unsafe fn drop_as<E: Exchangeable>(block: NonNull<u8>) {
    // SAFETY: the caller guarantees a live `ExBox<E>` and that its handle is retired: rebuilt once, dropped once.
    drop(unsafe { ExBox::<E>::from_raw(block.cast()) });
}

impl Drop for ExAny {
    fn drop(&mut self) {
        // SAFETY: `drop` was instantiated for this value's type, and the handle is not used after this.
        unsafe { (self.drop)(self.block) }
    }
}

impl Sealed for ExAny {}
impl Exchangeable for ExAny {
    fn __transfer(&self, heap: &dyn ExchangeHeap, to: Owner) {
        // SAFETY: `transfer` was instantiated for this value's type, and the block is live while we hold it.
        unsafe { (self.transfer)(self.block, heap, to) }
    }
}

impl fmt::Debug for ExAny {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExAny({})", self.type_name)
    }
}
