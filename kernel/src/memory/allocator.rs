//! The global allocator: routes each allocation to the kernel heap or to the running SIP's arena.
//!
//! Allocation follows the execution context (`exec`): SIP mode → the SIP's arena; kernel mode or a kernel
//! thread → the kernel heap. Freeing follows the address, so a block is always returned to the heap it came
//! from, whoever frees it.

use super::heap;
use crate::percpu;
use crate::sip::arena::{self, Arena};
use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::Ordering;

struct Router;

#[global_allocator]
static ROUTER: Router = Router;

fn current_arena() -> Option<&'static Arena> {
    let cpu = percpu::try_current()?;
    if cpu.kernel_depth.load(Ordering::Relaxed) != 0 {
        return None;
    }
    let addr = cpu.current_arena.load(Ordering::Relaxed);
    // SAFETY: the scheduler stores the address of the running thread's live arena (it outlives the SIP's
    // threads: the arena is dropped only after they are gone), or 0.
    (addr != 0).then(|| unsafe { &*(addr as *const Arena) })
}

// SAFETY: every block comes from exactly one of the two allocators (each sound on its own) and is returned
// to the same one, chosen by address on free.
unsafe impl GlobalAlloc for Router {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match current_arena() {
            Some(arena) => arena.alloc(layout),
            // SAFETY: forwarded with the caller's layout.
            None => unsafe { heap::HEAP.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let addr = ptr as usize;
        if heap::contains(addr) {
            // SAFETY: the block is in the kernel heap's region, so it came from it (caller contract).
            unsafe { heap::HEAP.dealloc(ptr, layout) }
        } else if arena::in_arena_region(addr) {
            // SAFETY: the block is in the arena region, so it came from an arena (caller contract).
            unsafe { arena::dealloc(ptr, layout) }
        } else {
            log::error!("free of {ptr:p}, which no heap allocated, ignored");
        }
    }
}
