//! Interrupts and exceptions that arrive while ring-3 code runs: the ring-aware entry stub of each vector, the
//! common path from ring 3, and the frame the kernel's handler sees.
//!
//! Every IDT entry points at a stub made by [`ring_aware_entry!`]. The stub reads the privilege level of the
//! interrupted code from the CPU's frame. From ring 0 it jumps straight to the kernel's ordinary handler (an
//! `extern "x86-interrupt"` function, unchanged: three more instructions per interrupt). From ring 3 it pushes
//! the vector (and a zero where the CPU pushed no error code) and jumps to [`from_ring_3`], which:
//! - swaps GS (`swapgs`): ring-3 code runs with the user's GS base, the kernel's per-CPU record is in
//!   `KERNEL_GS_BASE`, and no kernel code may run before the swap;
//! - moves to the running thread's kernel stack (the per-CPU scratch word [`RingScratch::kernel_rsp`], which
//!   `run_user` and the scheduler keep equal to the TSS's `RSP0`), copying the CPU's frame there: a vector that
//!   runs on an IST stack (devices, the timer, page faults) would otherwise leave ring-3 state on a stack the
//!   next interrupt reuses, and the kernel could not switch threads on it;
//! - saves every general-purpose register as a [`TrapFrame`] and calls the handler the kernel installed
//!   ([`install_handler`]) on the thread's own kernel stack, where it may block, yield or end the thread;
//! - on return, restores the registers, swaps GS back and returns to ring 3 with `iretq`.
//!
//! Because the handler runs on the thread's own stack, preempting ring-3 code is a plain thread switch inside
//! the handler, unlike ring-0 code, whose interrupts run on the shared IST stack (`kernel::sched::preempt`).
//!
//! Invariants: the path from ring 3 never runs kernel code with the user's GS base; it returns only to ring 3
//! (the frame's `cs` and `ss` are the CPU's, and the kernel's handler never changes them); and ring-3 state
//! never stays on an IST stack past the copy.

use crate::syscall::SCRATCH_OFFSET;

/// Ring-3 code's registers at an interrupt or exception, and the CPU's frame: what the kernel's handler sees.
///
/// `r15` to `rax` are the general-purpose registers as ring-3 code left them (they are what their names say).
#[repr(C)]
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[allow(missing_docs, reason = "the registers are named by their fields; the others have docs")]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// The interrupt vector (pushed by the stub).
    pub vector: u64,
    /// The CPU's error code, or 0 for a vector without one.
    pub error_code: u64,
    /// Where ring-3 code was interrupted.
    pub rip: u64,
    /// Its code segment (ring 3).
    pub cs: u64,
    /// Its flags.
    pub rflags: u64,
    /// Its stack pointer.
    pub rsp: u64,
    /// Its stack segment.
    pub ss: u64,
}

/// Words of a [`TrapFrame`].
const FRAME_WORDS: usize = size_of::<TrapFrame>() / 8;
const _: () = assert!(FRAME_WORDS == 22 && FRAME_WORDS % 2 == 0, "the handler call needs a 16-byte aligned stack");

/// The kernel's handler of interrupts and exceptions from ring 3.
pub type Handler = fn(&mut TrapFrame);

static HANDLER: spin::Once<Handler> = spin::Once::new();

/// Installs the kernel's handler for interrupts and exceptions from ring 3 (once, at boot, before ring-3 code
/// runs).
pub fn install_handler(handler: Handler) {
    HANDLER.call_once(|| handler);
}

/// Called by [`from_ring_3`] on the thread's kernel stack, with the kernel's GS base and interrupts off.
extern "sysv64" fn dispatch(frame: &mut TrapFrame) {
    match HANDLER.get() {
        Some(handler) => handler(frame),
        // Ring-3 code cannot run before the kernel installed its handler (module invariant of the kernel's
        // boot): reaching this is a kernel bug, and the kernel's panic handler reports it.
        None => panic!("an interrupt (vector {}) arrived from ring 3 before a handler was installed", frame.vector),
    }
}

