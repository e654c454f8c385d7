//! Tasks: futures polled by the runner threads of their core, woken by a token like threads are (issue 15,
//! docs/thread-models.md). A task is an async SIP's continuation (`sip`, which makes its body) or the kernel's
//! own (the self-tests'). It waits in a channel receive (`channels::recv_async`) with its token in the ring, and a
//! send or a close wakes it through `Blocking::wake`, which sees [`TASK_BIT`] in the token and makes it ready
//! here (through the cores' wake lanes from another core, as a thread).
//!
//! One runner per core is *active*: it polls ready tasks on its stack, each in its own account (an async SIP's
//! owner word, small heap and stack limit, set as a switch would set a thread's), and parks when none is
//! ready. If a timer tick finds the active runner inside a poll while other tasks wait (a task that does not
//! await, or one that made a call that blocks), the core's *standby* runner takes over the other tasks
//! ([`handover`], called by the tick, which then preempts the running thread for it); the runner left in the
//! poll keeps its stack for that one task until its poll returns, then becomes the standby again or ends. A fault
//! in a poll ends the task's SIP and the runner with it (`sip`), and the standby takes over. So a continuation
//! costs no stack while it waits, and one only while it is preempted.
//!
//! Not here: what a SIP is (the SIP layer installs what happens when an async SIP's future completes,
//! [`install_sip_exit`]), and receives in ring 3, which poll.
//!
//! Invariants: a task is polled by one runner at a time, on its own core; its body stays in its slot while
//! polled (polled in place) and is dropped only when no runner polls it; a wake during a poll is remembered and
//! makes the task ready after it, so no wake is lost; a core's record is touched only by that core with
//! interrupts off, never across a poll or a call into the scheduler (the timer tick calls [`handover`], which
//! allocates nothing, with the scheduler's lock held).

use crate::exec::Account;
use crate::memory::stacks::KERNEL_RESERVE;
use crate::percpu::{self, PerCpu};
use crate::sched::{self, ThreadId};
use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::Ordering;
use core::task::Context;
use x86_64::instructions::interrupts;

/// The bit of a wake token's number (below the core's bits) that says "a task", not a thread: thread ids stay
/// far below it (`sched::ThreadId`: a serial number above 20 slot bits).
pub const TASK_BIT: u64 = 1 << 55;

/// Bits of a task's number that name its slot in its core's table; the generation is above them.
const SLOT_BITS: u32 = 20;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
/// Generations wrap below [`TASK_BIT`].
const GENERATION_MASK: u64 = (TASK_BIT >> SLOT_BITS) - 1;

/// Bytes of a runner's stack for task code, above the kernel reserve (as a SIP thread's stack): the most an
/// async SIP's manifest may ask for (`sip::policy`).
pub const RUNNER_STACK: u64 = 64 * 1024;

/// A task's body: the future its runner polls.
pub type TaskFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a wake.
    Idle,
    /// In the ready list.
    Ready,
    /// Being polled; `woken`: a wake came meanwhile.
    Polling { woken: bool },
}

/// One task.
struct Task {
    body: TaskFuture,
    state: State,
    /// Whose code it is, as the per-CPU `current_owner` word (`Account::word`): the kernel's (0), or an async
    /// SIP's.
    owner_word: u64,
    /// The per-CPU `current_arena` word while it is polled (an async SIP's tagged small-heap owner; 0: the
    /// kernel heap).
    heap_word: usize,
    /// Stopped while polled (its SIP is ending): removed once no runner polls it.
    stopped: bool,
    /// When its timer wakes it (uptime nanoseconds; 0: no timer), as in its core's `timers`.
    timer: u64,
}

/// No slot (the end of the ready list).
const NONE: u32 = u32::MAX;

/// A slot of a core's task table: its generation (bumped at every reuse, so a stale token finds nobody), its
/// task, and the next slot in the ready list (an intrusive list: a wake allocates nothing).
struct Slot {
    generation: u64,
    next_ready: u32,
    task: Option<Task>,
}

