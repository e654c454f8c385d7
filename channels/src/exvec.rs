//! [`ExVec`]: a growable vector whose buffer lives in the exchange heap.
//!
//! Not here: text ([`ExString`](crate::ExString) wraps an `ExVec<u8>`).
//!
//! Invariants: `ptr` is dangling iff no block is held (capacity 0 or `T` zero-sized); otherwise it is one live
//! block of the installed heap allocated for `Layout::array::<T>(cap)`; elements `0..len` are initialised and
//! `len <= cap` (for zero-sized `T`, `cap` is `usize::MAX`). Dropping frees the elements' blocks and closes
//! their endpoints by a walk (never by recursion, never by running drop code of `T`); the buffer's address is
//! never handed out.

use crate::exchangeable::Exchangeable;
use crate::platform::{self, AllocError};
use crate::walk::{Action, Walk, walk};
use crate::wire::{Decoder, Encoder, WireError};
use core::alloc::Layout;
use core::any::Any;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

/// A growable array in the exchange heap: moving it between processes moves only its header.
pub struct ExVec<T: Exchangeable> {
    ptr: NonNull<T>,
    len: usize,
    cap: usize,
    _owns: PhantomData<T>,
}

// SAFETY: `ExVec<T>` owns its elements uniquely, like `Vec<T>`.
unsafe impl<T: Exchangeable + Send> Send for ExVec<T> {}
// SAFETY: shared access only gives `&[T]`.
unsafe impl<T: Exchangeable + Sync> Sync for ExVec<T> {}

impl<T: Exchangeable> ExVec<T> {
    /// An empty vector; allocates nothing.
    pub const fn new() -> Self {
        let cap = if size_of::<T>() == 0 { usize::MAX } else { 0 };
        Self { ptr: NonNull::dangling(), len: 0, cap, _owns: PhantomData }
    }

    /// An empty vector with room for `capacity` elements (calls the allocation-error handler on exhaustion).
    pub fn with_capacity(capacity: usize) -> Self {
        let mut vec = Self::new();
        if let Err(error) = vec.try_reserve(capacity) {
            handle_alloc_failure::<T>(capacity, error);
        }
        vec
    }

    /// A vector holding clones of `items`.
    pub fn from_slice(items: &[T]) -> Self
    where
        T: Clone,
    {
        let mut vec = Self::with_capacity(items.len());
        vec.extend_from_slice(items);
        vec
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements the buffer holds without growing.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Makes room for `additional` more elements, or reports exhaustion (of the heap, or of the caller's
    /// exchange quota, which pays for a new buffer) and leaves the vector as it was.
    pub fn try_reserve(&mut self, additional: usize) -> Result<(), AllocError> {
        let needed = self.len.checked_add(additional).ok_or(AllocError)?;
        if needed <= self.cap {
            return Ok(());
        }
        let new_cap = needed.max(self.cap.saturating_mul(2)).max(4);
        let layout = Layout::array::<T>(new_cap).map_err(|_| AllocError)?;
        let block = platform::current().exchange.allocate(layout)?.cast::<T>();
        if self.cap != 0 {
            // SAFETY: both buffers hold at least `len` elements' room and are distinct blocks; the old one's first
            // `len` elements are initialised and are moved (not duplicated: the old block is freed unread).
            unsafe { core::ptr::copy_nonoverlapping(self.ptr.as_ptr(), block.as_ptr(), self.len) };
            self.free_buffer();
        }
        self.ptr = block;
        self.cap = new_cap;
        Ok(())
    }

    /// Appends `value` (growing the buffer, or calling the allocation-error handler on exhaustion).
    pub fn push(&mut self, value: T) {
        if let Err((value, error)) = self.try_push(value) {
            drop(value);
            handle_alloc_failure::<T>(self.len + 1, error);
        }
    }

    /// Appends `value`, or gives it back if the heap (or the caller's exchange quota) is exhausted.
    pub fn try_push(&mut self, value: T) -> Result<(), (T, AllocError)> {
        if self.len == self.cap
            && let Err(error) = self.try_reserve(1)
        {
            return Err((value, error));
        }
        // SAFETY: `len < cap`, so slot `len` is inside the buffer (or `T` is zero-sized) and uninitialised.
        unsafe { self.ptr.as_ptr().add(self.len).write(value) };
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the last element.
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slot `len` was initialised and is now outside `0..len`, so it is read exactly once.
        Some(unsafe { self.ptr.as_ptr().add(self.len).read() })
    }

    /// Appends clones of `items`.
    pub fn extend_from_slice(&mut self, items: &[T])
    where
        T: Clone,
    {
        if let Err(error) = self.try_reserve(items.len()) {
            handle_alloc_failure::<T>(self.len.saturating_add(items.len()), error);
        }
        for item in items {
            self.push(item.clone());
        }
    }

    /// Drops every element, keeping the buffer.
    pub fn clear(&mut self) {
        let len = self.len;
        // Set first: if an element's drop panics, the rest leak instead of being dropped twice.
        self.len = 0;
        let elements = core::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), len);
        // SAFETY: elements `0..len` were initialised and are no longer reachable through the vector.
        unsafe { core::ptr::drop_in_place(elements) };
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `0..len` is initialised and `ptr` is non-null and aligned (dangling only when `len` is 0 or `T`
        // is zero-sized, which slices allow).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The elements, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as `as_slice`, and `&mut self` makes this the only access.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Copies the elements into a process-private `Vec`.
    pub fn to_vec(&self) -> alloc::vec::Vec<T>
    where
        T: Clone,
    {
        self.as_slice().to_vec()
    }

    fn holds_block(&self) -> bool {
        size_of::<T>() != 0 && self.cap != 0
    }

    /// Frees the buffer without touching elements (callers have moved or dropped them).
    fn free_buffer(&mut self) {
        if !self.holds_block() {
            return;
        }
        if let Ok(layout) = Layout::array::<T>(self.cap) {
            // SAFETY: the buffer came from this heap's `allocate` with exactly this layout (it was computed the
            // same way then), and it is not used after this.
            unsafe { platform::current().exchange.deallocate(self.ptr.cast(), layout) };
        }
    }
}

fn handle_alloc_failure<T>(elements: usize, _error: AllocError) -> ! {
    let layout = Layout::array::<T>(elements).unwrap_or(Layout::new::<T>());
    alloc::alloc::handle_alloc_error(layout)
}

impl<T: Exchangeable> Drop for ExVec<T> {
    fn drop(&mut self) {
        if T::__TRACKED {
            // Frees what the elements hold and the buffer, in one iterative walk.
            walk(self, Action::Free);
        } else {
            self.free_buffer();
        }
    }
}

impl<T: Exchangeable> Default for ExVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Exchangeable> Deref for ExVec<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Exchangeable> DerefMut for ExVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: Exchangeable + Clone> Clone for ExVec<T> {
    fn clone(&self) -> Self {
        Self::from_slice(self)
    }
}

impl<T: Exchangeable + fmt::Debug> fmt::Debug for ExVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Exchangeable + PartialEq> PartialEq for ExVec<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Exchangeable + Eq> Eq for ExVec<T> {}

impl<T: Exchangeable + Hash> Hash for ExVec<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl<T: Exchangeable> FromIterator<T> for ExVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut vec = Self::new();
        for item in iter {
            vec.push(item);
        }
        vec
    }
}

