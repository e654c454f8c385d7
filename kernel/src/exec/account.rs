//! Accounts: whether the running code works for the kernel or for a SIP, and the guard that puts it on the
//! kernel's account.
//!
//! A SIP thread runs on its SIP's account (depth 0) while it executes service code, and on the kernel's account
//! (depth > 0) inside every ABI call, channel hook and interrupt handler, entered with [`KernelAccount::enter`].
//! The words "SIP mode" and "kernel mode" elsewhere in the kernel mean exactly this, not the CPU's privilege
//! level: a `type` SIP's code runs in ring 0 in SIP mode, and a ring-3 SIP's thread is in SIP mode while its code
//! runs in ring 3 (its calls and traps enter the kernel's account at once; its thread has no kernel reserve and
//! no stack limit, as its own code never runs on that stack). The depth is per thread (the scheduler saves and restores it on every
//! switch), because a thread can be preempted inside kernel code. On a SIP's account, allocations go to the
//! SIP's arena and a panic or CPU exception ends that SIP; on the kernel's, allocations go to the kernel heap and
//! a panic stops the machine.
//!
//! Kernel code is never cut short: a thread whose SIP is being ended while it runs kernel code is *doomed*
//! (`sched::doom`) and ends itself when it leaves the kernel's account for the last time ([`KernelAccount`]'s
//! drop at depth 0) or parks at a cut point. How a SIP ends is the SIP layer's business: it installs its
//! answers at boot ([`install_sip_endings`]), and this layer and the ones below call them without knowing what a
//! SIP is.
//!
//! Entering the kernel's account from SIP code (depth 0 before the entry) is also where the kernel makes sure it
//! has room on the SIP's stack, which it runs on: if the stack pointer is below the per-CPU stack limit (inside
//! the thread's kernel reserve, `memory::stacks::KERNEL_RESERVE`), the SIP has used up its own stack, and the
//! entry ends it as a stack overflow instead of running kernel code there. It does so without kernel code: back
//! in SIP mode it reads the guard page below the stack, and the page fault (on its own IST stack) ends the SIP
//! alone. Invariant: kernel code entered from a SIP always has the whole reserve below it. The check is a
//! subtraction and a compare on every kernel entry (every yield and ABI call, each channel hook); whether the
//! entry leaves SIP code is asked only when the stack pointer is inside the reserve. The global allocator, which
//! serves SIP code in SIP mode, makes the same check before it takes a lock ([`check_sip_stack`]).

use super::watermark;
use crate::memory::stacks::KERNEL_RESERVE;
use crate::percpu;
use core::sync::atomic::Ordering;

/// Who the running code works for: the account its allocations are charged to and its faults blamed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// Kernel work (console, idle, monitors, self-tests).
    Kernel,
    /// A software-isolated process, by its id.
    Sip(u64),
}

impl Account {
    /// The account as the per-CPU `current_owner` word: 0 for the kernel, SIP id + 1 otherwise.
    pub const fn word(self) -> u64 {
        match self {
            Account::Kernel => 0,
            Account::Sip(id) => id + 1,
        }
    }
}

