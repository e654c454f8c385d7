//! Self-tests of ring 3: real ring-3 code makes null calls, an unknown call and a leaving call in an address
//! space of its own, and the kernel checks the answers, the count and that the space is gone afterwards.

use super::NULL_CALLS;
use crate::memory::frames;
use crate::memory::layout::{USER_START, user_stack_top};
use crate::memory::paging;
use crate::memory::user_spaces::{self, UserSpace};
use core::sync::atomic::Ordering;
use sip_runtime::ring3_calls::NO_SUCH_CALL;
use x86_64::VirtAddr;
use x86_64::registers::rflags::RFlags;
use x86_64::structures::paging::PageTableFlags as Flags;

/// Null calls the ring-3 program makes.
const CALLS: u32 = 1000;

/// The ring-3 program, hand-assembled (x86-64):
/// ```text
///     mov r12d, CALLS        ; 41 bc imm32
/// 1:  xor eax, eax           ; 31 c0         call 0: null
///     syscall                ; 0f 05
///     dec r12d               ; 41 ff cc
///     jnz 1b                 ; 75 f7
///     mov eax, 99            ; b8 63 00 00 00   an unknown call: its answer goes to rdi
///     syscall                ; 0f 05
///     mov rdi, rax           ; 48 89 c7
///     mov eax, 1             ; b8 01 00 00 00   call 1: leave with rdi
///     syscall                ; 0f 05
///     ud2                    ; 0f 0b         never reached
/// ```
fn program() -> [u8; 34] {
    let n = CALLS.to_le_bytes();
    [
        0x41, 0xbc, n[0], n[1], n[2], n[3], // mov r12d, CALLS
        0x31, 0xc0, // xor eax, eax
        0x0f, 0x05, // syscall
        0x41, 0xff, 0xcc, // dec r12d
        0x75, 0xf7, // jnz -9
        0xb8, 0x63, 0x00, 0x00, 0x00, // mov eax, 99
        0x0f, 0x05, // syscall
        0x48, 0x89, 0xc7, // mov rdi, rax
        0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1
        0x0f, 0x05, // syscall
        0x0f, 0x0b, // ud2
    ]
}

/// Maps a fresh frame at `page` of `space` for ring 3 with `flags`, filled with `bytes`.
fn map_user(space: &mut UserSpace, page: u64, bytes: &[u8], flags: Flags) -> Result<(), alloc::string::String> {
    let frame = user_spaces::fresh_user_frame(bytes).ok_or("out of frames")?;
    space.map(VirtAddr::new(page), frame, flags).map_err(|e| {
        let _ = frames::deallocate(frame);
        alloc::format!("cannot map {page:#x}: {e:?}")
    })
}

/// Runs the ring-3 code at `rip` of `space` on this core with interrupts off until it leaves; returns what it
/// left with.
fn run_in(space: &UserSpace, rip: u64, rsp: u64) -> u64 {
    let were_enabled = x86_64::instructions::interrupts::are_enabled();
    x86_64::instructions::interrupts::disable();
    let cpu = crate::percpu::current();
    let previous = cpu.loaded_space.load(Ordering::Relaxed);
    super::load_space(cpu, space.level_4().start_address().as_u64());
    // SAFETY: interrupts are off and stay off in ring 3 (its flags lack IF), so nothing switches threads while
    // `run_user` has made this stack the core's ring-3 entry stack; `syscall` is enabled on every core at boot;
    // `rip` and `rsp` are pages of the space just loaded, mapped user-accessible by the caller.
    let left_with = unsafe { cpu_rings::run_user(rip, rsp, RFlags::empty().bits() | 2, 0) };
    super::load_space(cpu, previous);
    if were_enabled {
        x86_64::instructions::interrupts::enable();
    }
    left_with
}

crate::selftest! {
    /// Ring-3 code makes 1,000 null calls, one unknown call and a leaving call in an address space of its own;
    /// every answer is right, the kernel saw every call, and the space's pages, tables and frames are gone
    /// afterwards. Logs the cost of one null call round trip (guest instructions under `--icount`).
    fn null_calls_from_ring_3() {
        let code = USER_START;
        let stack_top = user_stack_top(0);
        let free_before = frames::stats().free;
        let mut space = user_spaces::new_space().map_err(|e| alloc::format!("no address space: {e:?}"))?;
        map_user(&mut space, code, &program(), Flags::empty())?;
        map_user(&mut space, stack_top - 4096, &[], Flags::WRITABLE | Flags::NO_EXECUTE)?;
        crate::check!(paging::translate(VirtAddr::new(code)).is_none(), "the ring-3 page shows in the kernel's own tables");
        let calls_before = NULL_CALLS.load(Ordering::Relaxed);
        let start = crate::arch::cpu::rdtsc();
        let left_with = run_in(&space, code, stack_top);
        let cycles = crate::arch::cpu::rdtsc() - start;
        let calls = NULL_CALLS.load(Ordering::Relaxed) - calls_before;
        drop(space);
        log::info!("ring 3: {calls} null calls, {} cycles each (guest instructions under --icount)", cycles / u64::from(CALLS));
        crate::check!(left_with == NO_SUCH_CALL, "ring 3 left with {left_with:#x}, not the unknown call's answer");
        crate::check!(calls == u64::from(CALLS), "the kernel saw {calls} null calls of {CALLS}");
        crate::check!(frames::stats().free == free_before, "the address space leaked {} frames", free_before - frames::stats().free);
        Ok(())
    }
}

crate::selftest! {
    /// `syscall` is enabled, and SMEP and SMAP are on where the CPU has them.
    fn syscall_and_supervisor_protections_are_on() {
        use x86_64::registers::control::{Cr4, Cr4Flags};
        use x86_64::registers::model_specific::{Efer, EferFlags};
        crate::check!(Efer::read().contains(EferFlags::SYSTEM_CALL_EXTENSIONS), "EFER.SCE is off");
        let ebx = core::arch::x86_64::__cpuid_count(7, 0).ebx;
        let cr4 = Cr4::read();
        if ebx & (1 << 7) != 0 {
            crate::check!(cr4.contains(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION), "the CPU has SMEP, but it is off");
        }
        if ebx & (1 << 20) != 0 {
            crate::check!(cr4.contains(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION), "the CPU has SMAP, but it is off");
        }
        Ok(())
    }
}
