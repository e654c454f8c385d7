//! The global allocator: routes each allocation to the kernel heap or to the running SIP's arena.
//!
//! Allocation follows the account (`exec::account`): SIP mode → the SIP's arena (a thread SIP) or its owner
//! record in its core's small heap (an async SIP, `memory::small_heap`); kernel mode or a kernel thread → the
//! kernel heap. Freeing follows the address, so a block is always returned to the heap it came
//! from, whoever frees it.
//!
//! In SIP mode this is kernel code running on the SIP's stack without entering kernel mode, and it takes locks
//! (the arena's, the kernel heap's, page tables and frames when an arena grows): a SIP that calls it with its
//! stack used up (inside its kernel reserve) is ended first, before any lock is taken (`exec::check_sip_stack`),
//! so a stack overflow can never leave one of them held.

use crate::memory::arena::{self, Arena};
use crate::memory::{heap, small_heap};
use crate::percpu;
use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::Ordering;

struct Router;

#[global_allocator]
static ROUTER: Router = Router;

/// The running core's record if the calling code runs in SIP mode (on a SIP thread's stack, or on a kernel
/// thread, whose stack limit is 0), after making sure the SIP's stack is not used up (`exec::check_sip_stack`).
fn sip_mode() -> Option<&'static percpu::PerCpu> {
    let cpu = percpu::try_current()?;
    if cpu.kernel_depth.load(Ordering::Relaxed) != 0 {
        return None;
    }
    super::check_sip_stack(cpu);
    Some(cpu)
}

/// Where the running SIP's memory is: the per-CPU `current_arena` word.
enum SipHeap {
    /// A thread SIP's arena.
    Arena(&'static Arena),
    /// An async SIP's record in its core's small heap.
    Small(&'static small_heap::Owner),
}

/// The tag bit of the `current_arena` word that says "a small-heap owner", not an arena (both records are
/// boxed, so their addresses are even).
pub const SMALL_HEAP_TAG: usize = 1;

fn current_heap(cpu: &percpu::PerCpu) -> Option<SipHeap> {
    let word = cpu.current_arena.load(Ordering::Relaxed);
    if word == 0 {
        None
    } else if word & SMALL_HEAP_TAG != 0 {
        // SAFETY: the task runner stores the tagged address of the polled async SIP's owner record, which lives
        // until after its last poll (the SIP's record keeps it), or the scheduler restores the running thread's.
        Some(SipHeap::Small(unsafe { &*((word & !SMALL_HEAP_TAG) as *const small_heap::Owner) }))
    } else {
        // SAFETY: the scheduler stores the address of the running thread's live arena (it outlives the SIP's
        // threads: the arena is dropped only after they are gone), or 0.
        Some(SipHeap::Arena(unsafe { &*(word as *const Arena) }))
    }
}

/// Returns a block to the heap its address lies in.
///
/// # Safety
/// As [`GlobalAlloc::dealloc`].
unsafe fn free(ptr: *mut u8, layout: Layout) {
    let addr = ptr as usize;
    if heap::contains(addr) {
        // SAFETY: the block is in the kernel heap's region, so it came from it (caller contract).
        unsafe { heap::HEAP.dealloc(ptr, layout) }
    } else if arena::in_arena_region(addr) {
        // SAFETY: the block is in the arena region, so it came from an arena (caller contract).
        unsafe { arena::dealloc(ptr, layout) }
    } else if small_heap::contains(addr) {
        // SAFETY: the block is in the small heaps' region, so it came from an owner there (caller contract).
        unsafe { small_heap::dealloc(ptr, layout) }
    } else {
        log::error!("free of {ptr:p}, which no heap allocated, ignored");
    }
}

// SAFETY: every block comes from exactly one of the three allocators (each sound on its own) and is returned
// to the same one, chosen by address on free.
unsafe impl GlobalAlloc for Router {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match sip_mode().and_then(|cpu| Some((cpu, current_heap(cpu)?))) {
            Some((cpu, SipHeap::Arena(arena))) => super::sip_mode_kernel_code(cpu, || arena.alloc(layout)),
            Some((cpu, SipHeap::Small(owner))) => super::sip_mode_kernel_code(cpu, || owner.alloc(layout)),
            // SAFETY: forwarded with the caller's layout.
            None => unsafe { heap::HEAP.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match sip_mode() {
            // SAFETY: forwarded with the caller's block and layout.
            Some(cpu) => super::sip_mode_kernel_code(cpu, || unsafe { free(ptr, layout) }),
            // SAFETY: as above.
            None => unsafe { free(ptr, layout) },
        }
    }
}
