//! The physical frame allocator: a bitmap over all usable RAM from the boot memory map.
//!
//! One bit per 4 KiB frame (set = free), so freeing is O(1) and double frees are detected. The bitmap itself
//! lives in the first usable region large enough, reached through the physical-memory window. Frames below
//! 1 MiB are never handed out: the application-processor trampoline (multikernel issue) needs them.
//!
//! A reserve keeps the kernel alive when SIPs exhaust memory: frames for SIP memory (their heap arenas, the
//! exchange heap, their thread stacks: [`Use::Sip`]) are refused once only the reserve is left, which only the
//! kernel's own memory (its heap, page tables: [`Use::Kernel`]) may take. So a SIP that grows until memory runs
//! out gets an allocation error (and ends, or handles it), and the kernel can still allocate what it needs to
//! end and reclaim it.
//!
//! Invariant: `free` equals the number of set bits, and only frames the memory map called usable are ever set.

use crate::sync::IrqMutex;
use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use x86_64::PhysAddr;
use x86_64::structures::paging::{PhysFrame, Size4KiB};

const FRAME: u64 = 4096;
const LOW_MEMORY_END: u64 = 0x10_0000;

/// Counts of frames, for `mem` and the leak checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameStats {
    /// Usable frames in the memory map (after the bitmap and low memory are set aside).
    pub total: u64,
    /// Frames not allocated.
    pub free: u64,
    /// Frames holding page tables (included in the used ones). The kernel's page tables are never freed: a
    /// region once mapped keeps its tables for the next mapping there, so they are a cache, reported apart from
    /// the frames that SIPs and the heaps hold. A ring-3 address space frees its own with it.
    pub page_tables: u64,
}

/// Errors of the frame allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// No usable region can hold the bitmap.
    NoRoomForBitmap,
    /// The frame freed was not allocated (double free) or is outside usable memory.
    NotAllocated(u64),
}

struct Bitmap {
    words: &'static mut [u64],
    free: u64,
    total: u64,
    /// Word index to start the next search from (allocation is next-fit).
    hint: usize,
}

/// What a frame is for: whether it may come out of the kernel's reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// The kernel's own memory (its heap, page tables, its threads' stacks): may use the reserve.
    Kernel,
    /// Memory a SIP grows on demand (arenas, the exchange heap, SIP thread stacks): never the reserve.
    Sip,
}

/// Frames only [`Use::Kernel`] may take: 4 MiB, or a sixteenth of memory if that is less.
fn reserve(total: u64) -> u64 {
    ((4 << 20) / FRAME).min(total / 16)
}

static FRAMES: IrqMutex<Option<Bitmap>> = IrqMutex::new(None);
static PAGE_TABLE_FRAMES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Builds the bitmap from the memory map. Call once.
pub fn init(regions: &'static MemoryRegions) -> Result<(), FrameError> {
    let usable = || regions.iter().filter(|r| r.kind == MemoryRegionKind::Usable);
    let end = usable().map(|r| r.end).max().unwrap_or(0);
    let frame_count = end.div_ceil(FRAME);
    let words = frame_count.div_ceil(64) as usize;
    let bitmap_bytes = (words * 8) as u64;
    let bitmap_start = usable()
        .map(|r| (r.start.max(LOW_MEMORY_END).next_multiple_of(FRAME), r.end))
        .find(|(start, end)| start + bitmap_bytes <= *end)
        .map(|(start, _)| start)
        .ok_or(FrameError::NoRoomForBitmap)?;
    let bitmap_end = (bitmap_start + bitmap_bytes).next_multiple_of(FRAME);

    let virt = super::phys_to_virt(PhysAddr::new(bitmap_start));
    // SAFETY: [bitmap_start, bitmap_end) is usable RAM that nothing else uses (the allocator does not exist yet
    // and marks these frames used below), mapped by the bootloader's physical-memory window; u64-aligned.
    let words: &'static mut [u64] = unsafe { core::slice::from_raw_parts_mut(virt.as_mut_ptr::<u64>(), words) };
    words.fill(0);
    let mut bitmap = Bitmap { words, free: 0, total: 0, hint: 0 };
    for region in usable() {
        let first = region.start.max(LOW_MEMORY_END).next_multiple_of(FRAME);
        let mut frame = first;
        while frame + FRAME <= region.end {
            if !(bitmap_start..bitmap_end).contains(&frame) {
                bitmap.set_free(frame / FRAME);
            }
            frame += FRAME;
        }
    }
    bitmap.total = bitmap.free;
    *FRAMES.lock() = Some(bitmap);
    Ok(())
}

impl Bitmap {
    fn set_free(&mut self, index: u64) {
        let (word, bit) = ((index / 64) as usize, index % 64);
        self.words[word] |= 1 << bit;
        self.free += 1;
    }

    fn allocate(&mut self, purpose: Use) -> Option<u64> {
        if purpose == Use::Sip && self.free <= reserve(self.total) {
            return None;
        }
        let n = self.words.len();
        for i in 0..n {
            let w = (self.hint + i) % n;
            let word = self.words[w];
            if word != 0 {
                let bit = u64::from(word.trailing_zeros());
                self.words[w] &= !(1 << bit);
                self.free -= 1;
                self.hint = w;
                return Some((w as u64 * 64 + bit) * FRAME);
            }
        }
        None
    }

