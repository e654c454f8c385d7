//! Ring-3 address spaces over the kernel's frames: `cpu_rings::AddressSpace` with this layer's frame allocator
//! and physical-memory window.
//!
//! A space's page tables and the frames of its user pages are SIP memory ([`Use::Sip`]): a ring-3 SIP that maps
//! until memory runs out is refused before the kernel's reserve. Dropping a space frees both (the caller makes
//! sure no core has it loaded). Which space a ring-3 SIP gets, where its pages go and loading a space on a core
//! are decided above (`ring3`, `sip`).

use super::frames::{self, Use};
use cpu_rings::address_space::{FrameSource, SpaceError};
use x86_64::PhysAddr;
use x86_64::structures::paging::{PhysFrame, Size4KiB};

/// The kernel's frames as a space's frame source.
#[derive(Debug, Default)]
pub struct KernelFrames;

impl FrameSource for KernelFrames {
    fn table_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        frames::allocate_page_table(Use::Sip)
    }

    fn free_table(&mut self, frame: PhysFrame<Size4KiB>) {
        if let Err(e) = frames::deallocate_page_table(frame) {
            log::error!("a ring-3 page table's frame {:#x} was not allocated: {e:?}", frame.start_address().as_u64());
        }
    }

    fn free_page(&mut self, frame: PhysFrame<Size4KiB>) {
        if let Err(e) = frames::deallocate(frame) {
            log::error!("a ring-3 page's frame {:#x} was not allocated: {e:?}", frame.start_address().as_u64());
        }
    }
}

/// A ring-3 address space of this kernel.
pub type UserSpace = cpu_rings::AddressSpace<KernelFrames>;

/// A new space: an empty lower half, the kernel's upper half.
pub fn new_space() -> Result<UserSpace, SpaceError> {
    // SAFETY: the bootloader's window maps all physical memory read-write at `phys_to_virt(0)`; the level-4 table
    // is the kernel's; `KernelFrames` takes frames from the allocator, which hands each out once.
    unsafe { UserSpace::new(super::paging::kernel_level_4(), super::phys_to_virt(PhysAddr::new(0)), KernelFrames) }
}

/// A fresh, zeroed frame for a user page ([`Use::Sip`]), filled with `bytes` from its start.
pub fn fresh_user_frame(bytes: &[u8]) -> Option<PhysFrame<Size4KiB>> {
    let frame = frames::allocate(Use::Sip)?;
    let window = super::phys_to_virt(frame.start_address()).as_mut_ptr::<u8>();
    // SAFETY: the frame is fresh from the allocator, so only this code sees it; the window maps all 4096 bytes.
    unsafe {
        window.write_bytes(0, 4096);
        window.copy_from_nonoverlapping(bytes.as_ptr(), bytes.len().min(4096));
    }
    Some(frame)
}

/// A fresh frame for a user page ([`Use::Sip`]) holding a copy of `template`'s 4096 bytes.
pub fn copy_of_frame(template: PhysFrame<Size4KiB>) -> Option<PhysFrame<Size4KiB>> {
    let frame = frames::allocate(Use::Sip)?;
    let from = super::phys_to_virt(template.start_address()).as_ptr::<u8>();
    let to = super::phys_to_virt(frame.start_address()).as_mut_ptr::<u8>();
    // SAFETY: the new frame is fresh from the allocator, so only this code sees it; the template is a frame its
    // owner only reads from now on; the window maps both whole, and they are distinct frames.
    unsafe { to.copy_from_nonoverlapping(from, 4096) };
    Some(frame)
}
