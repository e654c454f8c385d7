//! One core's GDT and TSS, built as data and then loaded.
//!
//! Building is safe and testable on the host; loading (`lgdt`, segment reloads, `ltr`) and changing the stack the
//! CPU switches to on an entry from ring 3 (`RSP0`) are the unsafe steps.
//!
//! The GDT's order is fixed by `syscall`/`sysret` (which derive the selectors from `STAR`): kernel code, kernel
//! data, user data, user code, then the TSS. `sysret` loads SS from the user data selector and CS from the one
//! 8 bytes after it.

use crate::interrupt_stacks::{IstSlot, IstStacks};
use core::cell::UnsafeCell;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// Segment selectors of a loaded GDT.
#[derive(Clone, Copy, Debug)]
pub struct Selectors {
    /// 64-bit ring-0 code segment.
    pub kernel_code: SegmentSelector,
    /// Ring-0 data segment (also the stack segment).
    pub kernel_data: SegmentSelector,
    /// Ring-3 data segment (the user stack segment), right before the user code segment (`sysret`'s order).
    pub user_data: SegmentSelector,
    /// 64-bit ring-3 code segment.
    pub user_code: SegmentSelector,
    /// The core's TSS.
    pub tss: SegmentSelector,
}

/// A core's descriptor tables. The GDT's TSS descriptor points into this same value, so it must not move once
/// the GDT has been built: [`CpuTables::init`] therefore works in place on a `'static` slot.
pub struct CpuTables {
    /// In a cell: the CPU reads `RSP0` from it on every entry from ring 3, and the kernel changes it
    /// ([`CpuTables::set_kernel_stack`]) while the GDT points at it.
    tss: UnsafeCell<TaskStateSegment>,
    gdt: GlobalDescriptorTable,
    selectors: Option<Selectors>,
}

// SAFETY: the only interior mutability is the TSS, written through `set_kernel_stack`, whose contract confines
// writes to the owning core with interrupts off; other cores only read the IST entries, which never change after
// `init`.
unsafe impl Sync for CpuTables {}

impl CpuTables {
    /// Empty tables, to be filled by [`CpuTables::init`] where they will stay.
    pub const fn empty() -> Self {
        Self { tss: UnsafeCell::new(TaskStateSegment::new()), gdt: GlobalDescriptorTable::new(), selectors: None }
    }

