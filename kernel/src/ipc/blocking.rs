//! Blocking for channel receives and selects: park the thread in the scheduler, wake it by its thread id.
//!
//! A wake token is the thread id and its core packed into one word (plain data: a ring keeps it in shared
//! memory, and waking never follows a pointer found there). Waking a thread of this core calls `sched::wake`,
//! which remembers a wake that arrives before the park (token semantics); a thread of another core is woken
//! by a message to that core (`ipc::intercore::wake`: one push and an IPI). A token that names no core or
//! no thread wakes nobody.

use crate::exec::KernelAccount;
use crate::sched::{self, ThreadId};
use channels::platform::Blocking;

/// The wake token of task `id` (with `tasks::TASK_BIT`) of core `core`.
pub fn token_of_task(core: u32, id: u64) -> u64 {
    (u64::from(core) << CORE_SHIFT) | id
}

/// Makes the thread or task `id` of this core ready: a task's number has `tasks::TASK_BIT`.
pub fn wake_local(id: ThreadId) {
    if id.0 & super::tasks::TASK_BIT != 0 {
        super::tasks::wake(id.0);
    } else {
        sched::wake(id);
    }
}

/// Polls of a receive before it parks (each after yielding to a ready thread of this core, or a pause).
pub const SPIN_POLLS: u32 = 64;

/// Blocking through the per-core scheduler (the `channels` hook).
pub struct SchedulerBlocking;

/// The one instance.
pub static SCHEDULER: SchedulerBlocking = SchedulerBlocking;

/// Where the core sits in a token: thread ids stay below 2^56 (`sched::ThreadId`), and the eight bits above
/// them hold every core index (at 58, as before 256 cores, cores from 64 on lost their top bit, and a wake for
/// a thread of core 100 went to core 36).
const CORE_SHIFT: u32 = 56;
const _: () = assert!(crate::percpu::MAX_CPUS <= 1 << (64 - CORE_SHIFT));

impl Blocking for SchedulerBlocking {
    fn token(&self) -> u64 {
        let id = sched::current_id().map_or(0, |t| t.0);
        (u64::from(crate::percpu::current_index()) << CORE_SHIFT) | id
    }

    fn wake(&self, token: u64) {
        let (core, thread) = ((token >> CORE_SHIFT) as u32, ThreadId(token & ((1 << CORE_SHIFT) - 1)));
        // An unknown core, thread or task is checked for where it is looked up; nothing here trusts the word. A
        // task of this core is made ready at once (a task's send waking another on its runner: the async
        // ping-pong's path); from another core, a task's number travels as a thread's would (`intercore` hands it
        // to `wake_local`). A thread's wake does not look at this core's record.
        if thread.0 & super::tasks::TASK_BIT != 0 {
            let cpu = crate::percpu::current();
            if core == cpu.index {
                return super::tasks::wake_here(cpu, thread.0);
            }
        }
        crate::ipc::intercore::wake(core, thread);
    }

    fn yield_task(&self, token: u64) -> bool {
        // Only when a task of this core is ready: else the yield would poll the same task again at once.
        let cpu = crate::percpu::current();
        if !cpu.tasks_ready.load(core::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        // The token is the polled task's own (its waker's): its wake is one compare-and-swap (`tasks`).
        let number = token & ((1 << CORE_SHIFT) - 1);
        match token >> CORE_SHIFT == u64::from(cpu.index) && number & super::tasks::TASK_BIT != 0 {
            true => super::tasks::wake_here(cpu, number),
            false => self.wake(token),
        }
        true
    }

    fn park(&self) {
        let _kernel = KernelAccount::enter();
        // A thread parked in a receive holds nothing of the kernel's: a kill may end it right there.
        sched::block_current_cuttable();
    }

    fn spin_limit(&self) -> u32 {
        SPIN_POLLS
    }

    fn relax(&self, _round: u32) {
        // A peer on this core needs the core to answer: give it away (a yield with nobody ready returns at once).
        // A peer on another core answers on its own: polling again saves its answer an IPI to wake us.
        sched::yield_now();
    }
}
