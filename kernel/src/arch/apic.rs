//! The local APIC (xAPIC, memory-mapped): end of interrupt, the per-core timer, and identification.
//!
//! Every core sees its own local APIC at the same physical address, so one mapping serves all cores. The
//! mapping is made once by [`init`] (through `memory::paging::map_mmio`, uncached); until then the functions
//! here do nothing, which keeps early panics and exceptions from faulting on an unmapped APIC.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::model_specific::Msr;

const IA32_APIC_BASE: u32 = 0x1b;
const REG_ID: usize = 0x20;
const REG_TPR: usize = 0x80;
const REG_EOI: usize = 0xb0;
const REG_SVR: usize = 0xf0;
const REG_ESR: usize = 0x280;
const REG_LVT_TIMER: usize = 0x320;
const REG_LVT_ERROR: usize = 0x370;
const REG_TIMER_INITIAL: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3e0;

const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
/// Divide configuration value for "divide by 16".
const DIVIDE_BY_16: u32 = 0b0011;

static BASE: AtomicU64 = AtomicU64::new(0);

/// Physical address of the local APIC, from the IA32_APIC_BASE MSR.
pub fn physical_base() -> u64 {
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; reading it has no side effect.
    let value = unsafe { Msr::new(IA32_APIC_BASE).read() };
    value & 0xf_ffff_f000
}

/// Records where the APIC is mapped, then enables it with `spurious_vector` and an error vector.
pub fn init(mapped_base: u64, spurious_vector: u8, error_vector: u8) {
    BASE.store(mapped_base, Ordering::Release);
    init_this_core(spurious_vector, error_vector);
}

/// Enables the calling core's APIC (software enable bit, spurious and error vectors, accept all priorities).
pub fn init_this_core(spurious_vector: u8, error_vector: u8) {
    write(REG_TPR, 0);
    write(REG_LVT_ERROR, u32::from(error_vector));
    write(REG_ESR, 0);
    write(REG_SVR, 0x100 | u32::from(spurious_vector));
}

fn register(offset: usize) -> Option<*mut u32> {
    let base = BASE.load(Ordering::Acquire);
    (base != 0).then(|| (base as usize + offset) as *mut u32)
}

fn read(offset: usize) -> u32 {
    match register(offset) {
        // SAFETY: `base` is the uncached mapping of this core's APIC page made by `init`; every offset used in
        // this module is a 16-byte-aligned 32-bit register inside that page.
        Some(reg) => unsafe { reg.read_volatile() },
        None => 0,
    }
}

fn write(offset: usize, value: u32) {
    if let Some(reg) = register(offset) {
        // SAFETY: as in `read`; writing these registers has only the documented APIC effects.
        unsafe { reg.write_volatile(value) }
    }
}

/// Signals end of interrupt for the interrupt being handled on this core.
pub fn end_of_interrupt() {
    write(REG_EOI, 0);
}

/// This core's APIC ID as the APIC reports it (0 before [`init`]).
pub fn id() -> u32 {
    read(REG_ID) >> 24
}

/// Starts the timer counting down from the largest value, masked, for calibration; see [`elapsed_counts`].
pub fn start_calibration_count() {
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, LVT_MASKED);
    write(REG_TIMER_INITIAL, u32::MAX);
}

/// Counts (at divide-by-16) consumed since [`start_calibration_count`].
pub fn elapsed_counts() -> u32 {
    u32::MAX - read(REG_TIMER_CURRENT)
}

/// Runs the timer periodically every `counts` (divide-by-16) counts, raising `vector`.
pub fn start_periodic(vector: u8, counts: u32) {
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, u32::from(vector) | LVT_PERIODIC);
    write(REG_TIMER_INITIAL, counts.max(1));
}
