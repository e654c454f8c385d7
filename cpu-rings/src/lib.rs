//! Privilege levels of the CPU, owned in one place: descriptor tables, task state and interrupt stacks.
//!
//! This crate builds and loads, per core, a GDT with kernel and user segments (in the order `sysret` needs) and a
//! TSS whose interrupt-stack table (IST) gives the double-fault, page-fault, NMI and machine-check handlers stacks
//! of their own, so that a fault caused by a blown stack still arrives on a good stack, and one more to all
//! device, timer and inter-processor interrupts, so that they never push a frame onto the stack they interrupt.
//! `syscall` enables `syscall`/`sysret` and holds the entry and exit stubs, and [`run_user`] runs ring-3 code
//! until it asks to leave; `traps` is the path of interrupts and exceptions that arrive while ring-3 code runs
//! (a ring-aware stub per vector, `swapgs`, the thread's kernel stack); `address_space` holds user page tables
//! that share the kernel half, and the only copies between ring-3 memory and the kernel. Nothing outside this
//! crate touches the GDT, the TSS or the syscall MSRs, or walks user page tables.
//!
//! Invariants: the tables of a core live as long as the core runs (`&'static`), and each IST stack belongs to
//! exactly one core.
#![no_std]

pub mod address_space;
mod descriptor_tables;
mod interrupt_stacks;
pub mod syscall;
pub mod traps;

pub use address_space::{AddressSpace, BadUserAddress};
pub use descriptor_tables::{CpuTables, Selectors};
pub use interrupt_stacks::{IST_STACK_SIZE, IstSlot, IstStacks};
pub use syscall::run_user;
pub use traps::TrapFrame;