/// One core's tasks and runners.
struct Runner {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The ready list, oldest first, through `Slot::next_ready`.
    ready_head: u32,
    ready_tail: u32,
    /// The runner that takes ready tasks (`None`: none yet, or it was switched out and no standby was there).
    active: Option<ThreadId>,
    /// The active runner is parked, waiting for a task to be ready.
    active_parked: bool,
    /// The slot the active runner polls.
    polling: Option<u32>,
    /// A parked runner, for a hand-over.
    standby: Option<ThreadId>,
    /// A standby runner is being started.
    starting: bool,
    /// Runners switched out inside a poll that have handed over, and the slot each polls.
    detached: Vec<(ThreadId, u32)>,
    /// Task timers, earliest first: (deadline, task number); a task has at most one.
    timers: BTreeSet<(u64, u64)>,
}

impl Runner {
    const fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            ready_head: NONE,
            ready_tail: NONE,
            active: None,
            active_parked: false,
            polling: None,
            standby: None,
            starting: false,
            detached: Vec::new(),
            timers: BTreeSet::new(),
        }
    }

    /// The live task `number` names (its generation checked).
    #[inline(always)]
    fn task(&mut self, number: u64) -> Option<&mut Task> {
        let slot = self.slots.get_mut((number & SLOT_MASK) as usize)?;
        if slot.generation != (number & !TASK_BIT) >> SLOT_BITS {
            return None;
        }
        slot.task.as_mut()
    }

    /// Appends `slot` (whose task is now `Ready`) to the ready list, and says so to the timer tick.
    #[inline(always)]
    fn push_ready(&mut self, slot: u32, cpu: &PerCpu) {
        match self.slots.get_mut(self.ready_tail as usize) {
            Some(tail) => tail.next_ready = slot,
            None => self.ready_head = slot,
        }
        self.ready_tail = slot;
        cpu.tasks_ready.store(true, Ordering::Relaxed);
    }

    /// Takes the oldest slot off the ready list.
    #[inline(always)]
    fn pop_ready(&mut self, cpu: &PerCpu) -> Option<u32> {
        let head = self.ready_head;
        let next = core::mem::replace(&mut self.slots.get_mut(head as usize)?.next_ready, NONE);
        self.ready_head = next;
        if next == NONE {
            self.ready_tail = NONE;
            cpu.tasks_ready.store(false, Ordering::Relaxed);
        }
        Some(head)
    }

    /// Takes `slot` off the ready list wherever it is (a task stopped while ready: rare, so a walk).
    fn unlink_ready(&mut self, slot: u32, cpu: &PerCpu) {
        let (mut previous, mut at) = (NONE, self.ready_head);
        while at != NONE && at != slot {
            previous = at;
            at = self.slots[at as usize].next_ready;
        }
        if at == NONE {
            return;
        }
        let next = core::mem::replace(&mut self.slots[slot as usize].next_ready, NONE);
        match self.slots.get_mut(previous as usize) {
            Some(entry) => entry.next_ready = next,
            None => self.ready_head = next,
        }
        if self.ready_tail == slot {
            self.ready_tail = previous;
        }
        cpu.tasks_ready.store(self.ready_head != NONE, Ordering::Relaxed);
    }

    /// Takes the task out of slot `slot` (its body to be dropped by the caller, interrupts on) and frees it.
    fn remove(&mut self, slot: u32, cpu: &PerCpu) -> Option<Task> {
        let entry = self.slots.get_mut(slot as usize)?;
        let task = entry.task.take()?;
        entry.generation = (entry.generation + 1) & GENERATION_MASK;
        if task.state == State::Ready {
            self.unlink_ready(slot, cpu);
        }
        if task.timer != 0 {
            self.timers.retain(|(_, number)| *number & SLOT_MASK != u64::from(slot));
        }
        self.free.push(slot);
        Some(task)
    }

    fn has_ready(&self) -> bool {
        self.ready_head != NONE
    }
}

