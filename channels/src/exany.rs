//! [`ExAny`]: one exchangeable value of any type, in the exchange heap, with its type checked when it is taken
//! out. This is how endpoints of contracts a carrier does not know travel: a name service forwards a client's
//! fresh server end to a provider without naming its contract, and a parent hands a new SIP its first value.
//!
//! Not here: any check of *which* contract a value speaks beyond its exact Rust type (the receiver asks for the
//! type it serves; anything else comes back to it unchanged).
//!
//! Invariants: an `ExAny` owns exactly one `ExBox<E>` (as a raw pointer) for the `E` whose `TypeId` it records,
//! and the visit function it stores is the one instantiated for that `E`; it is rebuilt into the box only with
//! the same `E` ([`ExAny::downcast`]). Dropping it frees the value as dropping the box would (an endpoint inside
//! is closed); since exchangeable types have no `Drop` of their own, that runs no code of whoever made it.

use crate::exbox::ExBox;
use crate::exchangeable::Exchangeable;
use crate::platform::AllocError;
use crate::walk::{Action, Walk, walk};
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
    /// `visit_as::<E>`: reports the box (and queues what the value holds), as `ExBox<E>`'s visit does.
    visit: unsafe fn(NonNull<u8>, &mut Walk<'_>),
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
            visit: visit_as::<E>,
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
}

/// # Safety
/// `block` is the live block of an `ExBox<E>` held by an `ExAny`.
unsafe fn visit_as<E: Exchangeable>(block: NonNull<u8>, walk: &mut Walk<'_>) {
    walk.boxed(block.cast::<E>());
}

impl Drop for ExAny {
    fn drop(&mut self) {
        // Frees the box and everything in it, as the box's own drop would.
        walk(self, Action::Free);
    }
}

// SAFETY: an `ExAny` holds its box and what the value holds, reported by the visit made for its type.
unsafe impl Exchangeable for ExAny {
    fn __visit(&self, walk: &mut Walk<'_>) {
        // SAFETY: `visit` was instantiated for this value's type, and the block is live while we hold it.
        unsafe { (self.visit)(self.block, walk) }
    }
}

impl fmt::Debug for ExAny {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExAny({})", self.type_name)
    }
}
