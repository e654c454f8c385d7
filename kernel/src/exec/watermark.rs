//! An experiment, off by default: how deep kernel code goes on SIP stacks, to size `memory::stacks::KERNEL_RESERVE` by
//! measurement rather than by guess.
//!
//! With [`ENABLED`] set, every stretch of kernel code on a SIP thread's stack (from a kernel entry out of SIP
//! code to the return into it, or to the thread's end; a preemption of SIP code; an allocation or free the
//! allocator makes in SIP mode) is measured by painting: [`begin`] records the stack pointer where it starts
//! in the lowest word of the thread's kernel reserve and fills the stack below with a pattern, [`end`] finds the
//! lowest word no longer holding the pattern. The deepest use since the last report, and the SIP it was made
//! for, are printed by the self-test `kernel_stack_watermark` (`selftest watermark` in the console), which then
//! starts over, so a console command between two reports is measured on its own. Interrupts run on their own
//! stack and never paint over a SIP's. The figure is a lower bound by at most the measuring functions' own
//! frames (a few dozen bytes), and covers only paths that ran: the run behind the figure in
//! docs/architecture.md exercised every console command.
//!
//! To run it: set [`ENABLED`] to `true`, `printf 'selftest watermark\nspawn echo\n...' | cargo run -- --headless`.
//! Painting costs up to [`SPAN`] bytes of stores per kernel entry, so the switch is a constant (compiled out
//! when off), not a run-time option.

use crate::percpu::PerCpu;
use core::sync::atomic::{AtomicU64, Ordering};

/// Whether the measurement runs (see the module docs).
pub const ENABLED: bool = false;
/// Bytes below a stretch's start that are painted and scanned; deeper use shows as this figure.
const SPAN: u64 = 24 * 1024;
/// What an untouched word holds.
const PATTERN: u64 = 0x5afe_57ac_c0de_d00d;

static DEEPEST: AtomicU64 = AtomicU64::new(0);
static DEEPEST_FOR: AtomicU64 = AtomicU64::new(0);
static DEEPEST_PREEMPTION: AtomicU64 = AtomicU64::new(0);
static STRETCHES: AtomicU64 = AtomicU64::new(0);

/// Marks a recorded start as a preemption's (starts are word-aligned, so bit 0 is free).
const PREEMPTION: u64 = 1;

/// The lowest word of the running SIP thread's kernel reserve (its stack bottom), if `rsp` lies on that stack:
/// `None` on a kernel thread and on the interrupt and exception stacks.
fn bottom(cpu: &PerCpu, rsp: u64) -> Option<u64> {
    match cpu.stack_limit.load(Ordering::Relaxed) {
        0 => None,
        limit => {
            let bottom = limit - crate::memory::stacks::KERNEL_RESERVE;
            (rsp > bottom + 8 && rsp - bottom < crate::memory::stacks::SLOT_SIZE).then_some(bottom)
        }
    }
}

/// The stack pointer of the calling code.
#[inline(always)]
fn stack_pointer() -> u64 {
    let rsp: u64;
    // SAFETY: copies RSP into a register; no memory, stack or flags are touched.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    rsp
}

/// Starts measuring a stretch of kernel code that begins at stack pointer `start` on the running thread, unless
/// one is being measured already (an enclosing stretch measures the inner one too).
pub fn begin(cpu: &PerCpu, start: u64) {
    begin_tagged(cpu, start & !7, 0);
}

/// [`begin`] for the yield of a preempted thread, whose stretch starts at the interrupted stack pointer.
pub fn begin_preemption(cpu: &PerCpu, interrupted_rsp: u64) {
    begin_tagged(cpu, interrupted_rsp & !7, PREEMPTION);
}

#[inline(never)]
fn begin_tagged(cpu: &PerCpu, start: u64, tag: u64) {
    let Some(bottom) = bottom(cpu, stack_pointer()) else { return };
    let slot = bottom as *mut u64;
    // SAFETY: `bottom` is the lowest, mapped word of the running SIP thread's own stack: nothing else uses it
    // (kernel code reaching it would be an overflow the reserve is sized to prevent).
    if unsafe { slot.read_volatile() } != 0 {
        return;
    }
    // SAFETY: as above.
    unsafe { slot.write_volatile(start | tag) };
    let low = start.saturating_sub(SPAN).max(bottom + 8) & !7;
    // SAFETY: fills the running thread's own stack from `low` (above its bottom word) up to the current stack
    // pointer, which nothing uses: the target has no red zone and interrupts run on their own IST stack.
    unsafe {
        core::arch::asm!(
            "mov rcx, rsp",
            "sub rcx, rdi",
            "shr rcx, 3",
            "rep stosq",
            inout("rdi") low => _,
            out("rcx") _,
            in("rax") PATTERN,
            options(nostack),
        );
    }
}

/// Ends the stretch being measured on the running thread, if any, and records how deep it went.
#[inline(never)]
pub fn end(cpu: &PerCpu) {
    let Some(bottom) = bottom(cpu, stack_pointer()) else { return };
    let slot = bottom as *mut u64;
    // SAFETY: see `begin`.
    let recorded = unsafe { slot.read_volatile() };
    if recorded == 0 {
        return;
    }
    let start = recorded & !7;
    let mut at = start.saturating_sub(SPAN).max(bottom + 8) & !7;
    // SAFETY: reads words of the running thread's own mapped stack, between its bottom and the stretch's start.
    while at < start && unsafe { (at as *const u64).read_volatile() } == PATTERN {
        at += 8;
    }
    // SAFETY: see `begin`.
    unsafe { slot.write_volatile(0) };
    let used = start - at;
    STRETCHES.fetch_add(1, Ordering::Relaxed);
    if recorded & PREEMPTION != 0 {
        DEEPEST_PREEMPTION.fetch_max(used, Ordering::Relaxed);
    }
    if DEEPEST.fetch_max(used, Ordering::Relaxed) < used {
        DEEPEST_FOR.store(cpu.current_owner.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

crate::selftest! {
    /// Reports (and restarts) the deepest kernel use of a SIP stack since the last report, when measuring.
    fn kernel_stack_watermark() {
        if !ENABLED {
            return Ok(());
        }
        let deepest = DEEPEST.swap(0, Ordering::Relaxed);
        let owner = DEEPEST_FOR.swap(0, Ordering::Relaxed);
        let stretches = STRETCHES.swap(0, Ordering::Relaxed);
        let preemption = DEEPEST_PREEMPTION.swap(0, Ordering::Relaxed);
        log::info!(
            "kernel stack watermark: {deepest} bytes (of {} reserved) in {stretches} stretches, deepest for SIP #{}; \
             deepest preemption of SIP code {preemption} bytes",
            crate::memory::stacks::KERNEL_RESERVE,
            owner.saturating_sub(1),
        );
        Ok(())
    }
}