/// One core's record, touched only by its own core, with interrupts off: every entry point runs on the core its
/// tasks live on (a wake from another core arrives through the wake lanes and is handled here; the tick's
/// hand-over, the runners and the SIP layer's calls are this core's), so no lock is needed, only the guarantee
/// that nothing else runs on the core meanwhile.
struct Local(UnsafeCell<Runner>);

// SAFETY: a core's `Local` is only reached through [`with`], which indexes the calling core's entry and keeps
// interrupts off while the record is borrowed: no other code of this core can run meanwhile, and other cores
// never touch it.
unsafe impl Sync for Local {}

static RUNNERS: [Local; percpu::MAX_CPUS] = [const { Local(UnsafeCell::new(Runner::new())) }; percpu::MAX_CPUS];

/// Runs `f` on `cpu`'s (the calling core's) record with interrupts off. `f` must not call back into this module
/// (nothing in it calls out).
///
/// Written out rather than `interrupts::without_interrupts`, whose closure the compiler outlines (it is called in
/// two branches): the runner's bookkeeping between two polls is then one call more and returns through memory.
#[inline(always)]
fn with<R>(cpu: &PerCpu, f: impl FnOnce(&mut Runner) -> R) -> R {
    let enabled = interrupts::are_enabled();
    interrupts::disable();
    // SAFETY: see `Local`: this core's entry, interrupts off, and no reentry (`f` does not call `with`).
    let result = f(unsafe { &mut *RUNNERS[cpu.index as usize].0.get() });
    if enabled {
        interrupts::enable();
    }
    result
}

/// Why a task was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskError {
    /// No runner thread could be started on this core.
    NoRunner,
    /// The core's task table is full.
    TooManyTasks,
}

/// What the SIP layer does when an async SIP's future completes (its entry returned): installed at boot.
static SIP_EXIT: spin::Once<fn(u64)> = spin::Once::new();

/// Installs what happens when async SIP `id`'s future completes (once, at boot, by `sip`).
pub fn install_sip_exit(exit: fn(u64)) {
    SIP_EXIT.call_once(|| exit);
}

/// Installs the runners' hand-over and their timers in the scheduler (once, at boot).
pub fn init() {
    sched::install_runner_handover(handover);
    sched::install_task_timers(expire_timers);
}

/// The slot of the task the calling runner (`me`) polls: the active runner's, or a detached one's.
fn polled_slot(r: &Runner, me: ThreadId) -> Option<u32> {
    if r.active == Some(me) {
        r.polling
    } else {
        r.detached.iter().find(|(thread, _)| *thread == me).map(|(_, slot)| *slot)
    }
}

/// The wake token of the task the calling runner is polling (the caller is that task's code, on this core);
/// `None` when the caller is no polled task (a thread, or ring 3).
pub fn polled_token() -> Option<u64> {
    let me = sched::current_id()?;
    let cpu = percpu::current();
    with(cpu, |r| {
        let slot = polled_slot(r, me)?;
        let entry = &r.slots[slot as usize];
        entry.task.as_ref()?;
        let number = TASK_BIT | (entry.generation << SLOT_BITS) | u64::from(slot);
        Some(super::blocking::token_of_task(cpu.index, number))
    })
}

/// Sets the timer of the task the calling runner is polling (the caller is that task's code, on this core): it
/// is woken at `deadline` (uptime nanoseconds), once; a later call replaces the earlier timer. `false` when the
/// caller is no polled task (a thread, or ring 3): it must look at the clock itself.
pub fn wake_polled_at(deadline: u64) -> bool {
    let Some(me) = sched::current_id() else { return false };
    let cpu = percpu::current();
    with(cpu, |r| {
        let Some(slot) = polled_slot(r, me) else { return false };
        let entry = &mut r.slots[slot as usize];
        let number = TASK_BIT | (entry.generation << SLOT_BITS) | u64::from(slot);
        let Some(task) = entry.task.as_mut() else { return false };
        let old = core::mem::replace(&mut task.timer, deadline.max(1));
        if old != 0 {
            r.timers.remove(&(old, number));
        }
        r.timers.insert((deadline.max(1), number));
        true
    })
}

