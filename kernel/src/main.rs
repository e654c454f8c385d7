//! The Plurality kernel: the trusted base that runs in ring 0, one instance per core.
//!
//! The bootloader (`bootloader_api`) hands over in long mode with the kernel mapped, a physical-memory window
//! and a memory map; [`boot::start`] brings the machine up and ends in the console. Code that touches the
//! hardware directly lives in `arch/` and `platform/`; memory in `memory/`; the console in `console/`;
//! exception and device interrupts in `interrupts/`; starting and stopping the other cores in `smp`; in-kernel
//! tests in `selftest/`.
//!
//! Invariants: no module outside `arch/`, `memory/`, `interrupts/`, `platform/`, `percpu`, `smp` and `sync` uses
//! `unsafe`; every unsafe block states why it is sound in a `// SAFETY:` line.
#![no_std]
#![no_main]
// `extern "x86-interrupt"` handlers: the only way to get a correct interrupt frame without hand-written asm.
#![feature(abi_x86_interrupt)]

extern crate alloc;

mod arch;
mod boot;
mod console;
mod exec;
mod interrupts;
mod ipc;
mod memory;
mod panic;
mod percpu;
mod platform;
mod power;
mod sched;
mod selftest;
mod services;
mod sip;
mod smp;
mod sync;
mod time;

use bootloader_api::config::{BootloaderConfig, Mapping};

/// How the bootloader must set up the machine before the kernel runs.
pub const BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    // The whole of physical memory at a bootloader-chosen offset: frame allocator, page tables and ACPI reach
    // physical memory through it.
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    // Keep the bootloader's own mappings in the lower part of the kernel half, so that the regions in
    // `memory::layout` (from 0xffff_c000_0000_0000 up) are never taken.
    config.mappings.dynamic_range_start = Some(memory::layout::BOOTLOADER_RANGE_START);
    config.mappings.dynamic_range_end = Some(memory::layout::BOOTLOADER_RANGE_END);
    config.kernel_stack_size = 256 * 1024;
    config
};

bootloader_api::entry_point!(boot::start, config = &BOOTLOADER_CONFIG);
