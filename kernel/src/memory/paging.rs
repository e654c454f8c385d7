//! Page mapping in the kernel's address space, over the bootloader's physical-memory window.
//!
//! One set of page tables serves the whole kernel (all SIPs share it in ring 0), and its upper half is shared by
//! every ring-3 address space (`user_spaces`). Mapping fresh memory takes frames from `frames`; device registers
//! are mapped uncached into the MMIO window of `layout`.

use super::frames::{self, GlobalFrames};
use super::layout::{MMIO_SIZE, MMIO_START};
use crate::sync::IrqMutex;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::mapper::{MapToError, TranslateResult, UnmapError};
use x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as Flags, PhysFrame, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

/// Why a mapping could not be made or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// No physical frame left for the page or its page tables.
    OutOfFrames,
    /// The page is mapped already.
    AlreadyMapped,
    /// The page is not mapped (or is part of a huge page).
    NotMapped,
    /// The MMIO window is full.
    MmioWindowFull,
}

static MAPPER: IrqMutex<Option<OffsetPageTable<'static>>> = IrqMutex::new(None);
static MMIO_NEXT: AtomicU64 = AtomicU64::new(MMIO_START);

static KERNEL_LEVEL_4: spin::Once<PhysFrame<Size4KiB>> = spin::Once::new();

/// Takes over the active page tables and gives every empty slot of the upper half its level-3 table. Call
/// once, after `frames::init`.
///
/// Why the tables now: every ring-3 address space copies the kernel's upper 256 level-4 entries when it is
/// made (`cpu_rings::address_space`); a level-4 entry the kernel added later would be missing there, and
/// kernel code running in that space would fault on it. With every entry present from boot on, the kernel
/// only ever changes tables *below* level 4, which all spaces share. It costs one frame per empty slot
/// (at most 1 MiB).
pub fn init() -> Result<(), MapError> {
    let (level_4, _) = Cr3::read();
    KERNEL_LEVEL_4.call_once(|| level_4);
    let table = super::phys_to_virt(level_4.start_address());
    let offset = super::phys_to_virt(PhysAddr::new(0));
    // SAFETY: CR3 names the active level-4 table, which the physical-memory window maps at `table`; the
    // window maps all physical memory at `offset`, as OffsetPageTable requires. This is the only reference
    // to the table, kept behind MAPPER's lock.
    let mut mapper = unsafe { OffsetPageTable::new(&mut *table.as_mut_ptr::<PageTable>(), offset) };
    for entry in mapper.level_4_table_mut().iter_mut().skip(256).filter(|e| e.is_unused()) {
        let frame = frames::allocate_page_table(frames::Use::Kernel).ok_or(MapError::OutOfFrames)?;
        // SAFETY: the frame is fresh from the allocator, so only this code sees it; the window maps it.
        unsafe { super::phys_to_virt(frame.start_address()).as_mut_ptr::<PageTable>().write(PageTable::new()) };
        entry.set_frame(frame, Flags::PRESENT | Flags::WRITABLE);
    }
    *MAPPER.lock() = Some(mapper);
    Ok(())
}

/// The kernel's own level-4 table (the one loaded at boot), whose upper half every address space shares.
pub fn kernel_level_4() -> PhysFrame<Size4KiB> {
    *KERNEL_LEVEL_4.get().unwrap_or_else(|| panic!("paging used before init"))
}

