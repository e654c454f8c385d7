//! The execution context of the running code: kernel, or a SIP — which decides where memory comes from and
//! whether a fault is the kernel's or a SIP's.
//!
//! A SIP thread runs "in the SIP" (depth 0) while it executes service code, and "in the kernel" (depth > 0)
//! inside every ABI call, channel hook and interrupt handler, entered with [`KernelMode::enter`]. The depth is
//! per thread (the scheduler saves and restores it on every switch), because a thread can be preempted inside
//! kernel code. In SIP mode, allocations go to the SIP's arena and a panic or CPU exception ends that SIP; in
//! kernel mode, allocations go to the kernel heap and a panic stops the machine.
//!
//! Kernel code is never cut short: a thread whose SIP is being ended while it runs kernel code is *doomed*
//! (`sched::doom`) and ends itself when it leaves kernel mode for the last time ([`KernelMode`]'s drop at depth
//! 0) or parks at a cut point, through the handler the SIP layer installs ([`set_doomed_handler`]: this layer
//! knows nothing of SIPs).

use crate::percpu;
use core::sync::atomic::Ordering;

/// A guard that keeps the calling thread in kernel mode until dropped.
pub struct KernelMode(Option<&'static percpu::PerCpu>);

impl KernelMode {
    /// Enters kernel mode (nests).
    #[inline]
    pub fn enter() -> Self {
        match percpu::try_current() {
            Some(cpu) => Self::enter_on(cpu),
            None => KernelMode(None),
        }
    }

    /// [`KernelMode::enter`] for a caller that already holds its core's record (saves a lookup on hot paths).
    /// The thread must not move to another core while the guard lives (threads never migrate today).
    #[inline]
    pub fn enter_on(cpu: &'static percpu::PerCpu) -> Self {
        cpu.kernel_depth.fetch_add(1, Ordering::Relaxed);
        KernelMode(Some(cpu))
    }
}

impl Drop for KernelMode {
    #[inline]
    fn drop(&mut self) {
        if let Some(cpu) = self.0
            && cpu.kernel_depth.fetch_sub(1, Ordering::Relaxed) == 1
            && cpu.current_doomed.load(Ordering::Relaxed)
        {
            end_doomed();
        }
    }
}

/// What a doomed thread does when it leaves kernel code: end itself (the SIP layer's handler).
static DOOMED_HANDLER: spin::Once<fn() -> !> = spin::Once::new();

/// Installs what a doomed thread runs when it leaves kernel code or parks at a cut point (once, at boot).
pub fn set_doomed_handler(handler: fn() -> !) {
    DOOMED_HANDLER.call_once(|| handler);
}

/// Ends the running thread, which is doomed (see the module docs).
#[cold]
#[inline(never)]
pub fn end_doomed() -> ! {
    match DOOMED_HANDLER.get() {
        Some(handler) => handler(),
        None => panic!("a thread was doomed before the SIP layer installed its handler"),
    }
}

/// The SIP whose code is running right now (SIP mode), or `None` in kernel mode or on a kernel thread.
#[inline]
pub fn running_sip() -> Option<u64> {
    let cpu = percpu::try_current()?;
    if cpu.kernel_depth.load(Ordering::Relaxed) != 0 {
        return None;
    }
    cpu.current_owner.load(Ordering::Relaxed).checked_sub(1)
}

/// The SIP the running thread belongs to, whatever the mode.
#[inline]
pub fn current_sip() -> Option<u64> {
    percpu::try_current()?.current_owner.load(Ordering::Relaxed).checked_sub(1)
}
