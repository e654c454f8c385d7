//! The local APIC (xAPIC, memory-mapped): end of interrupt, the per-core timer, and identification.
//!
//! Every core sees its own local APIC at the same physical address, so one mapping serves all cores. The
//! mapping is made once by [`init`] (through `memory::paging::map_mmio`, uncached); until then the functions
//! here do nothing, which keeps early panics and exceptions from faulting on an unmapped APIC.
//!
//! Inter-processor interrupts go through the interrupt command register (ICR, two 32-bit halves): the high half
//! names the destination APIC ID, and writing the low half sends. A core's ICR is its own, so the only hazard is
//! an interrupt handler on the *same* core sending between the two writes: [`send_ipi`] holds interrupts off.
//! xAPIC mode only, so destinations are APIC IDs 0-254 (255 is broadcast).

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::model_specific::Msr;

const IA32_APIC_BASE: u32 = 0x1b;
const REG_ID: usize = 0x20;
const REG_TPR: usize = 0x80;
const REG_EOI: usize = 0xb0;
const REG_SVR: usize = 0xf0;
const REG_ESR: usize = 0x280;
const REG_ICR_LOW: usize = 0x300;
const REG_ICR_HIGH: usize = 0x310;
const REG_LVT_TIMER: usize = 0x320;
const REG_LVT_ERROR: usize = 0x370;
const REG_TIMER_INITIAL: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3e0;

const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
/// Divide configuration value for "divide by 16".
const DIVIDE_BY_16: u32 = 0b0011;

/// ICR delivery status: set while the previous IPI is still being sent.
const ICR_SEND_PENDING: u32 = 1 << 12;
/// ICR level: assert (required for everything but the obsolete INIT de-assert).
const ICR_ASSERT: u32 = 1 << 14;

/// Largest APIC ID an xAPIC can address (255 means "all").
pub const MAX_XAPIC_ID: u32 = 254;

/// What an inter-processor interrupt delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipi {
    /// An ordinary interrupt on this vector.
    Fixed(u8),
    /// A non-maskable interrupt (arrives even with interrupts off).
    Nmi,
    /// INIT: the target resets into wait-for-SIPI.
    Init,
    /// STARTUP: the target starts in real mode at `page << 12` (page below 1 MiB).
    Startup(u8),
}

/// Why an IPI was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpiError {
    /// The APIC is not mapped yet.
    NoApic,
    /// The destination is not an xAPIC ID.
    BadDestination(u32),
    /// The previous IPI never left (the ICR stayed busy).
    Busy,
}

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

/// Inter-processor interrupts sent since boot (all cores).
static IPIS_SENT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Inter-processor interrupts sent since boot (all cores).
pub fn ipis_sent() -> u64 {
    IPIS_SENT.load(core::sync::atomic::Ordering::Relaxed)
}

/// Sends `ipi` to the core with local APIC ID `apic_id` and waits until the APIC has accepted it for delivery.
pub fn send_ipi(apic_id: u32, ipi: Ipi) -> Result<(), IpiError> {
    IPIS_SENT.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    if register(REG_ICR_LOW).is_none() {
        return Err(IpiError::NoApic);
    }
    if apic_id > MAX_XAPIC_ID {
        return Err(IpiError::BadDestination(apic_id));
    }
    let low = ICR_ASSERT
        | match ipi {
            Ipi::Fixed(vector) => u32::from(vector),
            Ipi::Nmi => 0b100 << 8,
            Ipi::Init => 0b101 << 8,
            Ipi::Startup(page) => (0b110 << 8) | u32::from(page),
        };
    x86_64::instructions::interrupts::without_interrupts(|| {
        wait_icr_idle()?;
        write(REG_ICR_HIGH, apic_id << 24);
        write(REG_ICR_LOW, low);
        wait_icr_idle()
    })
}

fn wait_icr_idle() -> Result<(), IpiError> {
    // Under emulation delivery is immediate; on hardware it takes well under a microsecond. The bound only keeps
    // a broken APIC from hanging the caller.
    for _ in 0..1_000_000 {
        if read(REG_ICR_LOW) & ICR_SEND_PENDING == 0 {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err(IpiError::Busy)
}
