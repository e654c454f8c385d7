//! The context switch: save the running thread's registers on its stack, load the next thread's stack.
//!
//! With one kernel stack per thread (docs/architecture.md, "Kernel thread model") a thread's whole state
//! lives on its stack; switching is saving registers and swapping RSP. The target has no SSE
//! (`x86_64-unknown-none` is soft-float), so there is no FPU state to save. RFLAGS is not saved either: every
//! switch happens with interrupts off and the direction flag clear (the ABI's state at a call), so the flags
//! are the same on both sides; each thread restores its own interrupt flag after the switch returns (or, for a
//! new thread, in `thread_start`).
//!
//! The switch is inline assembly inside the scheduler, not a call: it declares every register except RBX and
//! RBP clobbered, so the compiler saves only what the scheduler still needs (the scheduler's own prologue
//! already saves the callee-saved registers), and the assembly saves RBX and RBP, which Rust does not let an
//! `asm!` block clobber. A switch is then the two pushes, a resume address, and RSP.

/// Words a fresh thread's initial frame takes on its stack (see [`initial_frame`]).
pub const INITIAL_FRAME_WORDS: usize = 4;

/// Switches from the running thread to the thread whose saved stack pointer is `next_rsp`, storing the
/// running thread's stack pointer into `*prev_rsp`. Returns when some later switch resumes this thread.
///
/// A suspended thread's stack holds, from its saved RSP up: the address to resume at, RBX, RBP.
///
/// # Safety
/// Interrupts must be off. `prev_rsp` must be valid for a write and stay valid until the thread is resumed;
/// `next_rsp` must be a stack pointer saved by this function or built by [`initial_frame`] on a live stack.
#[inline(always)]
pub unsafe fn switch(prev_rsp: *mut u64, next_rsp: u64) {
    // SAFETY: the caller's contract; the block leaves every register it does not declare as clobbered as it
    // found it when this thread resumes (RBX, RBP are popped back, RSP is restored by the resuming switch).
    unsafe {
        core::arch::asm!(
            "push rbp",
            "push rbx",
            "lea rax, [rip + 2f]",
            "push rax",
            "mov [rdi], rsp",
            "mov rsp, rsi",
            "ret",
            "2:",
            "pop rbx",
            "pop rbp",
            in("rdi") prev_rsp,
            in("rsi") next_rsp,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("sysv64"),
        );
    }
}

/// First code of every new thread: `switch` "returns" here with the entry function and its argument on top
/// of the stack; take them, align the stack as the ABI wants and call `start(entry, argument)`, which never
/// returns.
#[unsafe(naked)]
unsafe extern "sysv64" fn trampoline() {
    core::arch::naked_asm!(
        "pop rdi",
        "pop rsi",
        "and rsp, -16",
        "call {start}",
        "ud2",
        start = sym super::thread_start,
    )
}

/// Writes a new thread's first frame below `stack_top` and returns the stack pointer to switch to: the
/// trampoline as the resume address, then `entry` and `argument` for it.
///
/// # Safety
/// `stack_top` must be the 16-byte-aligned top of a mapped, writable stack of at least
/// `INITIAL_FRAME_WORDS * 8` bytes that nothing else uses.
pub unsafe fn initial_frame(stack_top: u64, entry: u64, argument: u64) -> u64 {
    let frame: [u64; INITIAL_FRAME_WORDS] = [trampoline as *const () as u64, entry, argument, 0];
    let rsp = stack_top - (INITIAL_FRAME_WORDS as u64) * 8;
    // SAFETY: the caller guarantees the bytes below `stack_top` are mapped, writable and unused.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), rsp as *mut u64, INITIAL_FRAME_WORDS) };
    rsp
}