/// A guard that keeps the calling thread in kernel mode until dropped.
pub struct KernelAccount(Option<&'static percpu::PerCpu>);

impl KernelAccount {
    /// Enters kernel mode (nests).
    #[inline]
    pub fn enter() -> Self {
        match percpu::try_current() {
            Some(cpu) => Self::enter_on(cpu),
            None => KernelAccount(None),
        }
    }

    /// [`KernelAccount::enter`] for a caller that already holds its core's record (saves a lookup on hot paths).
    /// The thread must not move to another core while the guard lives (threads never migrate today).
    #[inline]
    pub fn enter_on(cpu: &'static percpu::PerCpu) -> Self {
        cpu.kernel_depth.fetch_add(1, Ordering::Relaxed);
        // Is the stack pointer inside the running thread's kernel reserve (`limit - KERNEL_RESERVE ..= limit`)?
        // Never on a kernel thread: its limit is 0, and no stack lies in the top KERNEL_RESERVE bytes of the
        // address space, where `0 - rsp` would be that small. Whether the thread is leaving SIP code is asked
        // only then: kernel code nested deeper may use the reserve, which is what it is for.
        if room_above_limit(cpu.stack_limit.load(Ordering::Relaxed)) <= KERNEL_RESERVE {
            reserve_entered(cpu);
        }
        if watermark::ENABLED && cpu.kernel_depth.load(Ordering::Relaxed) == 1 {
            watermark::begin(cpu, stack_pointer());
        }
        KernelAccount(Some(cpu))
    }

    /// Enters kernel mode without the stack check of [`KernelAccount::enter_on`]: for the timer's preemption of
    /// SIP code, whose tick has checked the room already (the interrupted code was above its stack limit), and
    /// whose trampoline frames may legitimately reach just below the limit. `interrupted_rsp` is where the
    /// interrupted code's stack pointer was (for the stack measurement, `exec::watermark`).
    #[inline]
    pub fn enter_preempted(cpu: &'static percpu::PerCpu, interrupted_rsp: u64) -> Self {
        if cpu.kernel_depth.fetch_add(1, Ordering::Relaxed) == 0 && watermark::ENABLED {
            watermark::begin_preemption(cpu, interrupted_rsp);
        }
        KernelAccount(Some(cpu))
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

/// `limit - rsp` (wrapping) for the calling code's stack pointer: one subtraction from RSP.
#[inline(always)]
fn room_above_limit(limit: u64) -> u64 {
    let difference: u64;
    // SAFETY: arithmetic on registers only (RSP is read, not changed); no memory or stack is touched.
    unsafe { core::arch::asm!("sub {0}, rsp", inout(reg) limit => difference, options(nomem, nostack)) };
    difference
}

/// A kernel entry found the stack pointer inside the thread's kernel reserve. Kernel code nested in kernel mode
/// may be there; code that has just left SIP code (the depth is 1 with this entry; only this thread changes it)
/// means that the SIP has used up its stack: back in SIP mode, end it as a stack overflow through the guard
/// page (see the module docs). Runs on what is left of the stack, so it is tiny.
#[cold]
#[inline(never)]
fn reserve_entered(cpu: &percpu::PerCpu) {
    if cpu.kernel_depth.load(Ordering::Relaxed) == 1 {
        cpu.kernel_depth.fetch_sub(1, Ordering::Relaxed);
        touch_guard_page(cpu.stack_limit.load(Ordering::Relaxed))
    }
}

/// For kernel code that runs in SIP mode on a SIP's stack and takes kernel locks (the global allocator, whose
/// arena and page-table locks a fault must never leave held): ends the running SIP as a stack overflow, as a
/// kernel entry would, if its stack pointer is inside its kernel reserve. Call only in SIP mode (depth 0); on a
/// kernel thread it never triggers (limit 0).
#[inline(always)]
pub fn check_sip_stack(cpu: &percpu::PerCpu) {
    let limit = cpu.stack_limit.load(Ordering::Relaxed);
    if room_above_limit(limit) <= KERNEL_RESERVE {
        touch_guard_page(limit)
    }
}

/// Reads the byte just below the running SIP thread's stack, whose limit is `limit`: its guard page, never
/// mapped. The page fault arrives on the page-fault IST stack in SIP mode, and the handler ends the SIP as a
/// stack overflow (the address lies in the unmapped part of the thread's stack slot). Call in SIP mode.
#[cold]
#[inline(never)]
fn touch_guard_page(limit: u64) -> ! {
    let guard = limit.wrapping_sub(KERNEL_RESERVE + 1);
    // SAFETY: a read of one byte, which faults (the guard page is never mapped); the fault handler never returns
    // here, and were the read to succeed, `ud2` would raise another exception that ends the SIP. No memory is
    // written and nothing below the stack pointer is touched.
    unsafe { core::arch::asm!("cmp byte ptr [{guard}], 0", "ud2", guard = in(reg) guard, options(noreturn, nostack)) }
}

impl Drop for KernelAccount {
    #[inline]
    fn drop(&mut self) {
        if let Some(cpu) = self.0 {
            leave_on(cpu);
        }
    }
}

/// How a SIP ends when this layer or one below finds that it must: the SIP layer's answers, installed at boot
/// ([`install_sip_endings`]), so that lower layers can end a SIP without knowing what a SIP is.
#[derive(Clone, Copy)]
pub struct SipEndings {
    /// Run by a doomed thread when it leaves kernel code or parks at a cut point: its SIP is ending, so it goes.
    pub doomed: fn() -> !,
    /// Ends the SIP the running thread belongs to for a fault (a CPU exception in its code, a broken rule of
    /// the exchange heap's records), with a description of what it did.
    pub fault: fn(alloc::string::String) -> !,
}

static SIP_ENDINGS: spin::Once<SipEndings> = spin::Once::new();

/// Installs how SIPs end (once, at boot, before the first SIP starts).
pub fn install_sip_endings(endings: SipEndings) {
    SIP_ENDINGS.call_once(|| endings);
}

fn sip_endings() -> SipEndings {
    *SIP_ENDINGS.get().unwrap_or_else(|| panic!("a SIP was ended before the SIP layer installed its endings"))
}

/// Ends the running thread, which is doomed (see the module docs).
#[cold]
#[inline(never)]
pub fn end_doomed() -> ! {
    (sip_endings().doomed)()
}

/// Ends the SIP the running thread belongs to for the fault `description` (its code faulted, or it broke a
/// rule a lower layer checks). Never returns.
#[cold]
#[inline(never)]
pub fn end_sip_for_fault(description: alloc::string::String) -> ! {
    (sip_endings().fault)(description)
}

/// Leaves one level of kernel mode on `cpu`, the calling core; a doomed thread leaving its last level ends.
#[inline(always)]
fn leave_on(cpu: &percpu::PerCpu) {
    if watermark::ENABLED && cpu.kernel_depth.load(Ordering::Relaxed) == 1 {
        watermark::end(cpu);
    }
    if cpu.kernel_depth.fetch_sub(1, Ordering::Relaxed) == 1 && cpu.current_doomed.load(Ordering::Relaxed) {
        end_doomed();
    }
}

/// For the global allocator in SIP mode, which runs on the SIP's stack without entering kernel mode: the start
/// and end of a stretch of kernel code that the stack measurement (`exec::watermark`) must see; nothing when
/// it is off.
#[inline(always)]
pub fn sip_mode_kernel_code<R>(cpu: &percpu::PerCpu, f: impl FnOnce() -> R) -> R {
    if !watermark::ENABLED {
        return f();
    }
    watermark::begin(cpu, stack_pointer());
    let result = f();
    watermark::end(cpu);
    result
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
    current_sip_on(percpu::try_current()?)
}

/// [`current_sip`] for a caller that holds its core's record (`cpu`, this core's).
#[inline]
pub fn current_sip_on(cpu: &percpu::PerCpu) -> Option<u64> {
    cpu.current_owner.load(Ordering::Relaxed).checked_sub(1)
}
