//! Blocking for channel receives and selects: park the thread in the scheduler, wake it by its thread id.
//!
//! A waker is the thread id (and, in the multikernel issue, the core) packed into the `RawWaker` data word;
//! waking calls `sched::wake`, which remembers a wake that arrives before the park (token semantics).

use crate::exec::KernelMode;
use crate::sched::{self, ThreadId};
use channels::platform::Blocking;
use core::task::{RawWaker, RawWakerVTable, Waker};

/// Blocking through the per-core scheduler (the `channels` hook).
pub struct SchedulerBlocking;

/// The one instance.
pub static SCHEDULER: SchedulerBlocking = SchedulerBlocking;

const VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop_waker);

fn clone(data: *const ()) -> RawWaker {
    RawWaker::new(data, &VTABLE)
}

fn wake(data: *const ()) {
    sched::wake(ThreadId(data as u64));
}

fn drop_waker(_: *const ()) {}

impl Blocking for SchedulerBlocking {
    fn waker(&self) -> Waker {
        let id = sched::current_id().map_or(0, |t| t.0);
        // SAFETY: the vtable's functions treat the data word as a plain thread id (never dereferenced), so
        // every RawWaker contract (clone/wake/drop on any thread) holds trivially.
        unsafe { Waker::from_raw(RawWaker::new(id as *const (), &VTABLE)) }
    }

    fn park(&self) {
        let _kernel = KernelMode::enter();
        sched::block_current();
    }

    fn uninterruptible_begin(&self) {
        // Kernel mode is what `sip::kill` waits out (and the section allocates nothing a SIP arena would need).
        core::mem::forget(KernelMode::enter());
    }

    fn uninterruptible_end(&self) {
        crate::exec::leave_kernel_mode();
    }
}
