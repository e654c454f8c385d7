//! [`ExBox`]: an owning pointer to one value in the exchange heap.
//!
//! Not here: growable data ([`ExVec`](crate::ExVec), [`ExString`](crate::ExString)) and the allocator itself
//! (the platform's [`ExchangeHeap`](crate::ExchangeHeap)).
//!
//! Invariants: a non-zero-sized `ExBox` owns exactly one live block of the installed heap, allocated for
//! `Layout::new::<T>()` and holding an initialised `T`; zero-sized values use a dangling pointer and no block.
//! The block's owner record follows the box: the allocating thread's current owner, then whoever receives it.

use crate::exchangeable::{Exchangeable, Sealed};
use crate::platform::{self, AllocError, ExchangeHeap, Owner};
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
    /// Moves `value` into the exchange heap, owned by the calling thread's current owner.
    /// On exhaustion it calls the global allocation-error handler, as `Box::new` does; see [`try_new`](Self::try_new).
    pub fn new(value: T) -> Self {
        match Self::try_new(value) {
            Ok(boxed) => boxed,
            Err(_) => alloc::alloc::handle_alloc_error(Layout::new::<T>()),
        }
    }

    /// Moves `value` into the exchange heap, or gives it back if the heap (or the owner's quota) is exhausted.
    pub fn try_new(value: T) -> Result<Self, (T, AllocError)> {
        let layout = Layout::new::<T>();
        let ptr = if layout.size() == 0 {
            NonNull::dangling()
        } else {
            let heap = platform::current().heap;
            match heap.allocate(layout, heap.current_owner()) {
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
        free_block(this.ptr);
        value
    }

    /// The block's address: what the heap's owner records are keyed by.
    pub fn block(&self) -> NonNull<u8> {
        self.ptr.cast()
    }

    /// Re-records this block and every block reachable from its value as owned by `to`: what sending does,
    /// for hand-overs that do not go through a channel (a value given to a SIP when it is spawned).
    pub fn transfer(&self, to: Owner) {
        self.__transfer(platform::current().heap, to);
    }

    /// Gives up the box without dropping or freeing anything; [`ExBox::from_raw`] takes it back.
    pub fn into_raw(self) -> NonNull<T> {
        core::mem::ManuallyDrop::new(self).ptr
    }

    /// Rebuilds a box from [`ExBox::into_raw`].
    ///
    /// # Safety
    /// `ptr` came from `into_raw` of an `ExBox<T>` of this same `T`, and is rebuilt at most once.
    pub unsafe fn from_raw(ptr: NonNull<T>) -> Self {
        Self { ptr, _owns: PhantomData }
    }
}

/// Frees the block behind `ptr` without dropping its contents.
fn free_block<T>(ptr: NonNull<T>) {
    let layout = Layout::new::<T>();
    if layout.size() != 0 {
        // SAFETY: a non-zero-sized ExBox's pointer came from this heap's `allocate` with this layout, and the
        // box no longer uses it (callers have moved or dropped the value).
        unsafe { platform::current().heap.deallocate(ptr.cast(), layout) };
    }
}

impl<T: Exchangeable> Drop for ExBox<T> {
    fn drop(&mut self) {
        // SAFETY: the box holds an initialised `T` that nothing else owns; it is not used after this.
        unsafe { core::ptr::drop_in_place(self.ptr.as_ptr()) };
        free_block(self.ptr);
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

impl<T: Exchangeable> Sealed for ExBox<T> {}
impl<T: Exchangeable> Exchangeable for ExBox<T> {
    fn __transfer(&self, heap: &dyn ExchangeHeap, to: Owner) {
        if size_of::<T>() != 0 {
            heap.set_owner(self.block(), to);
        }
        (**self).__transfer(heap, to);
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
