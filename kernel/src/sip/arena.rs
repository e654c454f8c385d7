//! Per-SIP heap arenas: each SIP allocates from its own `talc` heap inside its own virtual slot, up to its quota.
//!
//! The global allocator (`memory::allocator`) sends allocations made in SIP mode to the running SIP's arena
//! and frees every block by its address, so a SIP's memory never mixes with the kernel's or another SIP's.
//! When a SIP ends, its whole arena is unmapped at once: nothing it allocated needs a destructor to run
//! (DESIGN.md: reclaim by ownership records, not by `Drop`). Exceeding the quota makes the allocation fail,
//! which panics the SIP (and only it).

use crate::memory::layout::{ARENA_SLOT_SIZE, ARENAS_START, MAX_ARENAS};
use crate::memory::paging;
use crate::sync::{IrqMutex, IrqSpinRaw};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use talc::base::Talc;
use talc::base::binning::Binning;
use talc::source::Source;
use x86_64::VirtAddr;
use x86_64::structures::paging::{Page, Size4KiB};

/// Smallest step an arena grows by.
const GROWTH_STEP: usize = 64 * 1024;

/// The memory behind one arena: its slot, how much is mapped, the quota.
#[derive(Debug)]
pub struct ArenaSource {
    base: usize,
    mapped: usize,
    quota: usize,
    end: Option<NonNull<u8>>,
    quota_hit: bool,
}

// SAFETY: the pointer is into the arena's own slot, valid on every core; used only under the arena's lock.
unsafe impl Send for ArenaSource {}

// SAFETY: `acquire` maps fresh pages inside the arena's own slot (paging and frames never allocate) and hands
// only those to talc.
unsafe impl Source for ArenaSource {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        let src = &mut talc.source;
        let need = (layout.size() + layout.align() + 256).max(GROWTH_STEP).next_multiple_of(4096);
        let grow = need.min(src.quota.saturating_sub(src.mapped));
        if grow < layout.size() + 64 {
            src.quota_hit = true;
            return Err(());
        }
        let start = src.base + src.mapped;
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(start as u64));
        paging::map_fresh(page, (grow / 4096) as u64).map_err(|_| ())?;
        let src = &mut talc.source;
        src.mapped += grow;
        let (base, mapped, end) = (src.base, src.mapped, src.end);
        let new_end = match end {
            // SAFETY: [base, base + mapped) is mapped, writable and used by this arena alone.
            None => unsafe { talc.claim(base as *mut u8, mapped) },
            // SAFETY: `end` is the heap end talc returned last; the memory up to the new end was just mapped.
            Some(end) => Some(unsafe { talc.extend(end, (base + mapped) as *mut u8) }),
        };
        talc.source.end = new_end;
        new_end.map(|_| ()).ok_or(())
    }
}

/// One SIP's heap.
pub struct Arena {
    heap: talc::TalcLock<IrqSpinRaw, ArenaSource>,
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
    /// A new, empty arena of at most `quota` bytes (memory is mapped on demand). Call in kernel mode.
    pub fn new(quota: usize) -> Result<Box<Arena>, ArenaError> {
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
        let base = (ARENAS_START + slot as u64 * ARENA_SLOT_SIZE) as usize;
        let source = ArenaSource { base, mapped: 0, quota, end: None, quota_hit: false };
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

    /// Bytes of the slot mapped so far.
    pub fn mapped(&self) -> usize {
        self.heap.lock().source.mapped
    }

    /// Whether an allocation failed because the quota was spent.
    pub fn quota_hit(&self) -> bool {
        self.heap.lock().source.quota_hit
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
        let (base, mapped) = {
            let talc = self.heap.lock();
            (talc.source.base, talc.source.mapped)
        };
        let first = Page::<Size4KiB>::containing_address(VirtAddr::new(base as u64));
        for i in 0..(mapped / 4096) as u64 {
            if let Err(e) = paging::unmap_and_free(first + i) {
                log::error!("arena page {:#x}: {e:?}", (first + i).start_address().as_u64());
            }
        }
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
            log::warn!("free of {ptr:p} in a reclaimed SIP arena ignored");
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
