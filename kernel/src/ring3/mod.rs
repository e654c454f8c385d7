//! Ring 3: enabling `syscall` and the supervisor protections on every core, the kernel's syscall handler, loading
//! address spaces, and the self-tests that run ring-3 code.
//!
//! The mechanism is `cpu_rings`' (the GDT's user segments, the entry and exit stubs, `run_user`, address
//! spaces); this module is the kernel's side: it turns it on per core ([`init_this_core`]), answers the calls
//! every ring-3 program has (the null call and leaving ring 3, a ring-3 SIP's exit: `sip_runtime::ring3_calls`) and hands every other number to the layer that runs ring-3 SIPs ([`install_calls`]), and loads a
//! space on a core ([`load_space`], kept lazy by the scheduler: kernel threads run in whatever space is loaded,
//! as the kernel half is the same in all). Interrupts and exceptions from ring 3 are the `interrupts` layer's.

use crate::percpu::PerCpu;
use core::sync::atomic::{AtomicU64, Ordering};
use cpu_rings::syscall::{self, Next, Protections, SyscallFrame};
use sip_runtime::ring3_calls as calls;
use x86_64::PhysAddr;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::PhysFrame;

/// Null calls answered since boot (all cores).
static NULL_CALLS: AtomicU64 = AtomicU64::new(0);

/// Null calls answered since boot (all cores).
pub fn null_calls() -> u64 {
    NULL_CALLS.load(Ordering::Relaxed)
}

/// Enables `syscall` and turns on SMEP and SMAP (where the CPU has them) on the calling core; says which
/// protections are on. Call once per core, after its GDT is loaded and its GS base points at its record.
pub fn init_this_core() -> Protections {
    syscall::install_handler(handle);
    let Some(selectors) = crate::percpu::current().tables.selectors() else {
        panic!("ring3::init_this_core before the core's descriptor tables were loaded")
    };
    // SAFETY: this core's GDT is loaded (its selectors exist) and its GS base is its record, which holds the
    // scratch words at the offset the entry reads (checked at compile time in `percpu`).
    if let Err(e) = unsafe { syscall::enable(&selectors) } {
        panic!("cannot enable syscall: {e:?}");
    }
    syscall::enable_supervisor_protections()
}

/// The calls of the layers above (the SIP layer's ring-3 ABI), installed at boot.
static UPPER_CALLS: spin::Once<fn(&mut SyscallFrame) -> Next> = spin::Once::new();

/// Installs the handler of every call number other than the null call and leaving (once, at boot, by the layer
/// that runs ring-3 SIPs).
pub fn install_calls(handler: fn(&mut SyscallFrame) -> Next) {
    UPPER_CALLS.call_once(|| handler);
}

/// The kernel's syscall handler.
fn handle(frame: &mut SyscallFrame) -> Next {
    match frame.rax {
        calls::NULL => {
            NULL_CALLS.fetch_add(1, Ordering::Relaxed);
            frame.rax = 0;
            Next::Resume
        }
        // Leaving ring 3: `cpu_rings::run_user` returns the first argument (a ring-3 SIP's exit status).
        calls::EXIT => {
            frame.rax = frame.rdi;
            Next::Leave
        }
        _ => match UPPER_CALLS.get() {
            Some(upper) => upper(frame),
            None => {
                frame.rax = calls::NO_SUCH_CALL;
                Next::Resume
            }
        },
    }
}

/// Loads the address space whose level-4 table is at physical address `level_4` (0: the kernel's) on `cpu`, the
/// calling core, with interrupts off.
pub fn load_space(cpu: &PerCpu, level_4: u64) {
    let frame = if level_4 == 0 {
        crate::memory::paging::kernel_level_4()
    } else {
        PhysFrame::containing_address(PhysAddr::new(level_4))
    };
    // SAFETY: the kernel runs on upper-half memory, the same in every space (`memory::paging::init` made every
    // upper-half level-4 entry before any space copied them); a ring-3 space stays alive while a thread of it
    // exists, and the last one unloads it before it is freed ([`unload_space`]).
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
    cpu.loaded_space.store(level_4, Ordering::Relaxed);
    PerCpu::count(&cpu.cr3_writes);
}

/// Before the space at `level_4` is freed: if `cpu` (the calling core) has it loaded, load the kernel's instead.
/// Spaces are per core (a SIP's threads all run on its core), so no other core can have it.
pub fn unload_space(cpu: &PerCpu, level_4: u64) {
    let were_enabled = x86_64::instructions::interrupts::are_enabled();
    x86_64::instructions::interrupts::disable();
    if cpu.loaded_space.load(Ordering::Relaxed) == level_4 {
        load_space(cpu, 0);
    }
    if were_enabled {
        x86_64::instructions::interrupts::enable();
    }
}

mod selftests;
