//! The atomics and cell the ring is written against, so the very same ring source can be model-checked by loom.
//!
//! In the crate these are `core`'s types; the loom test includes `ring.rs` with a `sync` module of the same shape
//! built from `loom`'s types. Only what the ring needs is here, with loom's closure-based `UnsafeCell` API.

pub(crate) use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

/// `core::cell::UnsafeCell` with loom's access API (`with` / `with_mut`), which lets loom track accesses.
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a shared raw pointer to the contents.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a mutable raw pointer to the contents.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
