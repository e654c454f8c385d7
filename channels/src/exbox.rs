//! [`ExBox`]: an owning pointer to one value in the exchange heap.
//!
//! Not here: growable data ([`ExVec`](crate::ExVec), [`ExString`](crate::ExString)) and the allocator itself
//! (the platform's [`Exchange`](crate::Exchange) hook).
//!
//! Invariants: a non-zero-sized `ExBox` owns exactly one live block of the installed exchange, allocated for
//! `Layout::new::<T>()` and holding an initialised `T`; zero-sized values use a dangling pointer and no block.
//! The block's records follow the box: it is held by the allocating owner, by the ring while it travels, then
//! by whoever receives it, and charged to the allocating owner until a receiver takes it over. Dropping a box
//! frees everything it holds by a walk (iterative, however deep the nesting) and never runs drop code of `T`
//! (exchangeable types have none of their own). The block's address is never handed out.

use crate::exchangeable::Exchangeable;
use crate::platform::{self, AllocError};
use crate::walk::{Action, Walk, walk_boxed};
use crate::wire::{Decoder, Encoder, WireError};
use core::alloc::Layout;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

/// An owning pointer to a `T` in the exchange heap; moving it moves only the pointer.
pub struct ExBox<T: Exchangeable> {
    ptr: NonNull<T>,
    /// Tells drop check that we own a `T`.
    _owns: PhantomData<T>,
}

// SAFETY: `ExBox<T>` owns its `T` uniquely, like `Box<T>`; sending it sends the `T`.
unsafe impl<T: Exchangeable + Send> Send for ExBox<T> {}
// SAFETY: shared access to an `ExBox<T>` only gives `&T`.
unsafe impl<T: Exchangeable + Sync> Sync for ExBox<T> {}

impl<T: Exchangeable> ExBox<T> {
    /// Moves `value` into the exchange heap, held by and charged to the calling owner.
    /// On exhaustion it calls the global allocation-error handler, as `Box::new` does (a process that does so
    /// ends); see [`try_new`](Self::try_new).
    pub fn new(value: T) -> Self {
        match Self::try_new(value) {
            Ok(boxed) => boxed,
            Err(_) => alloc::alloc::handle_alloc_error(Layout::new::<T>()),
        }
    }

    /// Moves `value` into the exchange heap, or gives it back if the heap (or the caller's exchange quota, which
    /// pays for the block) is exhausted.
    pub fn try_new(value: T) -> Result<Self, (T, AllocError)> {
        let layout = Layout::new::<T>();
        let ptr = if layout.size() == 0 {
            NonNull::dangling()
        } else {
            match platform::current().exchange.allocate(layout) {
                Ok(block) => block.cast::<T>(),
                Err(error) => return Err((value, error)),
            }
        };
        // SAFETY: `ptr` is a fresh block valid and aligned for `T` (or dangling and aligned for a zero-sized `T`,
        // where writes touch no memory).
        unsafe { ptr.as_ptr().write(value) };
        Ok(Self { ptr, _owns: PhantomData })
    }

    /// Moves the value out of the exchange heap and frees the block.
    pub fn into_inner(self) -> T {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: the box holds an initialised `T`; `ManuallyDrop` keeps our `Drop` from dropping it again.
        let value = unsafe { this.ptr.as_ptr().read() };
        let layout = Layout::new::<T>();
        if layout.size() != 0 {
            // SAFETY: the block came from this exchange with `layout`, and its value was just moved out.
            unsafe { platform::current().exchange.deallocate(this.ptr.cast(), layout) };
        }
        value
    }

    /// Gives up the box without dropping or freeing anything; [`ExBox::from_raw`] takes it back.
    pub(crate) fn into_raw(self) -> NonNull<T> {
        core::mem::ManuallyDrop::new(self).ptr
    }

    /// Rebuilds a box from [`ExBox::into_raw`].
    ///
    /// # Safety
    /// `ptr` came from `into_raw` of an `ExBox<T>` of this same `T`, and is rebuilt at most once.
    pub(crate) unsafe fn from_raw(ptr: NonNull<T>) -> Self {
        Self { ptr, _owns: PhantomData }
    }
}

impl<T: Exchangeable> Drop for ExBox<T> {
    fn drop(&mut self) {
        // SAFETY: the box owns its block, which is never used again.
        unsafe { walk_boxed(self.ptr, Action::Free) };
    }
}

impl<T: Exchangeable> Deref for ExBox<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the box holds an initialised `T`, borrowed for as long as the box is.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: Exchangeable> DerefMut for ExBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the box holds an initialised `T` and `&mut self` makes this the only access.
        unsafe { self.ptr.as_mut() }
    }
}

// SAFETY: a box holds its block and, queued for later, whatever its value holds.
unsafe impl<T: Exchangeable> Exchangeable for ExBox<T> {
    fn __visit(&self, walk: &mut Walk<'_>) {
        walk.boxed(self.ptr);
    }

    fn __encode(self, out: &mut Encoder<'_>) -> Result<(), WireError> {
        out.nested(self.into_inner())
    }

    fn __decode(input: &mut Decoder<'_>) -> Result<Self, WireError> {
        let value = input.nested::<T>()?;
        Self::try_new(value).map_err(|_| WireError::OutOfMemory)
    }
}

impl<T: Exchangeable + Clone> Clone for ExBox<T> {
    fn clone(&self) -> Self {
        Self::new((**self).clone())
    }
}

impl<T: Exchangeable + fmt::Debug> fmt::Debug for ExBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Exchangeable + PartialEq> PartialEq for ExBox<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Exchangeable + Eq> Eq for ExBox<T> {}

impl<T: Exchangeable + Default> Default for ExBox<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}
