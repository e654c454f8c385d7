//! Blocking for channel receives and selects: park the thread in the scheduler, wake it by its thread id.
//!
//! A waker is the thread id and its core packed into the `RawWaker` data word. Waking a thread of this core
//! calls `sched::wake`, which remembers a wake that arrives before the park (token semantics); a thread of
//! another core is woken by a message to that core (`ipc::intercore::send_wake`, one push and an IPI).

use crate::exec::KernelMode;
use crate::sched::{self, ThreadId};
use channels::platform::Blocking;
use core::task::{RawWaker, RawWakerVTable, Waker};

/// Polls of a receive before it parks (each after yielding to a ready thread of this core, or a pause).
const SPIN_POLLS: u32 = 64;

/// Blocking through the per-core scheduler (the `channels` hook).
pub struct SchedulerBlocking;

/// The one instance.
pub static SCHEDULER: SchedulerBlocking = SchedulerBlocking;

const VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop_waker);

fn clone(data: *const ()) -> RawWaker {
    RawWaker::new(data, &VTABLE)
}

/// Where the core sits in a waker's data word: thread ids stay below 2^58 (`sched::ThreadId`), cores below 64.
const CORE_SHIFT: u32 = 58;

fn wake(data: *const ()) {
    let word = data as u64;
    let (core, thread) = ((word >> CORE_SHIFT) as u32, ThreadId(word & ((1 << CORE_SHIFT) - 1)));
    crate::ipc::intercore::wake(core, thread);
}

fn drop_waker(_: *const ()) {}

impl Blocking for SchedulerBlocking {
    fn waker(&self) -> Waker {
        let id = sched::current_id().map_or(0, |t| t.0);
        let word = (u64::from(crate::percpu::current_index()) << CORE_SHIFT) | id;
        // SAFETY: the vtable's functions treat the data word as a plain (core, thread id) pair, never
        // dereferenced, so every RawWaker contract (clone/wake/drop on any thread or core) holds trivially.
        unsafe { Waker::from_raw(RawWaker::new(word as *const (), &VTABLE)) }
    }

    fn park(&self) {
        let _kernel = KernelMode::enter();
        sched::block_current();
    }

    fn spin_limit(&self) -> u32 {
        SPIN_POLLS
    }

    fn relax(&self, _round: u32) {
        // A peer on this core needs the core to answer: give it away (a yield with nobody ready returns at once).
        // A peer on another core answers on its own: polling again saves its answer an IPI to wake us.
        sched::yield_now();
    }

    fn uninterruptible_begin(&self) {
        // Kernel mode is what `sip::kill` waits out (and the section allocates nothing a SIP arena would need).
        core::mem::forget(KernelMode::enter());
    }

    fn uninterruptible_end(&self) {
        crate::exec::leave_kernel_mode();
    }
}