    fn deallocate(&mut self, addr: u64) -> Result<(), FrameError> {
        let index = addr / FRAME;
        let word = (index / 64) as usize;
        let mask = 1 << (index % 64);
        if !addr.is_multiple_of(FRAME)
            || addr < LOW_MEMORY_END
            || word >= self.words.len()
            || self.words[word] & mask != 0
        {
            return Err(FrameError::NotAllocated(addr));
        }
        self.words[word] |= mask;
        self.free += 1;
        Ok(())
    }
}

/// One free frame for `purpose`, or `None` when physical memory is exhausted (for [`Use::Sip`]: when only the
/// reserve is left). The frame's contents are undefined.
pub fn allocate(purpose: Use) -> Option<PhysFrame<Size4KiB>> {
    let addr = FRAMES.lock().as_mut()?.allocate(purpose)?;
    Some(PhysFrame::containing_address(PhysAddr::new(addr)))
}

/// Returns a frame obtained from [`allocate`].
pub fn deallocate(frame: PhysFrame<Size4KiB>) -> Result<(), FrameError> {
    let addr = frame.start_address().as_u64();
    FRAMES.lock().as_mut().ok_or(FrameError::NotAllocated(addr))?.deallocate(addr)
}

/// Frames above the reserve that a new SIP may still be given (its records grow the kernel heap, which may take
/// the reserve: a spawn is refused before that, so no number of SIPs can leave the kernel without memory).
const SPAWN_MARGIN: u64 = 256;

/// Whether memory for SIPs is left: more than the reserve and a margin of free frames. Checked before a SIP's
/// kernel records are made.
pub fn room_for_a_sip() -> bool {
    FRAMES.lock().as_ref().is_some_and(|b| b.free > reserve(b.total) + SPAWN_MARGIN)
}

/// Current counts.
pub fn stats() -> FrameStats {
    let page_tables = PAGE_TABLE_FRAMES.load(core::sync::atomic::Ordering::Relaxed);
    FRAMES.lock().as_ref().map_or(FrameStats { total: 0, free: 0, page_tables }, |b| FrameStats {
        total: b.total,
        free: b.free,
        page_tables,
    })
}

/// One free frame for a page table, counted as one ([`FrameStats::page_tables`]).
pub fn allocate_page_table(purpose: Use) -> Option<PhysFrame<Size4KiB>> {
    let frame = allocate(purpose)?;
    PAGE_TABLE_FRAMES.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    Some(frame)
}

/// Gives back a page table's frame (only ring-3 address spaces free their tables).
pub fn deallocate_page_table(frame: PhysFrame<Size4KiB>) -> Result<(), FrameError> {
    deallocate(frame)?;
    PAGE_TABLE_FRAMES.fetch_sub(1, core::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The allocator as the `x86_64` crate's page-table code wants it (for intermediate page tables).
pub struct GlobalFrames;

// SAFETY: `allocate` hands out each usable frame at most once until it is deallocated.
unsafe impl x86_64::structures::paging::FrameAllocator<Size4KiB> for GlobalFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        allocate_page_table(Use::Kernel)
    }
}

crate::selftest! {
    /// Frames come back distinct, aligned and above low memory, and freeing restores the count exactly.
    fn frames_allocate_and_free() {
        let before = stats();
        crate::check!(before.total > 0 && before.free <= before.total, "implausible stats {before:?}");
        let mut got = [None; 16];
        for slot in got.iter_mut() {
            *slot = allocate(Use::Kernel);
        }
        for (i, frame) in got.iter().enumerate() {
            let Some(frame) = frame else { return Err(alloc::format!("allocation {i} failed")) };
            let addr = frame.start_address().as_u64();
            crate::check!(addr >= LOW_MEMORY_END, "frame {addr:#x} below 1 MiB");
            crate::check!(!got[..i].contains(&Some(*frame)), "frame {addr:#x} handed out twice");
        }
        crate::check!(stats().free == before.free - 16, "free count did not drop by 16");
        for frame in got.into_iter().flatten() {
            crate::check!(deallocate(frame).is_ok(), "freeing an allocated frame failed");
        }
        crate::check!(stats() == before, "stats not restored: {:?} vs {before:?}", stats());
        Ok(())
    }
}

crate::selftest! {
    /// SIP memory stops at the reserve; the kernel's may use it.
    fn frames_keep_a_reserve_for_the_kernel() {
        let total = stats().total;
        let mut taken = alloc::vec::Vec::new();
        while let Some(frame) = allocate(Use::Sip) {
            taken.push(frame);
        }
        let left = stats().free;
        let kernel = allocate(Use::Kernel);
        for frame in taken.drain(..).chain(kernel) {
            crate::check!(deallocate(frame).is_ok(), "freeing an allocated frame failed");
        }
        crate::check!(left <= reserve(total) && left + 1 >= reserve(total), "{left} frames left, reserve {}", reserve(total));
        crate::check!(kernel.is_some(), "the kernel could not take a frame from its reserve");
        Ok(())
    }
}

crate::selftest! {
    /// A double free is refused and changes nothing.
    fn frames_refuse_double_free() {
        let frame = allocate(Use::Kernel).ok_or("no frame")?;
        deallocate(frame).map_err(|e| alloc::format!("first free failed: {e:?}"))?;
        let before = stats();
        crate::check!(deallocate(frame).is_err(), "double free accepted");
        crate::check!(stats() == before, "double free changed the stats");
        Ok(())
    }
}