impl<T: Exchangeable> Extend<T> for ExVec<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for item in iter {
            self.push(item);
        }
    }
}

impl<'a, T: Exchangeable> IntoIterator for &'a ExVec<T> {
    type Item = &'a T;
    type IntoIter = core::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

// SAFETY: a vector holds its buffer and whatever its `len` elements hold, each visited.
unsafe impl<T: Exchangeable> Exchangeable for ExVec<T> {
    fn __visit(&self, walk: &mut Walk<'_>) {
        if self.holds_block()
            && let Ok(layout) = Layout::array::<T>(self.cap)
        {
            walk.buffer(self.ptr, layout, self.len);
        }
    }

    fn __encode(self, out: &mut Encoder<'_>) -> Result<(), WireError> {
        out.put_len(self.len)?;
        // Bytes (text, kv values) in one piece.
        if let Some(bytes) = (&self as &dyn Any).downcast_ref::<ExVec<u8>>() {
            return out.put_bytes(bytes.as_slice());
        }
        self.into_elements()?.into_iter().try_for_each(|item| out.nested(item))
    }

    fn __decode(input: &mut Decoder<'_>) -> Result<Self, WireError> {
        let len = input.take_len()?;
        let mut vec = Self::new();
        if let Some(bytes) = (&mut vec as &mut dyn Any).downcast_mut::<ExVec<u8>>() {
            let taken = input.take_bytes(len)?;
            bytes.try_reserve(len).map_err(|_| WireError::OutOfMemory)?;
            bytes.extend_from_slice(taken);
            return Ok(vec);
        }
        // Room for what the bytes left can describe, not for what the length claims: the rest grows as it comes.
        vec.try_reserve(len.min(input.remaining())).map_err(|_| WireError::OutOfMemory)?;
        for _ in 0..len {
            let item = input.nested::<T>()?;
            if vec.try_push(item).is_err() {
                return Err(WireError::OutOfMemory);
            }
        }
        Ok(vec)
    }
}

impl<T: Exchangeable> ExVec<T> {
    /// The elements, moved to the caller's own heap (for encoding), the buffer freed.
    fn into_elements(mut self) -> Result<alloc::vec::Vec<T>, WireError> {
        let mut items = alloc::vec::Vec::new();
        items.try_reserve_exact(self.len).map_err(|_| WireError::OutOfMemory)?;
        // SAFETY: elements `0..len` are initialised and `items` has room for them; setting our `len` to 0 first
        // makes the vector forget them, so each is owned once (by `items`) and the drop below frees only the
        // buffer.
        unsafe {
            let len = self.len;
            self.len = 0;
            core::ptr::copy_nonoverlapping(self.ptr.as_ptr(), items.as_mut_ptr(), len);
            items.set_len(len);
        }
        Ok(items)
    }
}
