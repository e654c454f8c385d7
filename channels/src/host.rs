//! Host implementations of the platform hooks (feature `std`): blocking by thread park/unpark after a short
//! spin, and an owner-tracking exchange heap over the system allocator — the host stand-in for the kernel's.
//!
//! Not here: anything the kernel uses; this module exists for `cargo test`, benchmarks and host tools.
//!
//! Invariants: [`TrackingHeap`] holds one record per live block (address → layout and owner); a thread's
//! current owner is a thread-local set with [`set_current_owner`] (default [`Owner::KERNEL`]).

use crate::platform::{self, AllocError, AlreadyInstalled, Blocking, ExchangeHeap, Owner, Platform};
use core::alloc::Layout;
use core::cell::Cell;
use core::ptr::NonNull;
use core::task::Waker;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Wake;
use std::thread::{self, Thread};
use std::vec::Vec;

/// Blocking by `std::thread::park` after polling a little (the peer is often on another core and quick).
pub struct ThreadBlocking;

/// Wakes one thread.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

std::thread_local! {
    /// Built once per thread: a blocked receive then costs a reference-count increment, not an allocation.
    static THREAD_WAKER: Waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    static CURRENT_OWNER: Cell<Owner> = const { Cell::new(Owner::KERNEL) };
}

/// Polls with one CPU pause each before yielding: about 3 µs on the 2-core EPYC VM of docs/benchmarks.md (a
/// `pause` takes ~26 ns there), i.e. some thirty round trips of a peer that is running.
const SPIN_ROUNDS: u32 = 128;
/// Polls that yield the CPU before the receiver parks (each ~0.6 µs when nothing else wants the CPU).
const YIELD_ROUNDS: u32 = 32;

impl Blocking for ThreadBlocking {
    fn waker(&self) -> Waker {
        THREAD_WAKER.with(Waker::clone)
    }

    fn park(&self) {
        thread::park();
    }

    fn spin_limit(&self) -> u32 {
        // A few microseconds of polling, then some yielding (below), before paying for a futex sleep: a blocked
        // receiver never burns its CPU for more than some 25 µs.
        SPIN_ROUNDS + YIELD_ROUNDS
    }

    fn relax(&self, round: u32) {
        // One pause per poll, as a spinning SPSC queue does: the peer is usually on another core and about to
        // answer, and a reply is then noticed within one pause. (Pauses that grew with the round, as here before,
        // made a receiver that had waited a little notice late, and a round trip slower than the peer's work.)
        // Then give the CPU away, in case the peer is waiting for it (more threads than free cores).
        if round < SPIN_ROUNDS {
            core::hint::spin_loop();
        } else {
            thread::yield_now();
        }
    }
}

/// Makes the calling thread act for `owner` (as a SIP's threads do in the kernel): exchange allocations are
/// recorded as `owner`'s, and received messages become `owner`'s.
pub fn set_current_owner(owner: Owner) {
    CURRENT_OWNER.with(|current| current.set(owner));
}

/// The calling thread's owner.
pub fn current_owner() -> Owner {
    CURRENT_OWNER.with(Cell::get)
}

/// An exchange heap over the system allocator that records every block's owner, as the kernel's does.
pub struct TrackingHeap {
    blocks: Mutex<Option<HashMap<usize, (Layout, Owner)>>>,
}

impl TrackingHeap {
    /// An empty heap (usable in a `static`).
    pub const fn new() -> Self {
        Self { blocks: Mutex::new(None) }
    }

    fn records(&self) -> MutexGuard<'_, Option<HashMap<usize, (Layout, Owner)>>> {
        // A panic while holding the lock cannot leave the map half-updated (each operation is one insert or
        // remove), so a poisoned lock is still consistent.
        self.blocks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The recorded owner of the block at `block`, if it is a live block of this heap.
    pub fn owner_of(&self, block: NonNull<u8>) -> Option<Owner> {
        self.records().as_ref()?.get(&(block.as_ptr() as usize)).map(|&(_, owner)| owner)
    }

    /// The live blocks owned by `owner` (what the kernel enumerates when `owner` dies).
    pub fn blocks_of(&self, owner: Owner) -> Vec<NonNull<u8>> {
        let records = self.records();
        let Some(map) = records.as_ref() else { return Vec::new() };
        map.iter()
            .filter(|(_, (_, o))| *o == owner)
            .filter_map(|(&address, _)| NonNull::new(address as *mut u8))
            .collect()
    }

    /// Number of live blocks.
    pub fn live_blocks(&self) -> usize {
        self.records().as_ref().map_or(0, HashMap::len)
    }

    /// Frees every block of a dead `owner` without running destructors (there is no one to run them: a dead
    /// SIP's stack is gone), and returns how many were freed.
    ///
    /// The caller must make sure nothing uses those blocks any more — in the kernel: the owner's threads are
    /// gone and its blocks are unreachable from any other owner (sending changes the owner, so they are).
    pub fn reclaim(&self, owner: Owner) -> usize {
        let mut records = self.records();
        let Some(map) = records.as_mut() else { return 0 };
        let dead: Vec<(usize, Layout)> =
            map.iter().filter(|(_, (_, o))| *o == owner).map(|(&address, &(layout, _))| (address, layout)).collect();
        for (address, layout) in &dead {
            map.remove(address);
            // SAFETY: the record proves this block came from `allocate` with `layout` and is still live; the
            // caller guarantees it is unused (documented above).
            unsafe { std::alloc::dealloc(*address as *mut u8, *layout) };
        }
        dead.len()
    }
}

impl Default for TrackingHeap {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: blocks come from the system allocator with the requested layout and are freed with the same layout;
// the records are bookkeeping only.
unsafe impl ExchangeHeap for TrackingHeap {
    fn allocate(&self, layout: Layout, owner: Owner) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: callers never pass a zero-sized layout (the trait's contract).
        let block = NonNull::new(unsafe { std::alloc::alloc(layout) }).ok_or(AllocError)?;
        self.records().get_or_insert_with(HashMap::new).insert(block.as_ptr() as usize, (layout, owner));
        Ok(block)
    }

    unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout) {
        if let Some(map) = self.records().as_mut() {
            map.remove(&(block.as_ptr() as usize));
        }
        // SAFETY: the caller promises `block` came from `allocate` with `layout` and is unused from now on.
        unsafe { std::alloc::dealloc(block.as_ptr(), layout) };
    }

    fn set_owner(&self, block: NonNull<u8>, owner: Owner) {
        if let Some(record) = self.records().as_mut().and_then(|map| map.get_mut(&(block.as_ptr() as usize))) {
            record.1 = owner;
        }
    }

    fn current_owner(&self) -> Owner {
        current_owner()
    }
}

/// Installs `heap` with thread blocking (for tests that check owner records). Must come before the process's
/// first channel or exchange allocation.
pub fn install_tracking(heap: &'static TrackingHeap) -> Result<(), AlreadyInstalled> {
    platform::install(Platform { heap, blocking: &ThreadBlocking })
}