/// The tick's part ([`sched::TaskTimers`]): wakes this core's tasks whose timers expired by `now`.
fn expire_timers(cpu: &PerCpu, now: u64) {
    let parked = with(cpu, |r| {
        while let Some(&(deadline, number)) = r.timers.first()
            && deadline <= now
        {
            r.timers.pop_first();
            let slot = (number & SLOT_MASK) as u32;
            let Some(task) = r.task(number) else { continue };
            task.timer = 0;
            match task.state {
                State::Idle if !task.stopped => {
                    task.state = State::Ready;
                    r.push_ready(slot, cpu);
                }
                State::Polling { .. } => task.state = State::Polling { woken: true },
                _ => {}
            }
        }
        if r.has_ready() { take_parked_active(r) } else { None }
    });
    if let Some(active) = parked {
        sched::wake(active);
    }
}

/// Starts `future` as a kernel task of this core; its number.
pub fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Result<u64, TaskError> {
    start(Box::pin(future), Account::Kernel, 0)
}

/// Starts `body` as the task of async SIP `sip` of this core, polled on its account with allocations going to
/// the small-heap owner whose tagged address is `heap_word`; its number (the SIP's record keeps it).
pub fn spawn_sip(sip: u64, heap_word: usize, body: TaskFuture) -> Result<u64, TaskError> {
    start(body, Account::Sip(sip), heap_word)
}

fn start(body: TaskFuture, account: Account, heap_word: usize) -> Result<u64, TaskError> {
    let cpu = percpu::current();
    let task = Task { body, state: State::Ready, owner_word: account.word(), heap_word, stopped: false, timer: 0 };
    let started = with(cpu, |runner| {
        let slot = match runner.free.pop() {
            Some(slot) => slot,
            None if runner.slots.len() as u64 > SLOT_MASK => return Err(TaskError::TooManyTasks),
            None => {
                runner.slots.push(Slot { generation: 0, next_ready: NONE, task: None });
                runner.slots.len() as u32 - 1
            }
        };
        let entry = &mut runner.slots[slot as usize];
        entry.task = Some(task);
        let number = TASK_BIT | (entry.generation << SLOT_BITS) | u64::from(slot);
        runner.push_ready(slot, cpu);
        let start_runner = runner.active.is_none() && runner.standby.is_none() && !runner.starting;
        runner.starting |= start_runner;
        Ok((number, start_runner, take_parked_active(runner)))
    });
    let (number, start_runner, wake) = started?;
    if start_runner && start_runner_thread(cpu).is_err() {
        let body = with(cpu, |runner| runner.remove((number & SLOT_MASK) as u32, cpu));
        drop(body);
        return Err(TaskError::NoRunner);
    }
    if let Some(active) = wake {
        sched::wake(active);
    }
    Ok(number)
}

/// Starts a runner thread on this core (`starting` is set); it becomes the active runner if there is none, the
/// standby otherwise. Room for one more detached runner is made first, so the hand-over at the timer tick never
/// allocates.
fn start_runner_thread(cpu: &PerCpu) -> Result<ThreadId, sched::ThreadError> {
    with(cpu, |runner| {
        let _ = runner.detached.try_reserve(1);
    });
    let core = cpu.index;
    let started = sched::spawn_runner(RUNNER_STACK, move || run(core));
    if started.is_err() {
        with(cpu, |runner| runner.starting = false);
    }
    started
}

/// The active runner if it is parked (and marks it unparked): the caller wakes it, interrupts on again.
fn take_parked_active(runner: &mut Runner) -> Option<ThreadId> {
    if !runner.active_parked {
        return None;
    }
    runner.active_parked = false;
    runner.active
}

/// Whether task `number` of this core has not finished (or been stopped) yet.
pub fn is_alive(number: u64) -> bool {
    with(percpu::current(), |runner| runner.task(number).is_some_and(|task| !task.stopped))
}

/// Whether task `number` of this core is ready or being polled (for `ps`).
pub fn is_running(number: u64) -> bool {
    with(percpu::current(), |runner| runner.task(number).is_some_and(|task| task.state != State::Idle))
}

