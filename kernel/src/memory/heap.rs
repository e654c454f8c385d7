//! The kernel heap: a `talc` heap growing page by page inside its own virtual region.
//!
//! `talc` is a well-kept allocator with O(1) frees and heap statistics; its `Source` hook lets a heap grow
//! when it runs out, which [`GrowingHeap`] does by mapping fresh frames at the heap's end. The same source
//! serves the exchange heap (`ipc`) and every arena (`arena`); `exec::allocator` routes the global
//! allocator between the kernel heap and the arenas. Locks are [`IrqSpinRaw`], held with interrupts off.

use super::frames::Use;
use super::layout::{KERNEL_HEAP_MAX, KERNEL_HEAP_START};
use super::paging::{self, MapError};
use crate::sync::IrqSpinRaw;
use core::alloc::Layout;
use core::ptr::NonNull;
use talc::base::Talc;
use talc::base::binning::Binning;
use talc::source::Source;
use x86_64::VirtAddr;
use x86_64::structures::paging::{Page, Size4KiB};

/// Memory mapped at boot, so ordinary boot allocations never take the growth path.
const INITIAL_SIZE: u64 = 1 << 20;
/// Smallest step the kernel heap grows by, to keep the number of growth calls low.
const GROWTH_STEP: u64 = 256 * 1024;

/// A `talc` memory source that grows a heap page by page inside a fixed virtual region, up to a limit.
///
/// Used by the kernel heap, the exchange heap and every SIP arena: they differ only in region, limit and
/// growth step.
#[derive(Debug)]
pub struct GrowingHeap {
    base: u64,
    limit: u64,
    step: u64,
    /// Bytes of the region mapped so far.
    mapped: u64,
    /// End of the heap as `talc` knows it; `None` before the first claim.
    end: Option<NonNull<u8>>,
    /// Whether growth was refused because of `limit` (a spent quota, for an arena).
    limit_hit: bool,
    /// Whose frames it grows with (the kernel heap may use the frame reserve; SIP memory may not).
    purpose: Use,
}

// SAFETY: `end` points into the heap's own region, valid on every core; the source is only used under the
// heap's lock.
unsafe impl Send for GrowingHeap {}

impl GrowingHeap {
    /// A heap over `[base, base + limit)`, growing by at least `step` bytes (a multiple of 4096), with frames
    /// for `purpose`.
    pub const fn new(base: u64, limit: u64, step: u64, purpose: Use) -> Self {
        Self { base, limit, step, mapped: 0, end: None, limit_hit: false, purpose }
    }

    /// Places a heap made without a region (limit 0) at `[base, base + limit)`: for heaps in a static array,
    /// whose regions differ by index. A heap that has a region keeps it.
    pub fn place(&mut self, base: u64, limit: u64) {
        if self.limit == 0 {
            (self.base, self.limit) = (base, limit);
        }
    }

    /// Bytes mapped so far.
    pub fn mapped(&self) -> u64 {
        self.mapped
    }

    /// Whether growth was ever refused for the limit.
    pub fn limit_hit(&self) -> bool {
        self.limit_hit
    }
}

// SAFETY: `acquire` only maps pages (paging and frames never allocate) and then claims or extends memory it
// has just mapped and that nothing else uses.
unsafe impl Source for GrowingHeap {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        let src = &mut talc.source;
        let need = (layout.size() + layout.align() + 4096) as u64;
        let wanted = need.max(src.step).next_multiple_of(4096);
        let room = src.limit.saturating_sub(src.mapped) / 4096 * 4096;
        if room < need.next_multiple_of(4096) {
            src.limit_hit = true;
            return Err(());
        }
        grow_by(talc, wanted.min(room)).map_err(|_| ())
    }
}

