//! Ring 3 and back: the `syscall` entry, the `sysret` exit, and running ring-3 code until it asks to leave.
//!
//! `syscall` arrives at [`syscall_entry`] in ring 0 with the user's stack and the user's GS base. The entry swaps
//! GS (`swapgs`: the kernel's per-CPU record is in `KERNEL_GS_BASE` while ring-3 code runs), saves the user stack
//! pointer in the per-CPU [`RingScratch`], switches to the kernel stack kept there, saves the caller's return
//! address, flags and argument registers as a [`SyscallFrame`], and calls the handler the kernel installed
//! ([`install_handler`]). The handler answers in the frame's `rax` and says whether ring-3 code resumes
//! (`sysret`, after swapping GS back) or leaves: [`run_user`], which entered ring 3, then returns to its caller.
//!
//! The per-CPU record the kernel's GS base points at holds a [`RingScratch`] at byte [`SCRATCH_OFFSET`]; the
//! kernel checks that offset at compile time. Registers other than `rax`, `rcx` and `r11` (which `syscall`
//! itself uses) are given back to ring 3 as it left them; nothing of the kernel's is left in a register when
//! ring-3 code starts.
//!
//! Interrupts and exceptions that arrive while ring-3 code runs take the path of `traps`, onto the same kernel
//! stack: [`run_user`] makes it the TSS's `RSP0` as well, through the address the scratch words hold
//! ([`RingScratch::rsp0_slot`]), so the two entries into ring 0 always agree on the stack.
//!
//! Invariant: `sysret` only returns to a canonical lower-half address (a non-canonical one would fault in ring 0
//! on the user's stack): a handler's answer to resume at any other address makes ring-3 code leave instead.

use crate::Selectors;
use x86_64::VirtAddr;
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;

/// Where the per-CPU record (at the kernel's GS base) keeps its [`RingScratch`].
pub const SCRATCH_OFFSET: usize = 8;

/// What the syscall path keeps per core, inside the kernel's per-CPU record at [`SCRATCH_OFFSET`].
#[repr(C)]
#[derive(Debug, Default)]
pub struct RingScratch {
    /// The kernel stack a `syscall` switches to: where [`run_user`] left its own frame.
    pub kernel_rsp: u64,
    /// The ring-3 stack pointer of the `syscall` being handled.
    pub user_rsp: u64,
    /// Address of this core's TSS `RSP0` field ([`crate::CpuTables::rsp0_slot`]), where [`run_user`] also
    /// writes `kernel_rsp`.
    pub rsp0_slot: u64,
    /// Entries into the kernel from ring 3 on this core (`syscall`s, interrupts, exceptions), counted by the
    /// entry stubs themselves: one instruction each.
    pub entries: u64,
}

/// Where [`RingScratch::entries`] is, from the per-CPU record's start.
pub const ENTRIES_OFFSET: usize = SCRATCH_OFFSET + 24;

/// A `syscall` as the handler sees it: the number, the arguments, and where ring-3 code resumes.
#[repr(C)]
#[derive(Debug)]
pub struct SyscallFrame {
    /// Sixth argument.
    pub r9: u64,
    /// Fifth argument.
    pub r8: u64,
    /// Fourth argument (`r10`, as `rcx` is taken by `syscall`).
    pub r10: u64,
    /// Third argument.
    pub rdx: u64,
    /// Second argument.
    pub rsi: u64,
    /// First argument.
    pub rdi: u64,
    /// The call's number on entry; the answer on the way out.
    pub rax: u64,
    /// Ring-3 flags (`syscall` saved them in `r11`).
    pub rflags: u64,
    /// Where ring-3 code resumes (`syscall` saved it in `rcx`).
    pub rip: u64,
    /// Ring-3 stack pointer.
    pub rsp: u64,
}

/// What ring-3 code does after a handler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Next {
    /// Resume ring-3 code with the frame's `rax` as the answer.
    Resume = 0,
    /// Leave: [`run_user`] returns the frame's `rax` to its caller.
    Leave = 1,
}

