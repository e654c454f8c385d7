//! Arenas: sub-heaps, each a `talc` heap in its own virtual slot of the arena region, growing on demand up to a
//! quota, and unmapped all at once when dropped.
//!
//! An arena knows nothing of who uses it. The kernel gives each SIP one (`sip`), and the global allocator
//! (`exec::allocator`) sends the allocations a SIP makes to it and frees every block by its address, so a SIP's
//! memory never mixes with the kernel's or another SIP's. Dropping an arena unmaps it whatever is still
//! allocated in it: nothing allocated there needs a destructor to run (DESIGN.md: reclaim by ownership records,
//! not by `Drop`). Exceeding the quota makes the allocation fail.

use super::frames::Use;
use super::heap::{self, GrowingHeap};
use super::layout::{ARENA_SLOT_SIZE, ARENAS_START, MAX_ARENAS};
use crate::sync::{IrqMutex, IrqSpinRaw};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// Smallest step an arena grows by.
const GROWTH_STEP: u64 = 64 * 1024;

/// One sub-heap.
pub struct Arena {
    heap: talc::TalcLock<IrqSpinRaw, GrowingHeap>,
    slot: usize,
}

static SLOT_OWNERS: [AtomicPtr<Arena>; MAX_ARENAS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_ARENAS];
static FREE_SLOTS: IrqMutex<Vec<usize>> = IrqMutex::new(Vec::new());
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
static ARENAS_LIVE: AtomicUsize = AtomicUsize::new(0);

/// Why an arena could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArenaError {
    /// Every arena slot is in use.
    NoSlot,
    /// The quota exceeds a slot.
    QuotaTooLarge,
}

impl Arena {
    /// A new, empty arena of at most `quota` bytes, whose frames count as `purpose` (memory is mapped on
    /// demand). Call in kernel mode.
    pub fn new(quota: usize, purpose: Use) -> Result<Box<Arena>, ArenaError> {
        if quota as u64 > ARENA_SLOT_SIZE {
            return Err(ArenaError::QuotaTooLarge);
        }
        let slot = match FREE_SLOTS.lock().pop() {
            Some(slot) => slot,
            None => {
                let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
                if slot >= MAX_ARENAS {
                    NEXT_SLOT.fetch_sub(1, Ordering::Relaxed);
                    return Err(ArenaError::NoSlot);
                }
                slot
            }
        };
        let base = ARENAS_START + slot as u64 * ARENA_SLOT_SIZE;
        let source = GrowingHeap::new(base, quota as u64, GROWTH_STEP, purpose);
        let arena = Box::new(Arena { heap: talc::TalcLock::new(source), slot });
        SLOT_OWNERS[slot].store(&*arena as *const Arena as *mut Arena, Ordering::Release);
        ARENAS_LIVE.fetch_add(1, Ordering::Relaxed);
        Ok(arena)
    }

    /// Allocates from this arena (null when the quota is spent).
    pub fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: TalcLock implements GlobalAlloc soundly over memory this arena mapped for itself.
        unsafe { self.heap.alloc(layout) }
    }

    /// Bytes in live allocations.
    pub fn used(&self) -> usize {
        self.heap.lock().counters().allocated_bytes
    }

    /// Whether an allocation failed because the quota was spent.
    pub fn quota_hit(&self) -> bool {
        self.heap.lock().source.limit_hit()
    }

    fn contains(&self, addr: usize) -> bool {
        let base = (ARENAS_START + self.slot as u64 * ARENA_SLOT_SIZE) as usize;
        (base..base + ARENA_SLOT_SIZE as usize).contains(&addr)
    }
}

impl Drop for Arena {
    /// Unmaps the whole arena, whatever is still allocated in it, and frees its slot.
    fn drop(&mut self) {
        SLOT_OWNERS[self.slot].store(core::ptr::null_mut(), Ordering::Release);
        heap::release(&self.heap.lock().source);
        FREE_SLOTS.lock().push(self.slot);
        ARENAS_LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether `addr` is inside the arena region.
pub fn in_arena_region(addr: usize) -> bool {
    (ARENAS_START..ARENAS_START + MAX_ARENAS as u64 * ARENA_SLOT_SIZE).contains(&(addr as u64))
}

static STRAY_FREE_REPORTED: AtomicBool = AtomicBool::new(false);

/// Frees a block of some arena, found by its address.
///
/// # Safety
/// `ptr` was returned by [`Arena::alloc`] of a live arena with this `layout` and is not used afterwards.
pub unsafe fn dealloc(ptr: *mut u8, layout: Layout) {
    let slot = ((ptr as u64 - ARENAS_START) / ARENA_SLOT_SIZE) as usize;
    let arena = SLOT_OWNERS.get(slot).map_or(core::ptr::null_mut(), |a| a.load(Ordering::Acquire));
    if arena.is_null() {
        // Memory of an arena that is already gone: it was reclaimed wholesale, nothing to do. Say it once.
        if !STRAY_FREE_REPORTED.swap(true, Ordering::Relaxed) {
            log::warn!("free of {ptr:p} ({} bytes) in a reclaimed arena ignored", layout.size());
        }
        return;
    }
    // SAFETY: the slot's arena is live (its owner pointer is cleared before it is dropped) and the caller
    // guarantees the block came from it.
    unsafe {
        debug_assert!((*arena).contains(ptr as usize));
        (*arena).heap.dealloc(ptr, layout);
    }
}

/// Number of live arenas.
pub fn live() -> usize {
    ARENAS_LIVE.load(Ordering::Relaxed)
}
