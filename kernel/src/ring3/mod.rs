//! Ring 3: enabling `syscall` and the supervisor protections on every core, the kernel's syscall handler, and the
//! self-test that runs ring-3 code.
//!
//! The mechanism is `cpu_rings::syscall`'s (the GDT's user segments, the entry and exit stubs, `run_user`); this
//! module is the kernel's side: it turns it on per core ([`init_this_core`]), answers calls ([`handle`]), and
//! proves the round trip with real ring-3 code in a self-test, which also measures a null call. What the
//! handler answers today: call 0 is the null call (answer 0), call 1 leaves ring 3 with its first argument, and
//! any other number is answered with [`NO_SUCH_CALL`]. Ring-3 SIPs (protection modes `ring3` and `ring3-own`)
//! build on this; they are not here yet.

use core::sync::atomic::{AtomicU64, Ordering};
use cpu_rings::syscall::{self, Next, Protections, SyscallFrame};

/// The answer to a call number the kernel does not know.
pub const NO_SUCH_CALL: u64 = u64::MAX;

/// Null calls answered since boot (all cores).
static NULL_CALLS: AtomicU64 = AtomicU64::new(0);

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

/// The kernel's syscall handler.
fn handle(frame: &mut SyscallFrame) -> Next {
    match frame.rax {
        0 => {
            NULL_CALLS.fetch_add(1, Ordering::Relaxed);
            frame.rax = 0;
            Next::Resume
        }
        1 => {
            frame.rax = frame.rdi;
            Next::Leave
        }
        _ => {
            frame.rax = NO_SUCH_CALL;
            Next::Resume
        }
    }
}

mod selftests;
