//! Tasks: futures polled by one runner thread per core, and woken by a token like threads are (issue 15's first
//! step; docs/thread-models.md). A task's future waits in a channel receive (`channels::recv_async`) with its
//! token in the ring, and a send or a close wakes it through `Blocking::wake`, which sees the task bit in the
//! token and makes the task ready on its core (through the cores' wake lanes from another core, as a thread).
//!
//! Not here yet: async SIPs (a task as a SIP, with its records, quota and fault isolation), and preemption of a
//! task that does not await: today's tasks are the kernel's own.
//!
//! Invariants: a task is polled only by its core's runner, never by two at once; its future is out of the table
//! while it is polled, and a wake meanwhile is remembered (`woken`) and makes it ready again once the poll is
//! done, so no wake is lost; the table's lock is never held across a poll.

use crate::exec::Account;
use crate::percpu;
use crate::sched::{self, ThreadId};
use crate::sync::IrqMutex;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::Context;

/// The bit of a wake token's number (below the core's bits) that says "a task", not a thread: thread ids stay
/// far below it (`sched::ThreadId`: a serial number above 20 slot bits).
pub const TASK_BIT: u64 = 1 << 55;

/// Bytes of a runner's stack: futures are polled on it.
const RUNNER_STACK: u64 = 64 * 1024;

/// A future the runner polls.
type TaskFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One core's tasks.
struct Runner {
    /// Tasks by id (with [`TASK_BIT`]); a task being polled has `None` here.
    tasks: BTreeMap<u64, Option<TaskFuture>>,
    /// Tasks to poll, in order.
    ready: VecDeque<u64>,
    /// The task being polled, and whether it was woken meanwhile.
    polling: Option<(u64, bool)>,
    /// The runner thread, once started.
    thread: Option<ThreadId>,
}

impl Runner {
    const fn new() -> Self {
        Self { tasks: BTreeMap::new(), ready: VecDeque::new(), polling: None, thread: None }
    }
}

static RUNNERS: [IrqMutex<Runner>; percpu::MAX_CPUS] = [const { IrqMutex::new(Runner::new()) }; percpu::MAX_CPUS];

/// Task ids, every core's (so a token names one task whatever core it is on).
static NEXT_TASK: AtomicU64 = AtomicU64::new(1);

/// Why a task was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskError {
    /// No runner thread could be started on this core.
    NoRunner,
}

/// Starts `future` as a task of this core; its id.
pub fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Result<u64, TaskError> {
    let core = percpu::current_index();
    let id = NEXT_TASK.fetch_add(1, Ordering::Relaxed) | TASK_BIT;
    let start_runner = {
        let mut runner = RUNNERS[core as usize].lock();
        runner.tasks.insert(id, Some(Box::pin(future)));
        runner.ready.push_back(id);
        runner.thread.is_none()
    };
    if start_runner {
        let thread = sched::spawn(Account::Kernel, RUNNER_STACK, move || run(core)).map_err(|_| {
            let mut runner = RUNNERS[core as usize].lock();
            runner.tasks.remove(&id);
            runner.ready.retain(|t| *t != id);
            TaskError::NoRunner
        })?;
        RUNNERS[core as usize].lock().thread = Some(thread);
    } else {
        wake_runner(core);
    }
    Ok(id)
}

/// Whether task `id` of this core has not finished yet.
pub fn is_alive(id: u64) -> bool {
    RUNNERS[percpu::current_index() as usize].lock().tasks.contains_key(&id)
}

/// Makes task `id` of this core ready (a wake through its token; unknown ids, a task that ended, wake nobody).
pub fn wake(id: u64) {
    let core = percpu::current_index();
    let ready = {
        let mut guard = RUNNERS[core as usize].lock();
        let runner = &mut *guard;
        if let Some((polled, woken)) = runner.polling.as_mut()
            && *polled == id
        {
            *woken = true;
            false
        } else if runner.tasks.get(&id).is_some_and(Option::is_some) && !runner.ready.contains(&id) {
            runner.ready.push_back(id);
            true
        } else {
            false
        }
    };
    if ready {
        wake_runner(core);
    }
}

fn wake_runner(core: u32) {
    // The runner itself (a task waking another) looks at the ready list before it parks: nothing to wake.
    if let Some(thread) = RUNNERS[core as usize].lock().thread
        && sched::current_id() != Some(thread)
    {
        sched::wake(thread);
    }
}

