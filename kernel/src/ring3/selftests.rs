//! Self-tests of ring 3: real ring-3 code makes null calls, an unknown call and a leaving call, and the kernel
//! checks the answers, the count and that the ring-3 pages are gone afterwards.

use super::{NO_SUCH_CALL, NULL_CALLS};
use crate::memory::frames::{self, Use};
use crate::memory::layout::USER_START;
use crate::memory::paging;
use core::sync::atomic::Ordering;
use x86_64::VirtAddr;
use x86_64::registers::rflags::RFlags;
use x86_64::structures::paging::{Page, PageTableFlags as Flags, PhysFrame, Size4KiB};

/// Null calls the ring-3 program makes.
const CALLS: u32 = 1000;

/// The ring-3 program, hand-assembled (x86-64):
/// ```text
///     mov r12d, CALLS        ; 41 bc imm32
/// 1:  xor eax, eax           ; 31 c0         call 0: null
///     syscall                ; 0f 05
///     dec r12d               ; 41 ff cc
///     jnz 1b                 ; 75 f7
///     mov eax, 7             ; b8 07 00 00 00   an unknown call: its answer goes to rdi
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
        0xb8, 0x07, 0x00, 0x00, 0x00, // mov eax, 7
        0x0f, 0x05, // syscall
        0x48, 0x89, 0xc7, // mov rdi, rax
        0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1
        0x0f, 0x05, // syscall
        0x0f, 0x0b, // ud2
    ]
}

/// Maps a fresh frame at `page` for ring 3 with `flags`, filled with `bytes` (through the physical window, so
/// SMAP never sees the kernel touch a ring-3 page).
fn map_user(page: Page<Size4KiB>, bytes: &[u8], flags: Flags) -> Result<(), alloc::string::String> {
    let frame: PhysFrame<Size4KiB> = frames::allocate(Use::Kernel).ok_or("out of frames")?;
    let window = crate::memory::phys_to_virt(frame.start_address()).as_mut_ptr::<u8>();
    // SAFETY: the frame is fresh from the allocator, so only this code sees it; the window maps all 4096 bytes.
    unsafe {
        window.write_bytes(0, 4096);
        window.copy_from_nonoverlapping(bytes.as_ptr(), bytes.len().min(4096));
    }
    paging::map(page, frame, flags | Flags::USER_ACCESSIBLE).map_err(|e| {
        let _ = frames::deallocate(frame);
        alloc::format!("cannot map {:#x}: {e:?}", page.start_address().as_u64())
    })
}

crate::selftest! {
    /// Ring-3 code makes 1,000 null calls, one unknown call and a leaving call; every answer is right, the
    /// kernel saw every call, and the ring-3 pages and their frames are gone afterwards. Logs the cost of one
    /// null call round trip (guest instructions under `--icount`).
    fn null_calls_from_ring_3() {
        let code = Page::<Size4KiB>::containing_address(VirtAddr::new(USER_START));
        let stack = code + 1;
        // Data frames: page tables made for the ring-3 region stay (they are a cache, `frames::FrameStats`).
        let data_free = || {
            let stats = frames::stats();
            stats.free + stats.page_tables
        };
        let free_before = data_free();
        map_user(code, &program(), Flags::empty())?;
        if let Err(e) = map_user(stack, &[], Flags::WRITABLE | Flags::NO_EXECUTE) {
            let _ = paging::unmap_and_free(code);
            return Err(e);
        }
        let were_enabled = x86_64::instructions::interrupts::are_enabled();
        x86_64::instructions::interrupts::disable();
        let tables = crate::percpu::current().tables;
        let previous_rsp0 = tables.kernel_stack();
        let here: u64;
        // SAFETY: copies RSP into a register; nothing else is touched.
        unsafe { core::arch::asm!("mov {}, rsp", out(reg) here, options(nomem, nostack, preserves_flags)) };
        let calls_before = NULL_CALLS.load(Ordering::Relaxed);
        let start = crate::arch::cpu::rdtsc();
        // SAFETY: interrupts are off and stay off in ring 3 (its flags lack IF); `RSP0` is set below this frame,
        // clear of what `run_user` pushes, on this core; `syscall` is enabled on every core at boot; the code and
        // stack pages were just mapped user-accessible in the lower half for this alone.
        let left_with = unsafe {
            tables.set_kernel_stack((here - 512) & !15);
            cpu_rings::run_user(code.start_address().as_u64(), (stack + 1).start_address().as_u64(), RFlags::empty().bits() | 2)
        };
        let cycles = crate::arch::cpu::rdtsc() - start;
        let calls = NULL_CALLS.load(Ordering::Relaxed) - calls_before;
        // SAFETY: as above; the previous value was this core's.
        unsafe { tables.set_kernel_stack(previous_rsp0) };
        if were_enabled {
            x86_64::instructions::interrupts::enable();
        }
        let unmapped = paging::unmap_and_free(code).and(paging::unmap_and_free(stack));
        log::info!("ring 3: {calls} null calls, {} cycles each (guest instructions under --icount)", cycles / u64::from(CALLS));
        crate::check!(left_with == NO_SUCH_CALL, "ring 3 left with {left_with:#x}, not the unknown call's answer");
        crate::check!(calls == u64::from(CALLS), "the kernel saw {calls} null calls of {CALLS}");
        crate::check!(unmapped.is_ok(), "cannot unmap the ring-3 pages: {unmapped:?}");
        crate::check!(data_free() == free_before, "ring-3 pages leaked frames");
        crate::check!(paging::translate(code.start_address()).is_none(), "the ring-3 code page is still mapped");
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