fn with_mapper<R>(f: impl FnOnce(&mut OffsetPageTable<'static>) -> R) -> R {
    let mut guard = MAPPER.lock();
    let mapper = guard.as_mut().unwrap_or_else(|| panic!("paging used before init"));
    f(mapper)
}

fn map_error<S: x86_64::structures::paging::PageSize>(e: MapToError<S>) -> MapError {
    match e {
        MapToError::FrameAllocationFailed => MapError::OutOfFrames,
        MapToError::PageAlreadyMapped(_) | MapToError::ParentEntryHugePage => MapError::AlreadyMapped,
    }
}

/// Maps `page` to `frame` with `flags` (PRESENT is added).
///
/// The caller chooses what the frame holds: mapping a frame that something else owns makes an alias, which is
/// why this is only reachable from trusted kernel code.
pub fn map(page: Page<Size4KiB>, frame: PhysFrame<Size4KiB>, flags: Flags) -> Result<(), MapError> {
    with_mapper(|mapper| {
        // SAFETY: the pages mapped by the kernel are in regions of `layout` that nothing else maps, and the
        // frame is the caller's (fresh from the frame allocator or a device register page).
        let flush = unsafe { mapper.map_to(page, frame, flags | Flags::PRESENT, &mut GlobalFrames) };
        flush.map(|f| f.flush()).map_err(map_error)
    })
}

/// Maps `count` pages from `start` to fresh, zeroed frames for `purpose` (see `frames::Use`), writable and not
/// executable. On failure the pages mapped so far are unmapped again and their frames freed.
pub fn map_fresh(start: Page<Size4KiB>, count: u64, purpose: frames::Use) -> Result<(), MapError> {
    for i in 0..count {
        let page = start + i;
        let result = frames::allocate(purpose).ok_or(MapError::OutOfFrames).and_then(|frame| {
            // SAFETY: the frame is fresh from the allocator, so nothing else sees it; the window maps it.
            unsafe { super::phys_to_virt(frame.start_address()).as_mut_ptr::<u8>().write_bytes(0, 4096) };
            map(page, frame, Flags::WRITABLE | Flags::NO_EXECUTE).inspect_err(|_| {
                let _ = frames::deallocate(frame);
            })
        });
        if let Err(e) = result {
            for j in 0..i {
                let _ = unmap_and_free(start + j);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Unmaps `page` and returns the frame it mapped.
pub fn unmap(page: Page<Size4KiB>) -> Result<PhysFrame<Size4KiB>, MapError> {
    with_mapper(|mapper| match mapper.unmap(page) {
        Ok((frame, flush)) => {
            flush.flush();
            Ok(frame)
        }
        Err(UnmapError::PageNotMapped | UnmapError::ParentEntryHugePage | UnmapError::InvalidFrameAddress(_)) => {
            Err(MapError::NotMapped)
        }
    })
}

/// Unmaps `page` and gives its frame back to the frame allocator.
pub fn unmap_and_free(page: Page<Size4KiB>) -> Result<(), MapError> {
    let frame = unmap(page)?;
    frames::deallocate(frame).map_err(|_| MapError::NotMapped)
}

/// The physical address `addr` maps to, if any.
pub fn translate(addr: VirtAddr) -> Option<PhysAddr> {
    with_mapper(|mapper| match mapper.translate(addr) {
        TranslateResult::Mapped { frame, offset, .. } => Some(frame.start_address() + offset),
        _ => None,
    })
}

/// Maps `size` bytes of device registers at physical `phys` uncached into the MMIO window and returns the
/// virtual address of `phys`. Mappings in the window are never removed (devices stay for the whole boot).
pub fn map_mmio(phys: PhysAddr, size: u64) -> Result<VirtAddr, MapError> {
    let first = PhysFrame::<Size4KiB>::containing_address(phys);
    let last = PhysFrame::<Size4KiB>::containing_address(phys + size.max(1) - 1u64);
    let pages = (last.start_address() - first.start_address()) / 4096 + 1;
    let start = MMIO_NEXT.fetch_add(pages * 4096, Ordering::Relaxed);
    if start + pages * 4096 > MMIO_START + MMIO_SIZE {
        return Err(MapError::MmioWindowFull);
    }
    let flags = Flags::WRITABLE | Flags::NO_CACHE | Flags::WRITE_THROUGH | Flags::NO_EXECUTE;
    for i in 0..pages {
        let page = Page::containing_address(VirtAddr::new(start + i * 4096));
        map(page, first + i, flags)?;
    }
    Ok(VirtAddr::new(start) + (phys - first.start_address()))
}

crate::selftest! {
    /// A fresh page maps, reads back what was written (also through the physical window), and unmaps.
    fn paging_map_write_unmap() {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(super::layout::SELFTEST_SCRATCH_START));
        let before = frames::stats();
        map_fresh(page, 1, frames::Use::Kernel).map_err(|e| alloc::format!("map failed: {e:?}"))?;
        let ptr = page.start_address().as_mut_ptr::<u64>();
        // SAFETY: the page was just mapped writable for this test alone.
        unsafe { ptr.write_volatile(0x5eed_cafe_f00d_d00d) };
        let phys = translate(page.start_address()).ok_or("mapped page does not translate")?;
        // SAFETY: the window maps every physical frame; this frame is the test's page.
        let alias = unsafe { super::phys_to_virt(phys).as_ptr::<u64>().read_volatile() };
        crate::check!(alias == 0x5eed_cafe_f00d_d00d, "window alias reads {alias:#x}");
        crate::check!(map_fresh(page, 1, frames::Use::Kernel) == Err(MapError::AlreadyMapped), "double map not refused");
        unmap_and_free(page).map_err(|e| alloc::format!("unmap failed: {e:?}"))?;
        crate::check!(translate(page.start_address()).is_none(), "page still translates after unmap");
        crate::check!(unmap(page) == Err(MapError::NotMapped), "unmapping twice not refused");
        // Intermediate page tables made for the scratch page stay: at most 3 frames are kept.
        let after = frames::stats();
        crate::check!(before.free - after.free <= 3, "leaked {} frames", before.free - after.free);
        Ok(())
    }
}
