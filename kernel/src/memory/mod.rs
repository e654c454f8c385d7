//! Physical frames, page tables, the kernel heap, arenas and thread stacks.
//!
//! `frames` hands out 4 KiB physical frames from the boot memory map; `paging` maps them (and device
//! registers) into the kernel's address space through the bootloader's physical-memory window; `heap` is the
//! kernel heap, growing on demand inside its own virtual region; `arena` carves sub-heaps with quotas out of
//! the same primitives, `small_heap` keeps many small owners' blocks in one heap with a list per owner, and `stacks` thread stacks with guard pages; `user_spaces` makes ring-3 address spaces
//! (`cpu_rings::AddressSpace`) over this layer's frames and window. `layout` names every region the kernel
//! places by itself. Which heap an allocation goes to is decided a layer up, by the account the running code
//! is on (`exec::allocator`): this layer knows nothing of SIPs, threads or cores.
//!
//! Lock order, where more than one is held: page tables, then frames. The heap lock may be held while taking
//! both (it grows by mapping), never the other way round, so neither `paging` nor `frames` allocates.

pub mod arena;
pub mod frames;
pub mod heap;
pub mod layout;
pub mod paging;
pub mod small_heap;
pub mod stacks;
pub mod user_spaces;

use bootloader_api::info::MemoryRegions;
use x86_64::{PhysAddr, VirtAddr};

static PHYSICAL_MEMORY_OFFSET: spin::Once<u64> = spin::Once::new();

/// Why memory could not be brought up at boot.
#[derive(Debug, Clone, Copy)]
pub enum InitError {
    /// The bootloader did not map physical memory (the kernel's config asks it to).
    NoPhysicalMemoryMapping,
    /// No usable region can hold the frame bitmap.
    NoRoomForFrameBitmap,
    /// The upper half's level-3 tables could not be made.
    KernelHalf(#[allow(dead_code, reason = "shown through Debug in the boot panic")] paging::MapError),
    /// The heap's first pages could not be mapped.
    Heap(#[allow(dead_code, reason = "shown through Debug in the boot panic")] paging::MapError),
}

/// Brings up frames, paging and the heap, in that order.
pub fn init(physical_memory_offset: Option<u64>, regions: &'static MemoryRegions) -> Result<(), InitError> {
    let offset = physical_memory_offset.ok_or(InitError::NoPhysicalMemoryMapping)?;
    PHYSICAL_MEMORY_OFFSET.call_once(|| offset);
    frames::init(regions).map_err(|_| InitError::NoRoomForFrameBitmap)?;
    paging::init().map_err(InitError::KernelHalf)?;
    heap::init().map_err(InitError::Heap)
}

/// The virtual address at which the bootloader's window shows physical address `phys`.
pub fn phys_to_virt(phys: PhysAddr) -> VirtAddr {
    let offset = PHYSICAL_MEMORY_OFFSET.get().copied().unwrap_or_else(|| panic!("memory used before init"));
    VirtAddr::new(offset + phys.as_u64())
}
