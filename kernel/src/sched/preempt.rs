//! Preemption by the timer tick, without switching threads inside the interrupt handler.
//!
//! Interrupt handlers run on the core's interrupt IST stack (`cpu_rings::IstSlot::Interrupts`), which the CPU
//! resets to its top on every delivery: a handler that switched threads there would leave its frames to be
//! overwritten by the next interrupt. So the timer handler only decides, and the interrupted thread yields on
//! its own stack after the handler's `iretq`. [`on_tick`] rewrites the interrupt frame: it writes the
//! interrupted RIP and RFLAGS just below the interrupted RSP (as a `call` followed by a `pushfq` would; the
//! target has no red zone, so the bytes below RSP are free), lowers the frame's RSP by 16, points its RIP at
//! [`yield_trampoline`] and clears IF in its RFLAGS. The trampoline saves every caller-saved register (the
//! interrupted code expected no call), yields through the scheduler with interrupts off, restores them, and
//! returns with `popfq; ret`: the interrupted code continues where it was, with its flags, IF included.
//!
//! The tick checks the room before it writes to the interrupted stack (invariant: kernel code never runs on a
//! SIP's stack without enough room):
//! - SIP code (SIP mode) below its stack limit has eaten into its kernel reserve: the frame's RIP goes to
//!   [`overflow_trampoline`] instead, which reads the guard page below the stack; the page fault ends the SIP
//!   alone as a stack overflow, after this interrupt was handled and acknowledged. Checked on every tick,
//!   whether or not another thread is ready, so a SIP that spins in its reserve ends within a tick.
//! - kernel code (kernel mode, or a kernel thread) with less than [`PREEMPT_ROOM`] left above its stack's
//!   bottom, or not on its thread's stack at all: a kernel bug, and the kernel panics saying so.
//!
//! Not here: device interrupts other than the timer never preempt (they only make threads ready; the idle
//! thread's loop and the next tick pick those up), so only the timer rewrites frames.

use super::{Reason, scheduler};
use crate::memory::stacks;
use crate::{exec, percpu};
use core::sync::atomic::Ordering;
use x86_64::VirtAddr;
use x86_64::registers::rflags::RFlags;
use x86_64::structures::idt::InterruptStackFrame;

/// Bytes a preemption needs below the interrupted stack pointer: the return words (16), the trampoline's
/// saved registers (80) and alignment, and the yield through the scheduler, including the freeing of dead
/// threads that follows a switch. Measured at most 816 bytes (`exec::watermark`); kernel code interrupted with
/// less than this left is a kernel bug.
pub const PREEMPT_ROOM: u64 = 2 * 1024;

/// The timer tick's decision for the interrupted thread (see the module docs). Interrupts are off; `frame` is
/// the timer handler's own interrupt frame.
pub(super) fn on_tick(frame: &mut InterruptStackFrame) {
    let cpu = percpu::current();
    let rsp = frame.stack_pointer.as_u64();
    let sip_code = exec::running_sip().is_some();
    // Below the limit by more than one word: the interrupted code may be the trampoline's final `ret` (`popfq`
    // lets interrupts in at once), whose return address still lies on the stack of SIP code that was at the
    // limit. One word less is no danger: the preemption's frames still have almost the whole reserve.
    if sip_code && rsp + 8 < cpu.stack_limit.load(Ordering::Relaxed) {
        // SAFETY: the new RIP is a trampoline that ends the SIP through its guard page; nothing is written to
        // the interrupted stack.
        unsafe { redirect(frame, overflow_trampoline as *const () as u64, rsp) };
        return;
    }
    let _kernel = exec::KernelAccount::enter_on(cpu);
    let (ready, stack) = {
        let mut s = scheduler(cpu).lock_irqs_off();
        // A task runner inside a poll while other tasks wait hands them to another runner, made ready here: so
        // a task that never awaits (or blocks in a call) cannot keep the core's others from running.
        super::hand_tasks_over(cpu, &mut s);
        let stack = s.current.as_deref().and_then(|t| t.stack()).map(|st| (st.bottom(), st.top()));
        (!s.run_queue.is_empty(), stack)
    };
    if !ready {
        return;
    }
    let rip = frame.instruction_pointer.as_u64();
    // The boot threads run on stacks the scheduler did not make (`stack` is `None`) and are not checked.
    if let Some((bottom, top)) = stack {
        if !(bottom..=top).contains(&rsp) {
            panic!(
                "timer tick on cpu {}: the interrupted code (rip {rip:#x}) runs off its thread's stack \
                 (rsp {rsp:#x}, stack {bottom:#x}..{top:#x})",
                cpu.index
            );
        }
        if rsp - bottom < PREEMPT_ROOM {
            panic!(
                "kernel stack exhausted on cpu {}: {} bytes left below rsp {rsp:#x} at rip {rip:#x}, where a \
                 preemption needs {PREEMPT_ROOM} (a SIP thread's kernel reserve is too small, or a kernel \
                 thread's stack)",
                cpu.index,
                rsp - bottom,
            );
        }
    }
    let flags = frame.cpu_flags.bits();
    // Boot threads run on the bootloader's 256 KiB stack or an AP's 64 KiB boot stack, in shallow kernel loops.
    // SAFETY: `rsp` is the interrupted stack pointer, with PREEMPT_ROOM mapped bytes below it (checked above, or a
    // boot stack); nothing lives below RSP (no red zone), and interrupts stay off until the trampoline used them.
    unsafe {
        let words = (rsp - 16) as *mut u64;
        words.write_unaligned(flags);
        words.add(1).write_unaligned(rip);
        redirect(frame, yield_trampoline as *const () as u64, rsp - 16);
    }
}