/// The common path of every vector from ring 3 (module docs).
///
/// # Safety
/// Entered only by a [`ring_aware_entry!`] stub, by a jump, for an interrupt or exception that arrived from ring
/// 3, with the vector and an error code pushed above the CPU's frame, and with the per-CPU scratch words naming
/// the running thread's kernel stack.
#[unsafe(naked)]
pub unsafe extern "C" fn from_ring_3() {
    core::arch::naked_asm!(
        "swapgs",
        "inc qword ptr gs:[{entries}]",
        // Eight words from RSP: rax, vector, error code, rip, cs, rflags, rsp, ss.
        "push rax",
        "mov rax, rsp",
        "mov rsp, gs:[{kernel_rsp}]",
        "push qword ptr [rax + 56]",
        "push qword ptr [rax + 48]",
        "push qword ptr [rax + 40]",
        "push qword ptr [rax + 32]",
        "push qword ptr [rax + 24]",
        "push qword ptr [rax + 16]",
        "push qword ptr [rax + 8]",
        "push qword ptr [rax]",
        "push rbx",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push rbp",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov rdi, rsp",
        // Flags ring 3 may have set that an interrupt gate does not clear: direction (the ABI wants it clear)
        // and alignment check (which would open SMAP for the kernel's handler).
        "cld",
        "pushfq",
        "and qword ptr [rsp], {no_ac}",
        "popfq",
        "call {dispatch}",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rbp",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rbx",
        "pop rax",
        // The vector and the error code.
        "add rsp, 16",
        "swapgs",
        "iretq",
        kernel_rsp = const SCRATCH_OFFSET,
        entries = const crate::syscall::ENTRIES_OFFSET,
        no_ac = const !(1u64 << 18) as i64 as i32,
        dispatch = sym dispatch,
    )
}

/// Defines `$name`, the IDT entry of vector `$vector`: interrupted ring-0 code goes on to `$kernel` (an
/// `extern "x86-interrupt"` handler), ring-3 code to [`from_ring_3`]. Add `error_code` for the vectors where
/// the CPU pushes one (8, 10-14, 17, 21, 29, 30): the stub must know where the frame's `cs` is.
///
/// The stub is installed with `set_handler_addr`; the IST choice stays the entry's, as for any handler.
#[macro_export]
macro_rules! ring_aware_entry {
    ($name:ident, $vector:expr, $kernel:path) => {
        #[unsafe(naked)]
        extern "C" fn $name() {
            ::core::arch::naked_asm!(
                // CS is the second word of the CPU's frame; its low two bits are the interrupted ring.
                "test byte ptr [rsp + 8], 3",
                "jnz 2f",
                "jmp {kernel}",
                "2:",
                "push 0",
                "push {vector}",
                "jmp {user}",
                vector = const $vector,
                kernel = sym $kernel,
                user = sym $crate::traps::from_ring_3,
            )
        }
    };
    ($name:ident, $vector:expr, $kernel:path, error_code) => {
        #[unsafe(naked)]
        extern "C" fn $name() {
            ::core::arch::naked_asm!(
                // Above the error code: CS is the third word.
                "test byte ptr [rsp + 16], 3",
                "jnz 2f",
                "jmp {kernel}",
                "2:",
                "push {vector}",
                "jmp {user}",
                vector = const $vector,
                kernel = sym $kernel,
                user = sym $crate::traps::from_ring_3,
            )
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_is_the_push_order_of_the_path_from_ring_3() {
        // The path pushes ss first and r15 last: r15 is at the lowest address, ss at the highest.
        assert_eq!(core::mem::offset_of!(TrapFrame, r15), 0);
        assert_eq!(core::mem::offset_of!(TrapFrame, rax), 14 * 8);
        assert_eq!(core::mem::offset_of!(TrapFrame, vector), 15 * 8);
        assert_eq!(core::mem::offset_of!(TrapFrame, error_code), 16 * 8);
        assert_eq!(core::mem::offset_of!(TrapFrame, rip), 17 * 8);
        assert_eq!(core::mem::offset_of!(TrapFrame, ss), 21 * 8);
    }
}