    /// Fills the TSS's IST from `stacks` and builds the GDT around it. Calling it again rebuilds both.
    pub fn init(&'static mut self, stacks: &'static IstStacks) -> &'static CpuTables {
        let tss = self.tss.get_mut();
        for slot in IstSlot::ALL {
            tss.interrupt_stack_table[usize::from(slot.index())] = VirtAddr::new(stacks.top(slot));
        }
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        // SAFETY: the TSS lives in `self`, which is 'static and never moves (`&'static mut self`), as long as the
        // GDT that points at it; nothing else writes it while the descriptor is made.
        let tss = gdt.append(unsafe { Descriptor::tss_segment_unchecked(self.tss.get()) });
        self.gdt = gdt;
        self.selectors = Some(Selectors { kernel_code, kernel_data, user_data, user_code, tss });
        self
    }

    /// The selectors, once [`CpuTables::init`] has run.
    pub fn selectors(&self) -> Option<Selectors> {
        self.selectors
    }

    /// The IST entry of `slot` as the TSS holds it.
    pub fn ist_top(&self, slot: IstSlot) -> u64 {
        // SAFETY: a read of one word the kernel writes only through `set_kernel_stack` (another word), on the
        // core that owns the tables; the IST entries never change after `init`.
        unsafe { (*self.tss.get()).interrupt_stack_table[usize::from(slot.index())].as_u64() }
    }

    /// The stack the CPU switches to when an interrupt or exception arrives from ring 3 (`RSP0`).
    pub fn kernel_stack(&self) -> u64 {
        // SAFETY: as in `ist_top`: a word only the owning core writes, read on that core.
        unsafe { (*self.tss.get()).privilege_stack_table[0].as_u64() }
    }

    /// Makes `top` the stack the CPU switches to when an interrupt or exception arrives from ring 3 (`RSP0`).
    ///
    /// # Safety
    /// Call on the core that loaded these tables, with interrupts off; `top` is the 16-byte aligned top of a stack
    /// that nothing else uses while ring-3 code runs on this core, and that stays mapped until `RSP0` changes.
    pub unsafe fn set_kernel_stack(&self, top: u64) {
        // SAFETY: per the caller: this core alone touches its TSS (the CPU reads it only on this core's ring
        // transitions, none of which can happen with interrupts off in kernel code).
        unsafe { (*self.tss.get()).privilege_stack_table[0] = VirtAddr::new(top) };
    }

    /// Address of the TSS's `RSP0` field, for the ring-3 entry code that keeps it equal to the `syscall` stack
    /// (`syscall::RingScratch::rsp0_slot`).
    pub fn rsp0_slot(&self) -> u64 {
        self.tss.get() as u64 + core::mem::offset_of!(TaskStateSegment, privilege_stack_table) as u64
    }

    /// Loads the GDT and TSS on the calling core and reloads the segment registers.
    ///
    /// # Safety
    /// Call once per core, on that core, with interrupts disabled, and with `self` initialised by
    /// [`CpuTables::init`]; the IST stacks must be owned by this core alone.
    pub unsafe fn load(&'static self) {
        let Some(sel) = self.selectors else { return };
        self.gdt.load();
        // SAFETY: the selectors index descriptors of the GDT just loaded, which is 'static; the TSS descriptor
        // is free (never loaded before on another core, by the caller's contract).
        unsafe {
            CS::set_reg(sel.kernel_code);
            SS::set_reg(sel.kernel_data);
            DS::set_reg(sel.kernel_data);
            ES::set_reg(sel.kernel_data);
            load_tss(sel.tss);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interrupt_stacks::IST_STACK_SIZE;

    fn leak_tables() -> (&'static CpuTables, &'static IstStacks) {
        let stacks: &'static IstStacks = Box::leak(Box::new(IstStacks::new()));
        let tables: &'static mut CpuTables = Box::leak(Box::new(CpuTables::empty()));
        (tables.init(stacks), stacks)
    }

    extern crate std;
    use std::boxed::Box;

    #[test]
    fn ist_entries_point_at_the_top_of_distinct_aligned_stacks() {
        let (tables, stacks) = leak_tables();
        let mut tops: std::vec::Vec<u64> = IstSlot::ALL.iter().map(|s| tables.ist_top(*s)).collect();
        for slot in IstSlot::ALL {
            let top = tables.ist_top(slot);
            assert_eq!(top % 16, 0, "{slot:?} stack top not 16-byte aligned");
            assert!(top > stacks.bottom(slot) && top - stacks.bottom(slot) <= IST_STACK_SIZE as u64);
            assert!(top - stacks.bottom(slot) >= IST_STACK_SIZE as u64 - 16);
        }
        tops.dedup();
        assert_eq!(tops.len(), IstSlot::ALL.len(), "IST slots share a stack");
    }

    #[test]
    fn selectors_are_in_the_order_sysret_needs() {
        let (tables, _) = leak_tables();
        let sel = tables.selectors().expect("initialised");
        assert_eq!(sel.kernel_code.rpl(), x86_64::PrivilegeLevel::Ring0);
        assert_eq!(sel.kernel_code.index(), 1);
        assert_eq!(sel.kernel_data.index(), 2);
        // `sysret` takes SS from STAR's user base + 8 and CS from it + 16: user data, then user code.
        assert_eq!(sel.user_data.index(), 3);
        assert_eq!(sel.user_code.index(), 4);
        assert_eq!(sel.user_data.rpl(), x86_64::PrivilegeLevel::Ring3);
        assert_eq!(sel.user_code.rpl(), x86_64::PrivilegeLevel::Ring3);
        assert_eq!(sel.tss.index(), 5, "the TSS takes two GDT slots after the four segments");
    }

    #[test]
    fn the_kernel_stack_for_ring_3_entries_is_settable() {
        let (tables, _) = leak_tables();
        assert_eq!(tables.kernel_stack(), 0);
        // SAFETY: host test: no CPU reads these tables.
        unsafe { tables.set_kernel_stack(0xffff_8000_0001_0000) };
        assert_eq!(tables.kernel_stack(), 0xffff_8000_0001_0000);
        // The slot the ring-3 entry writes is that same field.
        // SAFETY: host test: the slot is inside the leaked tables, and nothing else reads them meanwhile.
        unsafe { (tables.rsp0_slot() as *mut u64).write_unaligned(0xffff_8000_0002_0000) };
        assert_eq!(tables.kernel_stack(), 0xffff_8000_0002_0000);
    }

    #[test]
    fn empty_tables_have_no_selectors() {
        assert!(CpuTables::empty().selectors().is_none());
    }
}