/// The bit of the per-CPU `polled_task` word that says the polled task was woken during its poll.
pub const POLLED_WOKEN: u64 = 1 << 63;

/// Makes task `number` of this core ready (a wake through its token; unknown numbers, a task that ended, wake
/// nobody).
pub fn wake(number: u64) {
    wake_here(percpu::current(), number);
}

/// [`wake`] on `cpu`, the calling core's record. The task being polled (its own yield, or a wake by the code it
/// calls) is marked in one compare-and-swap of `cpu.polled_task`, which its runner reads when the poll returns
/// (or the tick's [`handover`] moves into the task's state).
#[inline]
pub fn wake_here(cpu: &PerCpu, number: u64) {
    if cpu.polled_task.compare_exchange(number, number | POLLED_WOKEN, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        return;
    }
    let parked = with(cpu, |runner| {
        let task = runner.task(number)?;
        match task.state {
            State::Idle if !task.stopped => {
                task.state = State::Ready;
                runner.push_ready((number & SLOT_MASK) as u32, cpu);
                take_parked_active(runner)
            }
            State::Polling { .. } => {
                task.state = State::Polling { woken: true };
                None
            }
            _ => None,
        }
    });
    if let Some(active) = parked {
        sched::wake(active);
    }
}

/// What [`stop`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// No such task (it ended, or was stopped before).
    Gone,
    /// Removed: no runner polls it, its body is dropped.
    Removed,
    /// A runner polls it right now: it is removed once that runner leaves it (the caller ends the runner, as a
    /// thread of the task's SIP).
    PolledBy(ThreadId),
}

/// Stops task `number` of this core: it will never be polled again.
pub fn stop(number: u64) -> Stopped {
    let cpu = percpu::current();
    let (stopped, body) = with(cpu, |runner| {
        let slot = (number & SLOT_MASK) as u32;
        let Some(task) = runner.task(number) else { return (Stopped::Gone, None) };
        if task.stopped {
            return (Stopped::Gone, None);
        }
        if matches!(task.state, State::Polling { .. }) {
            task.stopped = true;
            let by = match runner.polling {
                Some(polled) if polled == slot => runner.active,
                _ => runner.detached.iter().find(|(_, polled)| *polled == slot).map(|(thread, _)| *thread),
            };
            match by {
                Some(thread) => (Stopped::PolledBy(thread), None),
                None => (Stopped::Gone, None),
            }
        } else {
            (Stopped::Removed, runner.remove(slot, cpu))
        }
    });
    drop(body);
    stopped
}

/// Runner `thread` of this core is gone (removed by a kill while switched out in a task's poll) or going (the
/// calling runner ends with the SIP whose task it polled): the task it polled is removed, and if it was the
/// active runner the standby takes over (or a new runner is started).
pub fn runner_gone(thread: ThreadId) {
    let cpu = percpu::current();
    let (body, wake, start) = with(cpu, |runner| {
        let polled = if runner.active == Some(thread) {
            if cpu.polling_runner.load(Ordering::Relaxed) == thread.0 {
                cpu.polling_runner.store(0, Ordering::Relaxed);
            }
            cpu.polled_task.store(0, Ordering::Relaxed);
            runner.active = runner.standby.take();
            runner.active_parked = false;
            runner.polling.take()
        } else if let Some(at) = runner.detached.iter().position(|(t, _)| *t == thread) {
            Some(runner.detached.swap_remove(at).1)
        } else {
            if runner.standby == Some(thread) {
                runner.standby = None;
            }
            None
        };
        let body = polled.and_then(|slot| runner.remove(slot, cpu));
        let start = runner.active.is_none() && runner.standby.is_none() && !runner.starting;
        runner.starting |= start;
        (body, runner.active.filter(|_| polled.is_some()), start)
    });
    drop(body);
    if let Some(active) = wake {
        sched::wake(active);
    }
    if start && let Err(e) = start_runner_thread(cpu) {
        log::warn!("tasks: cannot start a runner on cpu {}: {e:?}; its tasks wait", cpu.index);
    }
}

