//! Privilege levels of the CPU, owned in one place: descriptor tables, task state and interrupt stacks.
//!
//! Today this crate builds and loads, per core, a GDT with kernel code/data segments and a TSS whose
//! interrupt-stack table (IST) gives the double-fault, page-fault, NMI and machine-check handlers stacks of
//! their own, so that a fault caused by a blown stack still arrives on a good stack, and one more to all device,
//! timer and inter-processor interrupts, so that they never push a frame onto the stack they interrupt. The
//! later ring-3 issue adds user segments, `syscall`/`sysret` entry and user page tables here; nothing outside
//! this crate touches the GDT or TSS.
//!
//! Invariants: the tables of a core live as long as the core runs (`&'static`), and each IST stack belongs to
//! exactly one core.
#![no_std]

mod descriptor_tables;
mod interrupt_stacks;

pub use descriptor_tables::{CpuTables, Selectors};
pub use interrupt_stacks::{IST_STACK_SIZE, IstSlot, IstStacks};