/// Maps `bytes` more at the end of `talc`'s region and hands them to it.
pub fn grow_by<B: Binning>(talc: &mut Talc<GrowingHeap, B>, bytes: u64) -> Result<(), MapError> {
    let (base, mapped) = (talc.source.base, talc.source.mapped);
    if mapped + bytes > talc.source.limit {
        return Err(MapError::OutOfFrames);
    }
    let start = base + mapped;
    let purpose = talc.source.purpose;
    paging::map_fresh(Page::<Size4KiB>::containing_address(VirtAddr::new(start)), bytes / 4096, purpose)?;
    talc.source.mapped = mapped + bytes;
    let new_end = (start + bytes) as *mut u8;
    talc.source.end = match talc.source.end {
        // SAFETY: [base, new_end) is mapped, writable and used by this heap alone.
        None => unsafe { talc.claim(base as *mut u8, (mapped + bytes) as usize) },
        // SAFETY: `end` is the end talc returned last time, and the memory up to `new_end` was just mapped.
        Some(end) => Some(unsafe { talc.extend(end, new_end) }),
    };
    if talc.source.end.is_none() { Err(MapError::OutOfFrames) } else { Ok(()) }
}

/// Unmaps every page a heap mapped and gives the frames back (the heap's contents are gone).
pub fn release(source: &GrowingHeap) {
    let first = Page::<Size4KiB>::containing_address(VirtAddr::new(source.base));
    for i in 0..source.mapped / 4096 {
        if let Err(e) = paging::unmap_and_free(first + i) {
            log::error!("releasing heap page {:#x}: {e:?}", (first + i).start_address().as_u64());
        }
    }
}

/// The kernel heap (reached through `exec::allocator`, the global allocator).
pub static HEAP: talc::TalcLock<IrqSpinRaw, GrowingHeap> =
    talc::TalcLock::new(GrowingHeap::new(KERNEL_HEAP_START, KERNEL_HEAP_MAX, GROWTH_STEP, Use::Kernel));

/// Whether `addr` lies in the kernel heap's region.
pub fn contains(addr: usize) -> bool {
    (KERNEL_HEAP_START..KERNEL_HEAP_START + KERNEL_HEAP_MAX).contains(&(addr as u64))
}

/// Maps and claims the initial heap. Call once, after paging is up.
pub fn init() -> Result<(), MapError> {
    grow_by(&mut HEAP.lock(), INITIAL_SIZE)
}

/// Heap figures for `mem`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes in live allocations.
    pub used: usize,
    /// Bytes available without growing.
    pub free: usize,
    /// Bytes of the heap region mapped so far.
    pub mapped: u64,
    /// Most the heap may grow to.
    pub limit: u64,
}

/// Current heap figures.
pub fn stats() -> HeapStats {
    let talc = HEAP.lock();
    let counters = talc.counters();
    HeapStats {
        used: counters.allocated_bytes,
        free: counters.available_bytes,
        mapped: talc.source.mapped(),
        limit: KERNEL_HEAP_MAX,
    }
}

crate::selftest! {
    /// Small and large allocations work, hold their contents, and are given back.
    fn heap_allocate_and_free() {
        use alloc::{boxed::Box, vec::Vec};
        let before = stats().used;
        let boxes: Vec<Box<u64>> = (0..1000u64).map(Box::new).collect();
        crate::check!(boxes.iter().enumerate().all(|(i, b)| **b == i as u64), "boxed values corrupted");
        let big = alloc::vec![0xa5u8; 300_000];
        crate::check!(big.iter().all(|b| *b == 0xa5), "large allocation corrupted");
        crate::check!(stats().used >= before + 300_000, "used bytes did not grow");
        drop(big);
        drop(boxes);
        // The heap is every core's: with `--smp N` another core may allocate or free a few bytes meanwhile (40
        // once in CI). What this test gives back (a thousand 8-byte boxes and 300,000 bytes) would show far
        // beyond the slack if it were not.
        let after = stats().used;
        crate::check!(after.abs_diff(before) <= 1024, "heap used {after} after free, {before} before");
        Ok(())
    }
}

crate::selftest! {
    /// An allocation larger than the free heap makes it grow instead of failing.
    fn heap_grows_on_demand() {
        let free = stats().free;
        let size = free + 2 * GROWTH_STEP as usize;
        let mut block = alloc::vec::Vec::<u8>::new();
        block.try_reserve_exact(size).map_err(|_| alloc::format!("allocating {size} bytes failed"))?;
        block.resize(size, 7);
        crate::check!(block[size - 1] == 7 && block[0] == 7, "grown memory not usable");
        crate::check!(stats().mapped > INITIAL_SIZE, "heap region did not grow");
        Ok(())
    }
}
