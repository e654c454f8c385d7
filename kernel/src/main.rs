//! The Plurality kernel: the trusted base that runs in ring 0, one instance per core.
//!
//! The bootloader (`bootloader_api`) hands over in long mode with the kernel mapped, a physical-memory window
//! and a memory map; [`boot::start`] brings the machine up and ends in the console server.
//!
//! The modules form layers, listed below from the bottom up (docs/architecture.md, "Layers of the kernel"). A
//! module uses only modules of its own layer or of lower ones; a lower layer reaches a higher one only through
//! a hook that the higher layer installs at boot (the constructors of `percpu`'s typed slots, the SIP endings of
//! `exec`, the CALL interrupt's handler of `interrupts`, the requests `ipc` carries). The host test
//! `tests/kernel_layers.rs` holds the same table and fails on any path that goes up or any cycle.
//!
//! Invariants: `unsafe` appears only where hardware, raw memory or the context switch demand it (`arch`,
//! `sync`, `memory`, `firmware`, `percpu`, `exec`, `sched`, the console's ports, `power`, `interrupts`, `ipc`,
//! `smp`, `sip`'s hand-over of channel ends, `boot`); every unsafe block states why it is sound in a
//! `// SAFETY:` line.
#![no_std]
#![no_main]
// `extern "x86-interrupt"` handlers: the only way to get a correct interrupt frame without hand-written asm.
#![feature(abi_x86_interrupt)]

extern crate alloc;

// Base: the CPU and its controllers, locks, and the self-test registry.
mod arch;
mod selftest;
mod sync;
// Memory: frames, page tables, the kernel heap, arenas, thread stacks.
mod memory;
// Firmware: ACPI tables and QEMU's fw_cfg.
mod firmware;
// Per-core records and their slots.
mod percpu;
// Ring 3: syscall entry, supervisor protections.
mod ring3;
// Execution: time, and the account the running code is on (with the global allocator).
mod exec;
mod time;
// The core table and stopping the cores.
mod cores;
// Scheduling: threads and their switches.
mod sched;
// Devices: the console and power.
mod console;
mod power;
// Interrupts: the IDT, exception and device handlers.
mod interrupts;
// Inter-process and inter-core transport: the exchange heap, blocking, inter-core lanes.
mod ipc;
// The other cores: start-up and monitors.
mod smp;
// Software-isolated processes.
mod sip;
// Glue at the top: the console server, the panic handler, the linked services, and boot.
mod boot;
mod console_server;
mod panic;
mod services;

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
