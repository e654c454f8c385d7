//! Time: the per-core APIC timer tick and a calibrated TSC clock for `uptime` and measurements.
//!
//! At boot the PIT (a known 1.193182 MHz base) measures both the APIC timer and the TSC over
//! [`CALIBRATION_MICROS`]. Calibrating against the PIT rather than assuming a TSC rate keeps time right under
//! QEMU's `-icount`, where the TSC counts guest instructions (boot-facts.md).

use crate::arch::{apic, cpu, pit};
use core::sync::atomic::{AtomicU64, Ordering};

/// Timer interrupts per second on every core.
pub const TIMER_HZ: u64 = 100;
/// Length of the calibration window.
const CALIBRATION_MICROS: u64 = 10_000;

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static APIC_COUNTS_PER_TICK: AtomicU64 = AtomicU64::new(0);

/// Remembers the TSC at kernel entry, the zero of `uptime`. Call first thing.
pub fn record_boot() {
    BOOT_TSC.store(cpu::rdtsc(), Ordering::Relaxed);
}

/// Measures the TSC and APIC timer rates against the PIT. Needs the APIC mapped, interrupts off.
pub fn calibrate() {
    apic::start_calibration_count();
    let tsc_start = cpu::rdtsc();
    let mut one_shot = pit::start_one_shot(CALIBRATION_MICROS);
    while !one_shot.expired() {
        core::hint::spin_loop();
    }
    let apic_counts = u64::from(apic::elapsed_counts());
    let tsc_counts = cpu::rdtsc() - tsc_start;
    let per_second = 1_000_000 / CALIBRATION_MICROS;
    TSC_HZ.store((tsc_counts * per_second).max(1), Ordering::Relaxed);
    APIC_COUNTS_PER_TICK.store((apic_counts * per_second / TIMER_HZ).max(1), Ordering::Relaxed);
}

/// Starts this core's periodic timer at [`TIMER_HZ`] on `vector`.
pub fn start_tick(vector: u8) {
    let counts = APIC_COUNTS_PER_TICK.load(Ordering::Relaxed);
    apic::start_periodic(vector, u32::try_from(counts).unwrap_or(u32::MAX));
}

/// The TSC rate found by [`calibrate`] (0 before).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds since kernel entry.
pub fn uptime_nanos() -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed);
    if hz == 0 {
        return 0;
    }
    let ticks = cpu::rdtsc().saturating_sub(BOOT_TSC.load(Ordering::Relaxed));
    (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64
}

/// Called by the timer interrupt on each core.
pub fn on_tick() {
    if let Some(cpu) = crate::percpu::try_current() {
        cpu.timer_ticks.fetch_add(1, Ordering::Relaxed);
    }
}

crate::selftest! {
    /// The APIC timer interrupts this core at roughly its rate, and the TSC clock moves forward with it.
    fn timer_ticks_advance() {
        let cpu = crate::percpu::current();
        crate::check!(x86_64::instructions::interrupts::are_enabled(), "interrupts are off");
        let start_ticks = cpu.timer_ticks.load(Ordering::Relaxed);
        let start_ns = uptime_nanos();
        while cpu.timer_ticks.load(Ordering::Relaxed) < start_ticks + 5 {
            x86_64::instructions::hlt();
            crate::check!(uptime_nanos() - start_ns < 5_000_000_000, "fewer than 5 ticks in 5 s");
        }
        let elapsed_ms = (uptime_nanos() - start_ns) / 1_000_000;
        // 5 ticks at 100 Hz are 40-50 ms; allow a wide band for emulation jitter.
        crate::check!((20..=1000).contains(&elapsed_ms), "5 ticks took {elapsed_ms} ms by the TSC clock");
        Ok(())
    }
}