/// A timer tick found this core's active runner inside a poll while other tasks wait ([`sched::RunnerHandover`]):
/// it becomes a detached runner with its task, and the standby becomes the active runner (the tick makes it
/// ready).
/// Called with the scheduler's lock held and interrupts off: takes only this core's runner lock.
fn handover(cpu: &PerCpu) -> Option<ThreadId> {
    with(cpu, |runner| {
        // No room to note one more detached runner (its reservation failed): no hand-over this tick.
        if runner.detached.len() == runner.detached.capacity() {
            return None;
        }
        cpu.polling_runner.store(0, Ordering::Relaxed);
        // A wake of the polled task during its poll is kept in its state from here on: the per-CPU word is the
        // next active runner's.
        let polled = cpu.polled_task.swap(0, Ordering::Relaxed);
        if polled & POLLED_WOKEN != 0
            && let Some(task) = runner.task(polled & !POLLED_WOKEN)
        {
            task.state = State::Polling { woken: true };
        }
        let old = runner.active.take()?;
        if let Some(slot) = runner.polling.take() {
            runner.detached.push((old, slot));
        }
        runner.active_parked = false;
        runner.active = runner.standby.take();
        runner.active
    })
}

/// What a runner does next.
enum Next {
    /// Poll the task in this slot.
    Poll(Poll),
    /// The task it polled last has ended (completed, or stopped meanwhile): take it out first.
    Ended { slot: u32, done: bool },
    /// Wake the active runner (parked while this one, handed over, finished its poll), then choose again.
    Wake(ThreadId),
    /// Park (the active runner with nothing ready, or the standby).
    Park,
    /// Start a standby runner.
    StartStandby,
    /// End (a runner that is neither active nor needed as the standby).
    Exit,
}

/// What a poll needs of its task, read with interrupts off.
struct Poll {
    slot: u32,
    number: u64,
    body: *mut (dyn Future<Output = ()> + Send),
    owner_word: u64,
    heap_word: usize,
}

/// A runner of core `core` (this one): the active one polls ready tasks and parks when none is; the standby
/// parks until a hand-over makes it active. The bookkeeping after a poll and the choice of the next task are one
/// stretch with interrupts off.
fn run(core: u32) {
    let cpu = percpu::current();
    let (Some(me), Some(own)) = (sched::current_id(), sched::OwnAccount::of_current_runner()) else { return };
    // An async SIP's code runs on this stack above the kernel reserve, as on a SIP thread's.
    let limit = sched::current_stack_bottom().map_or(0, |bottom| bottom + KERNEL_RESERVE);
    // SAFETY: the kernel is the trusted base; the wakers it makes carry this core's tokens for its own tasks.
    let trusted = unsafe { channels::trusted::Trusted::new() };
    with(cpu, |r| {
        r.starting = false;
        r.active.get_or_insert(me);
    });
    // The slot this runner polled last, and whether its future completed.
    let mut polled: Option<(u32, bool)> = None;
    loop {
        let next = with(cpu, |r| {
            if let Some((slot, done)) = polled.take()
                && let Some(ended) = after_poll(r, me, slot, done, cpu)
            {
                return ended;
            }
            choose(r, me, cpu)
        });
        let poll = match next {
            Next::Poll(poll) => poll,
            Next::Ended { slot, done } => {
                end_polled(cpu, slot, done);
                continue;
            }
            Next::Wake(active) => {
                sched::wake(active);
                continue;
            }
            Next::Park => {
                sched::block_current();
                continue;
            }
            Next::StartStandby => {
                if let Err(e) = start_runner_thread(cpu) {
                    log::warn!(
                        "tasks: no standby runner on cpu {}: {e:?} (a task that never awaits may hold the core's others)",
                        cpu.index
                    );
                }
                continue;
            }
            Next::Exit => return,
        };
        // Never dropped: a task waker's drop does nothing, and calling it would cost a call through its table.
        let waker = core::mem::ManuallyDrop::new(channels::tasks::task_waker(
            &trusted,
            super::blocking::token_of_task(core, poll.number),
        ));
        let sip = poll.owner_word != Account::Kernel.word();
        cpu.polled_task.store(poll.number, Ordering::Relaxed);
        cpu.polling_runner.store(me.0, Ordering::Relaxed);
        // The task's account, as a switch to a thread of its SIP would set it: its allocations go to its small
        // heap, its faults end it, kernel entries check its room above the reserve.
        if sip {
            own.set(cpu, poll.owner_word, poll.heap_word, limit);
        }
        // SAFETY: the body stays in its slot while it is polled (nothing drops or moves a polled task's body:
        // `stop` and `runner_gone` only mark it or take it once no runner polls it), it is pinned in its box, and
        // only this runner polls it (the slot left the ready list with interrupts off).
        let done = unsafe { Pin::new_unchecked(&mut *poll.body) }.poll(&mut Context::from_waker(&waker)).is_ready();
        if sip {
            own.set(cpu, Account::Kernel.word(), 0, 0);
        }
        cpu.polling_runner.store(0, Ordering::Relaxed);
        polled = Some((poll.slot, done));
    }
}

