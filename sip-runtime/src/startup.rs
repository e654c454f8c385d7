//! Startup values: one exchangeable value (typically a channel endpoint) handed from a parent to the SIP it
//! spawns, the way Singularity hands a new process its initial endpoints.
//!
//! The value moves into the exchange heap ([`ExBox`]); the kernel re-records its blocks as the child's and keeps
//! the [`Startup`] handle until the child takes it with the value's own type. A child that dies without taking
//! it loses nothing to leaks: its blocks are reclaimed by owner record like any other, and endpoints among them
//! are closed. A failed spawn gives the handle back to the parent, so the value is never lost.
//!
//! Invariants: a `Startup` is the only owner of its block until [`Startup::take`] rebuilds the box, and it is
//! rebuilt only with the exact type it was made from (checked by `TypeId`). This module holds the crate's only
//! `unsafe`: rebuilding the box from its raw pointer.
#![allow(unsafe_code)]

use channels::{ExBox, Exchangeable, Owner};
use core::any::TypeId;
use core::ptr::NonNull;

/// A type-erased value in the exchange heap, on its way to a new SIP. Plain data: safe to pass through the ABI.
#[derive(Debug)]
pub struct Startup {
    block: NonNull<u8>,
    type_id: TypeId,
    transfer: fn(NonNull<u8>, Owner),
}

// SAFETY: the value is `Send` (checked in `new`), and the handle is its unique owner.
unsafe impl Send for Startup {}

impl Startup {
    /// Moves `value` into the exchange heap; gives it back if the heap is exhausted.
    pub fn new<E: Exchangeable + Send>(value: E) -> Result<Self, E> {
        let boxed = ExBox::try_new(value).map_err(|(value, _)| value)?;
        Ok(Self { block: boxed.into_raw().cast(), type_id: TypeId::of::<E>(), transfer: transfer::<E> })
    }

    /// Re-records every block of the value as owned by `to` (the kernel calls this for the child).
    pub fn transfer(&self, to: Owner) {
        (self.transfer)(self.block, to)
    }

    /// The value, if it is an `E`; otherwise the handle comes back unchanged.
    pub fn take<E: Exchangeable + Send>(self) -> Result<E, Self> {
        if self.type_id != TypeId::of::<E>() {
            return Err(self);
        }
        // SAFETY: the block came from `ExBox::<E>::into_raw` in `new` (same `E`: the TypeId matched), and this
        // consumes the only handle, so the box is rebuilt once.
        let boxed = unsafe { ExBox::<E>::from_raw(self.block.cast()) };
        Ok(boxed.into_inner())
    }
}

fn transfer<E: Exchangeable + Send>(block: NonNull<u8>, to: Owner) {
    // SAFETY: `block` is the live `ExBox<E>` a `Startup` holds; the rebuilt box is only borrowed here and then
    // given up again without being dropped.
    let boxed = core::mem::ManuallyDrop::new(unsafe { ExBox::<E>::from_raw(block.cast()) });
    boxed.transfer(to);
}
