//! One core's GDT and TSS, built as data and then loaded.
//!
//! Building is safe and testable on the host; loading (`lgdt`, segment reloads, `ltr`) is the one unsafe step.

use crate::interrupt_stacks::{IstSlot, IstStacks};
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
    /// The core's TSS.
    pub tss: SegmentSelector,
}

/// A core's descriptor tables. The GDT's TSS descriptor points into this same value, so it must not move once
/// the GDT has been built: [`CpuTables::init`] therefore works in place on a `'static` slot.
pub struct CpuTables {
    tss: TaskStateSegment,
    gdt: GlobalDescriptorTable,
    selectors: Option<Selectors>,
}

impl CpuTables {
    /// Empty tables, to be filled by [`CpuTables::init`] where they will stay.
    pub const fn empty() -> Self {
        Self { tss: TaskStateSegment::new(), gdt: GlobalDescriptorTable::new(), selectors: None }
    }

    /// Fills the TSS's IST from `stacks` and builds the GDT around it. Calling it again rebuilds both.
    pub fn init(&'static mut self, stacks: &'static IstStacks) -> &'static CpuTables {
        for slot in IstSlot::ALL {
            self.tss.interrupt_stack_table[usize::from(slot.index())] = VirtAddr::new(stacks.top(slot));
        }
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(&self.tss));
        self.gdt = gdt;
        self.selectors = Some(Selectors { kernel_code, kernel_data, tss });
        self
    }

    /// The selectors, once [`CpuTables::init`] has run.
    pub fn selectors(&self) -> Option<Selectors> {
        self.selectors
    }

    /// The IST entry of `slot` as the TSS holds it.
    pub fn ist_top(&self, slot: IstSlot) -> u64 {
        self.tss.interrupt_stack_table[usize::from(slot.index())].as_u64()
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
    fn selectors_are_ring0_and_in_gdt_order() {
        let (tables, _) = leak_tables();
        let sel = tables.selectors().expect("initialised");
        assert_eq!(sel.kernel_code.rpl(), x86_64::PrivilegeLevel::Ring0);
        assert_eq!(sel.kernel_code.index(), 1);
        assert_eq!(sel.kernel_data.index(), 2);
        assert_eq!(sel.tss.index(), 3, "the TSS takes two GDT slots after code and data");
    }

    #[test]
    fn empty_tables_have_no_selectors() {
        assert!(CpuTables::empty().selectors().is_none());
    }
}