/// The runner of core `core` (this one): polls ready tasks, parks when none is.
fn run(core: u32) {
    let runner = &RUNNERS[core as usize];
    // SAFETY: the kernel is the trusted base; the wakers it makes carry this core's tokens for its own tasks.
    let trusted = unsafe { channels::trusted::Trusted::new() };
    loop {
        let next = {
            let mut runner = runner.lock();
            let next = runner.ready.pop_front().and_then(|id| Some((id, runner.tasks.get_mut(&id)?.take()?)));
            if let Some((id, _)) = next {
                runner.polling = Some((id, false));
            }
            next
        };
        let Some((id, mut future)) = next else {
            sched::block_current();
            continue;
        };
        let waker = channels::tasks::task_waker(&trusted, super::blocking::token_of_task(core, id));
        let done = future.as_mut().poll(&mut Context::from_waker(&waker)).is_ready();
        let mut runner = runner.lock();
        let woken = runner.polling.take().is_some_and(|(_, woken)| woken);
        if done {
            runner.tasks.remove(&id);
        } else {
            if let Some(slot) = runner.tasks.get_mut(&id) {
                *slot = Some(future);
            }
            if woken {
                runner.ready.push_back(id);
            }
        }
    }
}

crate::selftest! {
    /// A task waits in a channel receive without a thread of its own: a send from this thread wakes it through
    /// its token, a second receive sees the close; a task that ends is gone from the runner.
    fn a_task_waits_in_a_receive_and_is_woken_by_a_send() {
        use core::sync::atomic::AtomicU64;
        static GOT: AtomicU64 = AtomicU64::new(0);
        GOT.store(0, Ordering::Relaxed);
        let (mut client, mut server) = channels::raw::pair::<u64, u64>(1, 1);
        let task = spawn(async move {
            let first = server.recv_async().await.unwrap_or(0);
            let closed = server.recv_async().await.is_err();
            GOT.store(first * 10 + u64::from(closed), Ordering::Relaxed);
        })
        .map_err(|e| alloc::format!("{e:?}"))?;
        // Let it run and wait: it finds nothing and leaves its token in the ring.
        (0..10).for_each(|_| sched::yield_now());
        crate::check!(is_alive(task) && GOT.load(Ordering::Relaxed) == 0, "the task did not wait for the message");
        crate::check!(client.send(7).is_ok(), "the task's endpoint is gone");
        drop(client);
        let woken = (0..1000).any(|_| {
            sched::yield_now();
            GOT.load(Ordering::Relaxed) != 0
        });
        crate::check!(woken, "the task was not woken by the send and the close");
        crate::check!(GOT.load(Ordering::Relaxed) == 71, "the task got {} (expected 7, then Closed)", GOT.load(Ordering::Relaxed));
        crate::check!(!is_alive(task), "a finished task is still in the runner");
        Ok(())
    }
}

crate::selftest! {
    /// Two tasks of this core ping-pong 1,000 times over one channel: every round trip is two polls and two wakes
    /// through task tokens on one runner, with no thread switch; logs the cost of a round trip (guest
    /// instructions under `--icount`), an early figure for issue 15's target (docs/thread-models.md).
    fn two_tasks_ping_pong_on_one_runner() {
        use core::sync::atomic::AtomicU64;
        const ROUND_TRIPS: u64 = 1000;
        static PER_ROUND_TRIP: AtomicU64 = AtomicU64::new(0);
        PER_ROUND_TRIP.store(0, Ordering::Relaxed);
        let (mut client, mut server) = channels::raw::pair::<u64, u64>(1, 1);
        let echo = spawn(async move {
            while let Ok(n) = server.recv_async().await {
                if server.send(n + 1).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| alloc::format!("{e:?}"))?;
        let pinger = spawn(async move {
            let start = crate::arch::cpu::rdtsc();
            for n in 0..ROUND_TRIPS {
                if client.send(n).is_err() || client.recv_async().await != Ok(n + 1) {
                    return;
                }
            }
            let per = (crate::arch::cpu::rdtsc() - start) / ROUND_TRIPS;
            PER_ROUND_TRIP.store(per.max(1), Ordering::Relaxed);
        })
        .map_err(|e| alloc::format!("{e:?}"))?;
        let done = (0..100_000).any(|_| {
            sched::yield_now();
            !is_alive(pinger) && !is_alive(echo)
        });
        crate::check!(done, "the tasks did not finish their {ROUND_TRIPS} round trips");
        let per = PER_ROUND_TRIP.load(Ordering::Relaxed);
        crate::check!(per != 0, "a round trip went wrong");
        log::info!("tasks: same-core ping-pong of two kernel tasks on one runner: {per} cycles a round trip");
        Ok(())
    }
}