/// Makes the interrupt return to `rip` with stack pointer `rsp` and interrupts off.
///
/// # Safety
/// `frame` must be the current handler's own interrupt frame, and `rip` code that can run on `rsp` in the
/// interrupted context.
unsafe fn redirect(frame: &mut InterruptStackFrame, rip: u64, rsp: u64) {
    // SAFETY: the caller's contract; the frame is written through the x86_64 crate's volatile view, so the
    // `iretq` reads the new values.
    let mut view = unsafe { frame.as_mut() };
    view.update(|f| {
        f.instruction_pointer = VirtAddr::new(rip);
        f.stack_pointer = VirtAddr::new(rsp);
        f.cpu_flags.remove(RFlags::INTERRUPT_FLAG);
    });
}

/// Where a preempted thread resumes after the timer handler's `iretq`: the interrupted RFLAGS and RIP are on
/// top of its stack ([`on_tick`]), interrupts are off. Saves the caller-saved registers (and RBX, which holds
/// the unaligned stack pointer across the call), aligns the stack for the ABI, yields (passing the interrupted
/// stack pointer, 96 bytes above the saved registers), restores, and returns to the interrupted instruction
/// with its flags.
#[unsafe(naked)]
unsafe extern "sysv64" fn yield_trampoline() {
    core::arch::naked_asm!(
        "push rax",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "push rbx",
        "mov rbx, rsp",
        "lea rdi, [rsp + 96]",
        "and rsp, -16",
        "cld",
        "call {yield_preempted}",
        "mov rsp, rbx",
        "pop rbx",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rax",
        "popfq",
        "ret",
        yield_preempted = sym yield_preempted,
    )
}

/// The yield of a preempted thread, on its own stack with interrupts off (called by [`yield_trampoline`] with
/// the stack pointer of the interrupted code).
extern "sysv64" fn yield_preempted(interrupted_rsp: u64) {
    let cpu = percpu::current();
    // The tick checked the room: SIP code was above its stack limit, so these frames have the whole reserve.
    let _kernel = exec::KernelAccount::enter_preempted(cpu, interrupted_rsp);
    super::switch_away(cpu, Reason::Yield);
}

/// Where a SIP that the tick found inside its kernel reserve goes after the `iretq` (SIP mode, interrupts
/// off): read the guard page below its stack, whose limit is in the per-CPU record, without touching the
/// stack. The page fault ends the SIP as a stack overflow; `ud2` is never reached.
#[unsafe(naked)]
unsafe extern "sysv64" fn overflow_trampoline() {
    core::arch::naked_asm!(
        "mov rax, qword ptr gs:[{limit}]",
        "sub rax, {below}",
        "cmp byte ptr [rax], 0",
        "ud2",
        limit = const core::mem::offset_of!(percpu::PerCpu, stack_limit),
        below = const stacks::KERNEL_RESERVE + 1,
    )
}