/// The bookkeeping after runner `me` polled the task in `slot`: it waits, or is ready again if woken during the
/// poll; a task that completed (`done`) or was stopped meanwhile is [`Next::Ended`] for [`end_polled`]. A
/// runner that had been handed over wakes the active one for what is ready meanwhile ([`Next::Wake`]).
#[inline(always)]
fn after_poll(r: &mut Runner, me: ThreadId, slot: u32, done: bool, cpu: &PerCpu) -> Option<Next> {
    let handed_over = r.active != Some(me);
    // A wake during the poll, noted in the per-CPU word (unless the tick handed over and moved it to the state).
    let mut woken = false;
    if handed_over {
        if let Some(at) = r.detached.iter().position(|(t, _)| *t == me) {
            r.detached.swap_remove(at);
        }
    } else {
        r.polling = None;
        woken = cpu.polled_task.swap(0, Ordering::Relaxed) & POLLED_WOKEN != 0;
    }
    let task = r.slots.get_mut(slot as usize).and_then(|entry| entry.task.as_mut())?;
    if done || task.stopped {
        return Some(Next::Ended { slot, done });
    }
    if woken || task.state == (State::Polling { woken: true }) {
        task.state = State::Ready;
        r.push_ready(slot, cpu);
    } else {
        task.state = State::Idle;
    }
    if handed_over && r.has_ready() {
        return take_parked_active(r).map(Next::Wake);
    }
    None
}

/// Takes out the task in `slot`, which ended while this runner polled it, and, if its future completed and it is
/// an async SIP's, tells the SIP layer (interrupts on: the body's drop and the SIP's end are ordinary kernel
/// code).
fn end_polled(cpu: &PerCpu, slot: u32, done: bool) {
    let Some(task) = with(cpu, |r| r.remove(slot, cpu)) else { return };
    let owner_word = task.owner_word;
    drop(task);
    if done && let (Some(id), Some(exit)) = (owner_word.checked_sub(1), SIP_EXIT.get()) {
        exit(id);
    }
}

