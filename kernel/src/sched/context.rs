//! The context switch: save callee-saved registers and flags on the old stack, load the new stack.
//!
//! With one kernel stack per thread (docs/architecture.md, "Kernel thread model") a thread's whole state
//! lives on its stack; switching is saving six registers and RFLAGS and swapping RSP. The target has no SSE
//! (`x86_64-unknown-none` is soft-float), so there is no FPU state to save.

/// Bytes a fresh thread's initial frame takes on its stack (see [`initial_frame`]).
pub const INITIAL_FRAME_WORDS: usize = 8;

/// Switches from the running thread to the thread whose saved stack pointer is `next_rsp`, storing the
/// running thread's stack pointer into `*prev_rsp`. Returns when some later switch resumes this thread.
///
/// # Safety
/// Interrupts must be off. `prev_rsp` must be valid for a write and stay valid until the thread is resumed;
/// `next_rsp` must be a stack pointer saved by this function or built by [`initial_frame`] on a live stack.
#[unsafe(naked)]
pub unsafe extern "sysv64" fn switch(prev_rsp: *mut u64, next_rsp: u64) {
    core::arch::naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "pushfq",
        "mov [rdi], rsp",
        "mov rsp, rsi",
        "popfq",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
    )
}

/// First code of every new thread: `switch` "returns" here with the entry function in r12 and its argument
/// in r13; align the stack as the ABI wants and call `start(entry, argument)`, which never returns.
#[unsafe(naked)]
unsafe extern "sysv64" fn trampoline() {
    core::arch::naked_asm!(
        "mov rdi, r12",
        "mov rsi, r13",
        "and rsp, -16",
        "call {start}",
        "ud2",
        start = sym super::thread_start,
    )
}

/// Writes a new thread's first frame below `stack_top` and returns the stack pointer to switch to: flags with
/// interrupts off, r12 = `entry`, r13 = `argument`, return address = the trampoline.
///
/// # Safety
/// `stack_top` must be the 16-byte-aligned top of a mapped, writable stack of at least
/// `INITIAL_FRAME_WORDS * 8` bytes that nothing else uses.
pub unsafe fn initial_frame(stack_top: u64, entry: u64, argument: u64) -> u64 {
    const RFLAGS_RESERVED: u64 = 1 << 1;
    // Pop order of `switch`: rflags, r15, r14, r13, r12, rbx, rbp, return address.
    let frame: [u64; INITIAL_FRAME_WORDS] =
        [RFLAGS_RESERVED, 0, 0, argument, entry, 0, 0, trampoline as *const () as u64];
    let rsp = stack_top - (INITIAL_FRAME_WORDS as u64) * 8;
    // SAFETY: the caller guarantees the bytes below `stack_top` are mapped, writable and unused.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), rsp as *mut u64, INITIAL_FRAME_WORDS) };
    rsp
}