/// The kernel's syscall handler.
pub type Handler = fn(&mut SyscallFrame) -> Next;

static HANDLER: spin::Once<Handler> = spin::Once::new();

/// Installs the kernel's syscall handler (once, at boot, before any ring-3 code runs).
pub fn install_handler(handler: Handler) {
    HANDLER.call_once(|| handler);
}

/// Flags `syscall` clears on entry: interrupts, single-step, direction, alignment check, and nested task. Ring 3
/// may set any of them (`popfq`); kept in the kernel, the nested-task flag would make the next `iretq` of any
/// thread on the core fault in ring 0 (64-bit mode has no task switch), and a context switch carries the flags
/// over as they are.
const ENTRY_MASK: RFlags = RFlags::INTERRUPT_FLAG
    .union(RFlags::TRAP_FLAG)
    .union(RFlags::DIRECTION_FLAG)
    .union(RFlags::ALIGNMENT_CHECK)
    .union(RFlags::NESTED_TASK);

/// Why `syscall` could not be enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectorsOutOfOrder;

/// Enables `syscall`/`sysret` on the calling core: `EFER.SCE`, `STAR` from `selectors`, `LSTAR` at
/// [`syscall_entry`], and the entry flag mask.
///
/// # Safety
/// Call on every core that may run ring-3 code, after its GDT is loaded, with its GS base pointing at a record
/// that holds a [`RingScratch`] at [`SCRATCH_OFFSET`].
pub unsafe fn enable(selectors: &Selectors) -> Result<(), SelectorsOutOfOrder> {
    Star::write(selectors.user_code, selectors.user_data, selectors.kernel_code, selectors.kernel_data)
        .map_err(|_| SelectorsOutOfOrder)?;
    LStar::write(VirtAddr::new(syscall_entry as *const () as u64));
    SFMask::write(ENTRY_MASK);
    // SAFETY: STAR and LSTAR now name this core's segments and a valid entry, so `syscall` is safe to allow.
    unsafe { Efer::update(|flags| flags.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
    Ok(())
}

/// Called by [`syscall_entry`] on the kernel stack: runs the handler and keeps `sysret`'s invariant.
extern "sysv64" fn dispatch(frame: &mut SyscallFrame) -> Next {
    let next = match HANDLER.get() {
        Some(handler) => handler(frame),
        None => Next::Leave,
    };
    // Only a canonical lower-half address may be `sysret`'s target (module invariant).
    if next == Next::Resume && frame.rip >= 0x0000_8000_0000_0000 {
        return Next::Leave;
    }
    next
}

/// The `syscall` entry (`LSTAR`). See the module docs for what it does; it is entered only by `syscall`.
#[unsafe(naked)]
pub extern "C" fn syscall_entry() {
    core::arch::naked_asm!(
        "swapgs",
        "mov gs:[{user_rsp}], rsp",
        "mov rsp, gs:[{kernel_rsp}]",
        "inc qword ptr gs:[{entries}]",
        // The frame, from its last field down (the push order is the reverse of `SyscallFrame`'s fields).
        "push qword ptr gs:[{user_rsp}]",
        "push rcx",
        "push r11",
        "push rax",
        "push rdi",
        "push rsi",
        "push rdx",
        "push r10",
        "push r8",
        "push r9",
        // Ten words: the stack is 16-byte aligned again (the kernel stack top is), as the call needs.
        "mov rdi, rsp",
        "call {dispatch}",
        "test rax, rax",
        "jnz 2f",
        "pop r9",
        "pop r8",
        "pop r10",
        "pop rdx",
        "pop rsi",
        "pop rdi",
        "pop rax",
        "pop r11",
        "pop rcx",
        "pop rsp",
        "swapgs",
        "sysretq",
        // Leaving: the answer is `run_user`'s result; its frame is where the kernel stack starts.
        "2:",
        "mov rax, [rsp + {rax_slot}]",
        "mov rsp, gs:[{kernel_rsp}]",
        "pop rcx",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "ret",
        user_rsp = const SCRATCH_OFFSET + 8,
        kernel_rsp = const SCRATCH_OFFSET,
        entries = const ENTRIES_OFFSET,
        rax_slot = const 6 * 8,
        dispatch = sym dispatch,
    )
}

/// Runs ring-3 code from `rip` on the stack `rsp` with `rflags`, `argument` in `rdi` (the first argument of the
/// System V ABI) and every other register zero, until its handler says [`Next::Leave`]; returns the answer it
/// left with.
///
/// Ring-3 code may run with interrupts on (`rflags` with IF): they arrive through `traps` on this same kernel
/// stack, which this function makes both the `syscall` stack and `RSP0`.
///
/// # Safety
/// Call with interrupts off, after [`enable`] on this core, with the scratch words' `rsp0_slot` naming this
/// core's TSS; `rip` and `rsp` must be ring-3 (user-accessible, lower-half) memory the caller mapped for this,
/// and the caller's GS base must be the per-CPU record. Whoever switches threads while ring-3 code is
/// suspended must give each thread back its own `kernel_rsp` and `RSP0`.
#[unsafe(naked)]
pub unsafe extern "sysv64" fn run_user(rip: u64, rsp: u64, rflags: u64, argument: u64) -> u64 {
    core::arch::naked_asm!(
        // Callee-saved registers, and one more word so that the kernel stack top is 16-byte aligned.
        "push rbx",
        "push rbp",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "push rcx",
        "mov gs:[{kernel_rsp}], rsp",
        "mov rax, gs:[{rsp0_slot}]",
        "mov [rax], rsp",
        // The `iretq` frame: SS, RSP, RFLAGS, CS, RIP.
        "push {user_ss}",
        "push rsi",
        "push rdx",
        "push {user_cs}",
        "push rdi",
        // Nothing of the kernel's reaches ring 3 but the argument.
        "mov rdi, rcx",
        "xor eax, eax",
        "xor ebx, ebx",
        "xor ecx, ecx",
        "xor edx, edx",
        "xor esi, esi",
        "xor ebp, ebp",
        "xor r8d, r8d",
        "xor r9d, r9d",
        "xor r10d, r10d",
        "xor r11d, r11d",
        "xor r12d, r12d",
        "xor r13d, r13d",
        "xor r14d, r14d",
        "xor r15d, r15d",
        "swapgs",
        "iretq",
        kernel_rsp = const SCRATCH_OFFSET,
        rsp0_slot = const SCRATCH_OFFSET + 16,
        user_ss = const 3 * 8 + 3,
        user_cs = const 4 * 8 + 3,
    )
}

/// The supervisor protections the calling core turned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protections {
    /// SMEP: ring-0 code cannot execute ring-3 pages.
    pub smep: bool,
    /// SMAP: ring-0 code cannot read or write ring-3 pages (except between `stac` and `clac`).
    pub smap: bool,
}

/// Turns on SMEP and SMAP on the calling core where the CPU has them (CPUID leaf 7); says which it turned on.
/// Kernel code that must reach ring-3 memory does so only through checked copies that open SMAP for the copy.
pub fn enable_supervisor_protections() -> Protections {
    use x86_64::registers::control::{Cr4, Cr4Flags};
    // CPUID leaf 7 exists when leaf 0 says so; EBX bit 7 is SMEP, bit 20 SMAP.
    let leaf7 = core::arch::x86_64::__cpuid(0).eax >= 7;
    let ebx = if leaf7 { core::arch::x86_64::__cpuid_count(7, 0).ebx } else { 0 };
    let found = Protections { smep: ebx & (1 << 7) != 0, smap: ebx & (1 << 20) != 0 };
    let mut flags = Cr4Flags::empty();
    flags.set(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION, found.smep);
    flags.set(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION, found.smap);
    // SAFETY: no kernel code executes or touches user-accessible pages outside checked copies (module docs), so
    // forbidding it changes nothing for correct code and turns a stray access into a fault.
    unsafe { Cr4::update(|cr4| cr4.insert(flags)) };
    found
}