/// What runner `me` does next (see [`Next`]).
#[inline(always)]
fn choose(r: &mut Runner, me: ThreadId, cpu: &PerCpu) -> Next {
    let active = *r.active.get_or_insert(me);
    if active != me {
        if r.standby.is_none() || r.standby == Some(me) {
            r.standby = Some(me);
            return Next::Park;
        }
        return Next::Exit;
    }
    if r.standby.is_none() && !r.starting {
        r.starting = true;
        return Next::StartStandby;
    }
    while let Some(slot) = r.pop_ready(cpu) {
        let entry = &mut r.slots[slot as usize];
        let generation = entry.generation;
        let Some(task) = entry.task.as_mut() else { continue };
        task.state = State::Polling { woken: false };
        // SAFETY: the pointer is only used to poll the body in place, pinned (see the poll).
        let body: *mut (dyn Future<Output = ()> + Send) = unsafe { Pin::get_unchecked_mut(task.body.as_mut()) };
        let (owner_word, heap_word) = (task.owner_word, task.heap_word);
        r.polling = Some(slot);
        let number = TASK_BIT | (generation << SLOT_BITS) | u64::from(slot);
        return Next::Poll(Poll { slot, number, body, owner_word, heap_word });
    }
    r.active_parked = true;
    Next::Park
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

crate::selftest! {
    /// A task that wakes itself during a poll and is handed over inside that same poll (it spins past timer
    /// ticks while another task is ready) is polled again: the wake, noted in the per-CPU word, moves into its
    /// state at the hand-over instead of being left for the standby's polls (which reset the word).
    fn a_wake_during_a_poll_survives_a_hand_over() {
        use core::sync::atomic::AtomicU64;
        use core::task::Poll;
        static POLLS: AtomicU64 = AtomicU64::new(0);
        static OTHER: AtomicU64 = AtomicU64::new(0);
        POLLS.store(0, Ordering::Relaxed);
        OTHER.store(0, Ordering::Relaxed);
        let spinner = spawn(core::future::poll_fn(|cx| {
            if POLLS.fetch_add(1, Ordering::Relaxed) > 0 {
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            // Past two ticks, with `other` ready: the first tick hands the core's tasks to the standby.
            let cpu = percpu::current();
            let start = cpu.timer_ticks.load(Ordering::Relaxed);
            while cpu.timer_ticks.load(Ordering::Relaxed) < start + 3 {
                core::hint::spin_loop();
            }
            Poll::Pending
        }))
        .map_err(|e| alloc::format!("{e:?}"))?;
        let other = spawn(async { OTHER.store(1, Ordering::Relaxed) }).map_err(|e| alloc::format!("{e:?}"))?;
        let done = (0..100_000).any(|_| {
            sched::yield_now();
            !is_alive(spinner) && !is_alive(other)
        });
        crate::check!(OTHER.load(Ordering::Relaxed) == 1, "the other task did not run while the first spun");
        crate::check!(done, "the task that woke itself before its hand-over was never polled again (wake lost)");
        let polls = POLLS.load(Ordering::Relaxed);
        crate::check!(polls == 2, "the task was polled {polls} times");
        Ok(())
    }
}

crate::selftest! {
    /// A task that never awaits does not keep the core's other tasks from running: the timer preempts its
    /// runner, the standby takes over, and a second task runs and finishes meanwhile; when the spinner stops,
    /// its runner gives its stack back (the runner threads are two again: active and standby).
    fn a_task_that_never_awaits_is_preempted_and_the_others_run() {
        use core::sync::atomic::{AtomicBool, AtomicU64};
        static STOP: AtomicBool = AtomicBool::new(false);
        static SPINS: AtomicU64 = AtomicU64::new(0);
        static OTHER: AtomicBool = AtomicBool::new(false);
        STOP.store(false, Ordering::Relaxed);
        OTHER.store(false, Ordering::Relaxed);
        let spinner = spawn(async {
            while !STOP.load(Ordering::Relaxed) {
                SPINS.fetch_add(1, Ordering::Relaxed);
                core::hint::spin_loop();
            }
        })
        .map_err(|e| alloc::format!("{e:?}"))?;
        // Let the spinner start (this thread yields to the runner, which polls it and never returns).
        let started = (0..1000).any(|_| {
            sched::yield_now();
            SPINS.load(Ordering::Relaxed) != 0
        });
        crate::check!(started, "the spinning task never ran");
        let other = spawn(async { OTHER.store(true, Ordering::Relaxed) }).map_err(|e| alloc::format!("{e:?}"))?;
        let ran = (0..10_000).any(|_| {
            sched::yield_now();
            OTHER.load(Ordering::Relaxed)
        });
        STOP.store(true, Ordering::Relaxed);
        let stopped = (0..10_000).any(|_| {
            sched::yield_now();
            !is_alive(spinner)
        });
        crate::check!(ran, "a second task did not run while the first spun (the core's tasks froze)");
        crate::check!(stopped && !is_alive(other), "the tasks did not finish");
        Ok(())
    }
}
