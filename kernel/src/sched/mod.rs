//! The per-core scheduler: threads with their own kernel stacks, a run queue, preemption on the timer tick.
//!
//! Each core owns one [`Scheduler`], kept in its per-CPU record (a `percpu::CoreLocal` slot); only that core
//! changes it (another core's wake-up comes as a message, `ipc::intercore`), so there is no global scheduler
//! lock. The scheduler's lock is an `IrqMutex` because the timer and device interrupts of the same core use it;
//! another core takes it only briefly, to read counts for a report ([`census_of`]).
//!
//! Thread states are where a thread is kept: `current` (running), `run_queue` (ready), parked in its slot (until
//! [`wake`]), `dead` (exited, its stack freed by the next thread to run, never by itself). Each core also has an
//! idle thread that runs only when nothing else can.
//!
//! A ring-3 thread (`spawn_ring3`) is a thread like any other whose code enters ring 3: the switch to it gives the
//! core back its kernel stack for entries from ring 3 and loads its address space if another one is loaded
//! (kernel threads and ring-0 SIPs run in whatever space is loaded); the timer preempts it in the trap handler,
//! on its own kernel stack ([`on_timer_tick_in_ring_3`]).
//!
//! Every thread holds a slot in its core's slot table for its whole life, and the slot is part of its id, so
//! a wake finds a parked thread by indexing, not hashing: the wake/park pair is on every blocking message
//! round trip.

mod context;
mod preempt;

use crate::exec::{Account, KernelAccount, watermark};
use crate::memory::frames::Use;
use crate::memory::stacks::{self, Stack, StackError};
use crate::percpu::{self, CoreLocal, LocalName, PerCpu};
use crate::sync::IrqMutex;
use alloc::boxed::Box;
use alloc::collections::{BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use x86_64::instructions::interrupts;
use x86_64::structures::idt::InterruptStackFrame;

/// A thread's identity, unique for the whole boot (never reused): a serial number above the thread's slot in
/// its core's slot table (the low [`SLOT_BITS`]). Ids stay below 2^56 (2^36 threads a boot), so a waker can pack
/// the core above them (`ipc::blocking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ThreadId(pub u64);

/// Bits of a thread id that name its slot: up to a million threads per core.
pub const SLOT_BITS: u32 = 20;

impl ThreadId {
    fn slot(self) -> usize {
        (self.0 & ((1 << SLOT_BITS) - 1)) as usize
    }
}

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// Every core's scheduler, in its per-CPU record (boot hands this to `percpu::init_bsp`).
// SAFETY: the only `CoreLocal` of the scheduler's slot.
pub static SCHEDULERS: CoreLocal<IrqMutex<Scheduler>> =
    unsafe { CoreLocal::new(LocalName::Scheduler, || IrqMutex::new(Scheduler::new())) };

/// The scheduler of `cpu` (this core, or another one for a report).
#[inline(always)]
fn scheduler(cpu: &PerCpu) -> &IrqMutex<Scheduler> {
    SCHEDULERS.get(cpu)
}

/// What an entry of a core's thread-slot table holds.
enum ThreadSlot {
    /// No thread.
    Free,
    /// A thread that is running, ready or dead (its box is elsewhere).
    Live,
    /// A parked thread: its box lives here until a wake.
    Parked(Box<Thread>),
}

/// A thread: its saved stack pointer and the stack it owns.
pub struct Thread {
    /// Identity.
    pub id: ThreadId,
    /// Who it runs for, as the per-CPU `current_owner` word ([`Account::word`]), ready for the switch. Atomic, as
    /// the account words below: a task runner changes its own for every poll ([`OwnAccount`]).
    owner_word: AtomicU64,
    rsp: u64,
    /// `None` for the boot thread, which runs on the bootloader's stack.
    stack: Option<Stack>,
    idle: bool,
    /// Kernel-mode depth while switched out (`exec`).
    kernel_depth: u32,
    /// A task runner (`spawn_runner`): its account words are its own to change ([`OwnAccount`]).
    runner: bool,
    /// Address of the SIP arena its allocations go to (0: the kernel heap).
    arena: AtomicUsize,
    /// Its stack limit as the per-CPU `stack_limit` word (a SIP thread's stack bottom + `KERNEL_RESERVE`, 0 for
    /// a kernel thread), ready for the switch.
    stack_limit: AtomicU64,
    /// A wake came while it was running or ready: its next park returns at once (token semantics).
    wake_pending: bool,
    /// Its SIP is being ended: it ends itself the next time it leaves kernel code (see [`doom`]).
    doomed: bool,
    /// Parked where ending it cuts nothing short (a channel receive, a sleep, a wait for a SIP's end): a kill
    /// may remove it there.
    cuttable: bool,
    /// Until it first runs: its start argument and how to free it (the boxed closure of [`spawn_in`]), so a
    /// thread removed before it ever ran leaves nothing behind. Never run: its saved RSP is still `initial_rsp`.
    unstarted: Option<(u64, unsafe fn(u64))>,
    /// The stack pointer its first switch starts from.
    initial_rsp: u64,
    /// For a thread that runs ring-3 code: the level-4 table of its address space (physical address), loaded
    /// when it is switched to; 0 for every other thread, which runs in whatever space is loaded.
    ring3_space: u64,
    /// For a ring-3 thread: the guard below its ring-3 stack (empty for other threads).
    ring3_guard: core::ops::Range<u64>,
    /// For a ring-3 thread: its kernel stack for entries from ring 3 (`percpu`'s), given back to the core when it
    /// runs again. Noted by the thread itself ([`note_ring3_stack`]) in every kernel path from ring 3 that may
    /// switch it out, so that ring-0 switches pay nothing for it.
    ring3_stack: u64,
}

impl Thread {
    /// The thread's own stack, if it has one.
    pub fn stack(&self) -> Option<&Stack> {
        self.stack.as_ref()
    }

    /// Whether a fault at `addr` in ring-3 code of this thread is its ring-3 stack's overflow.
    pub fn is_ring3_stack_overflow(&self, addr: u64) -> bool {
        self.ring3_guard.contains(&addr)
    }
}

/// One core's scheduler state.
pub struct Scheduler {
    current: Option<Box<Thread>>,
    run_queue: VecDeque<Box<Thread>>,
    /// Every thread of this core, by the slot in its id; parked threads' boxes live here.
    slots: Vec<ThreadSlot>,
    free_slots: Vec<u32>,
    /// Threads parked in `slots`.
    parked: usize,
    #[allow(clippy::vec_box, reason = "a switch writes the saved RSP through a pointer into the box, after the push")]
    dead: Vec<Box<Thread>>,
    idle: Option<Box<Thread>>,
    /// Parked threads with a wake-up deadline (uptime nanoseconds), earliest first.
    sleepers: BTreeSet<(u64, ThreadId)>,
    /// Context switches on this core.
    pub switches: u64,
}

impl Scheduler {
    /// A fresh thread id, with a slot of this core.
    fn new_id(&mut self) -> ThreadId {
        let slot = match self.free_slots.pop() {
            Some(slot) => slot as usize,
            None => {
                self.slots.push(ThreadSlot::Free);
                self.slots.len() - 1
            }
        };
        self.slots[slot] = ThreadSlot::Live;
        ThreadId((NEXT_SERIAL.fetch_add(1, Ordering::Relaxed) << SLOT_BITS) | slot as u64)
    }

    /// Frees the slot of thread `id`, which is gone for good.
    fn release(&mut self, id: ThreadId) {
        if let Some(slot) = self.slots.get_mut(id.slot()) {
            *slot = ThreadSlot::Free;
            self.free_slots.push(id.slot() as u32);
        }
    }

    fn park(&mut self, thread: Box<Thread>) {
        let slot = thread.id.slot();
        self.slots[slot] = ThreadSlot::Parked(thread);
        self.parked += 1;
    }

    /// Takes thread `id` out of its slot if it is parked there.
    fn unpark(&mut self, id: ThreadId) -> Option<Box<Thread>> {
        let slot = self.slots.get_mut(id.slot())?;
        if !matches!(slot, ThreadSlot::Parked(thread) if thread.id == id) {
            return None;
        }
        match core::mem::replace(slot, ThreadSlot::Live) {
            ThreadSlot::Parked(thread) => {
                self.parked -= 1;
                Some(thread)
            }
            _ => None,
        }
    }

    /// Makes `id` ready if it is parked; otherwise remembers the wake for its next park (see [`wake`]).
    fn make_ready(&mut self, id: ThreadId) {
        if let Some(thread) = self.unpark(id) {
            self.run_queue.push_back(thread);
            return;
        }
        // Not parked yet: remember, so its next park returns at once. Wakes for threads that no longer exist (a
        // peer of a killed SIP) find nobody and are dropped.
        let running = self.current.as_deref_mut().filter(|t| t.id == id);
        if let Some(thread) = running.or_else(|| self.run_queue.iter_mut().map(|t| &mut **t).find(|t| t.id == id)) {
            thread.wake_pending = true;
        }
    }

    /// An empty scheduler (each core's, made with its per-CPU record).
    pub const fn new() -> Self {
        Self {
            current: None,
            run_queue: VecDeque::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            parked: 0,
            dead: Vec::new(),
            idle: None,
            sleepers: BTreeSet::new(),
            switches: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// Give the core to another ready thread, stay ready.
    Yield,
    /// Park until woken.
    Block,
    /// Never run again.
    Exit,
}

/// Why a thread could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadError {
    /// Its stack could not be made.
    Stack(StackError),
}

/// What the scheduler asks the task runners (`ipc::tasks`) at a timer tick that finds this core's active runner
/// inside a poll while other tasks wait (the task does not await, or blocked in a call it made): which parked
/// runner takes over the core's other tasks, if one does. Called with the scheduler's lock held and interrupts
/// off: it must not call into the scheduler.
pub type RunnerHandover = fn(&PerCpu) -> Option<ThreadId>;

static RUNNER_HANDOVER: spin::Once<RunnerHandover> = spin::Once::new();

/// Installs the runners' hand-over (once, at boot, by `ipc::tasks`).
pub fn install_runner_handover(handover: RunnerHandover) {
    RUNNER_HANDOVER.call_once(|| handover);
}

/// What the timer tick asks the task runners (`ipc::tasks`): wake the tasks whose timers expired by `now` on
/// this core (`cpu`). Called on every tick, in the tick's kernel mode, without the scheduler's lock.
pub type TaskTimers = fn(&PerCpu, u64);

static TASK_TIMERS: spin::Once<TaskTimers> = spin::Once::new();

/// Installs the task runners' timers (once, at boot, by `ipc::tasks`).
pub fn install_task_timers(timers: TaskTimers) {
    TASK_TIMERS.call_once(|| timers);
}

/// Makes the calling (boot) code this core's first thread and creates the core's idle thread.
pub fn init_this_core() -> Result<(), ThreadError> {
    let boot = Box::new(Thread {
        id: scheduler(percpu::current()).lock().new_id(),
        owner_word: AtomicU64::new(Account::Kernel.word()),
        rsp: 0,
        stack: None,
        idle: false,
        kernel_depth: 0,
        runner: false,
        arena: AtomicUsize::new(0),
        stack_limit: AtomicU64::new(0),
        wake_pending: false,
        doomed: false,
        cuttable: false,
        unstarted: None,
        initial_rsp: 0,
        ring3_space: 0,
        ring3_guard: 0..0,
        ring3_stack: 0,
    });
    let idle = new_thread(Account::Kernel, 0, 16 * 1024, idle_loop_entry, 0, Kind::Idle)?;
    let cpu = percpu::current();
    cpu.current_thread.store(boot.id.0, Ordering::Relaxed);
    let mut s = scheduler(cpu).lock();
    s.current = Some(boot);
    s.idle = Some(idle);
    // Room for the threads a core usually holds, made once: switches then never allocate, and the kernel heap
    // does not creep up the first time a core happens to hold a few more threads than before.
    s.run_queue.reserve(QUEUE_ROOM);
    s.slots.reserve(QUEUE_ROOM);
    s.free_slots.reserve(QUEUE_ROOM);
    // A B-tree keeps its first node once it has had an entry: have it now, not at this core's first sleep.
    let sentinel = (u64::MAX, ThreadId(0));
    s.sleepers.insert(sentinel);
    s.sleepers.remove(&sentinel);
    Ok(())
}

/// Threads a core's run queue and slot table hold without growing.
const QUEUE_ROOM: usize = 64;

/// What a new thread runs.
#[derive(Debug, Clone)]
enum Kind {
    /// Kernel code, or a ring-0 SIP's code (by its account).
    Ring0,
    /// The core's idle thread.
    Idle,
    /// A task runner: kernel code that polls async SIPs' futures (a kernel reserve below its stack).
    Runner,
    /// Ring-3 code in the address space whose level-4 table is at this physical address, with the guard below
    /// its ring-3 stack.
    Ring3(u64, core::ops::Range<u64>),
}

fn new_thread(
    owner: Account,
    arena: usize,
    stack_bytes: u64,
    entry: extern "sysv64" fn(u64) -> !,
    argument: u64,
    kind: Kind,
) -> Result<Box<Thread>, ThreadError> {
    // A ring-0 SIP's thread gets the kernel reserve below the stack its manifest asked for: kernel code runs on
    // this stack on the SIP's behalf (docs/architecture.md, "Stacks and the kernel reserve"). A ring-3 thread's
    // stack is kernel stack only (its SIP's code has a stack of its own, in ring 3): no reserve, no limit. SIP
    // threads' frames never take the kernel's frame reserve.
    let sip = matches!(owner, Account::Sip(_));
    let idle = matches!(kind, Kind::Idle);
    let runner = matches!(kind, Kind::Runner);
    let (ring3_space, ring3_guard) = match kind {
        Kind::Ring3(space, guard) => (space, guard),
        _ => (0, 0..0),
    };
    let reserve = if (sip && ring3_space == 0) || runner { stacks::KERNEL_RESERVE } else { 0 };
    let purpose = if sip { Use::Sip } else { Use::Kernel };
    let stack = Stack::new(stack_bytes.saturating_add(reserve), purpose).map_err(ThreadError::Stack)?;
    // A runner is a kernel thread (limit 0) between polls; it sets the limit for each poll itself.
    let stack_limit = if reserve != 0 && sip { stack.bottom() + reserve } else { 0 };
    // SAFETY: the stack was just mapped for this thread alone and is far larger than the initial frame.
    let rsp = unsafe { context::initial_frame(stack.top(), entry as *const () as u64, argument) };
    Ok(Box::new(Thread {
        id: scheduler(percpu::current()).lock().new_id(),
        owner_word: AtomicU64::new(owner.word()),
        rsp,
        stack: Some(stack),
        idle,
        kernel_depth: 0,
        runner,
        arena: AtomicUsize::new(arena),
        stack_limit: AtomicU64::new(stack_limit),
        wake_pending: false,
        doomed: false,
        cuttable: false,
        unstarted: None,
        initial_rsp: rsp,
        ring3_space,
        ring3_guard,
        ring3_stack: 0,
    }))
}

/// Starts a task runner (`ipc::tasks`): a kernel thread whose stack has a SIP thread's kernel reserve below
/// `stack_bytes`, because it runs async SIPs' code (it sets the stack limit, [`current_stack_bottom`], for every
/// poll).
pub fn spawn_runner<F: FnOnce() + Send + 'static>(stack_bytes: u64, f: F) -> Result<ThreadId, ThreadError> {
    spawn_kind(Account::Kernel, 0, stack_bytes, Kind::Runner, f)
}

/// The lowest address of the running thread's stack (`None` for a boot thread, which has no stack of its own).
pub fn current_stack_bottom() -> Option<u64> {
    with_current(|thread| thread.stack().map(Stack::bottom)).flatten()
}

/// A task runner's hold on its own account words (`ipc::tasks`): it runs each task on the task's account, as
/// a switch to a thread of the task's SIP would set it. Not `Send`: it names the thread that made it.
pub struct OwnAccount {
    thread: core::ptr::NonNull<Thread>,
}

impl OwnAccount {
    /// The running thread's, if it is a task runner ([`spawn_runner`]).
    pub fn of_current_runner() -> Option<Self> {
        let thread = with_current(|thread| thread.runner.then(|| core::ptr::NonNull::from(thread)))??;
        Some(Self { thread })
    }

    /// Runs on `owner_word`'s account from now on, its allocations going where `arena_word` says, its stack
    /// limit `stack_limit` (`exec`): in the thread's record first, so that a switch at any point keeps them.
    #[inline]
    pub fn set(&self, cpu: &PerCpu, owner_word: u64, arena_word: usize, stack_limit: u64) {
        // SAFETY: the thread this names is the running one (the value never leaves it: not `Send`), whose boxed
        // record lives until after it has exited; its account words are atomics.
        let thread = unsafe { self.thread.as_ref() };
        thread.owner_word.store(owner_word, Ordering::Relaxed);
        thread.arena.store(arena_word, Ordering::Relaxed);
        thread.stack_limit.store(stack_limit, Ordering::Relaxed);
        cpu.current_arena.store(arena_word, Ordering::Relaxed);
        cpu.stack_limit.store(stack_limit, Ordering::Relaxed);
        cpu.current_owner.store(owner_word, Ordering::Relaxed);
    }
}

/// Starts a kernel thread running `f` on this core and returns its id. The thread ends when `f` returns.
pub fn spawn<F: FnOnce() + Send + 'static>(owner: Account, stack_bytes: u64, f: F) -> Result<ThreadId, ThreadError> {
    spawn_in(owner, 0, stack_bytes, f)
}

/// Like [`spawn`], for a thread whose allocations go to the SIP arena at address `arena` (0: kernel heap).
/// Call in kernel mode: the closure is boxed on the kernel heap.
pub fn spawn_in<F: FnOnce() + Send + 'static>(
    owner: Account,
    arena: usize,
    stack_bytes: u64,
    f: F,
) -> Result<ThreadId, ThreadError> {
    spawn_kind(owner, arena, stack_bytes, Kind::Ring0, f)
}

/// Starts a thread of `owner` that will run ring-3 code in the address space whose level-4 table is at physical
/// address `space` (its switch-in loads it): `f` runs on a kernel stack of `stack_bytes` and enters ring 3 with
/// `cpu_rings::run_user`; `guard` is the unmapped range below its ring-3 stack. The space must outlive the
/// thread.
pub fn spawn_ring3<F: FnOnce() + Send + 'static>(
    owner: Account,
    stack_bytes: u64,
    space: u64,
    guard: core::ops::Range<u64>,
    f: F,
) -> Result<ThreadId, ThreadError> {
    spawn_kind(owner, 0, stack_bytes, Kind::Ring3(space, guard), f)
}

fn spawn_kind<F: FnOnce() + Send + 'static>(
    owner: Account,
    arena: usize,
    stack_bytes: u64,
    kind: Kind,
    f: F,
) -> Result<ThreadId, ThreadError> {
    let _kernel = KernelAccount::enter();
    let argument = Box::into_raw(Box::new(f)) as u64;
    let mut thread = new_thread(owner, arena, stack_bytes, closure_entry::<F>, argument, kind).inspect_err(|_| {
        // SAFETY: the pointer came from Box::into_raw just above and was not handed to any thread.
        drop(unsafe { Box::from_raw(argument as *mut F) });
    })?;
    thread.unstarted = Some((argument, drop_closure::<F>));
    let id = thread.id;
    scheduler(percpu::current()).lock().run_queue.push_back(thread);
    Ok(id)
}

/// Frees the boxed closure of a thread that never ran.
///
/// # Safety
/// `argument` is the `Box<F>` pointer `spawn_in` made for a thread that never ran and never will.
unsafe fn drop_closure<F>(argument: u64) {
    // SAFETY: per the caller, the box is unused and this is its only release.
    drop(unsafe { Box::from_raw(argument as *mut F) });
}

/// Entry of a closure thread. The closure is moved out of its box onto the thread's own stack *before* it
/// runs: a SIP thread may never return (exit, panic, fault), and nothing of it may stay on the kernel heap.
extern "sysv64" fn closure_entry<F: FnOnce() + Send + 'static>(argument: u64) -> ! {
    let f = {
        let _kernel = KernelAccount::enter();
        // SAFETY: `spawn_in` passed a pointer from Box::into_raw of exactly this type, used once (here).
        *unsafe { Box::from_raw(argument as *mut F) }
    };
    f();
    exit_current()
}

extern "sysv64" fn idle_loop_entry(_: u64) -> ! {
    loop {
        interrupts::disable();
        if has_ready_threads() {
            schedule(Reason::Yield);
            interrupts::enable();
        } else {
            // Atomic with the check above: an interrupt that makes a thread ready wakes the hlt.
            interrupts::enable_and_hlt();
        }
    }
}

/// Where every new thread starts (called by the context trampoline, interrupts off).
extern "sysv64" fn thread_start(entry: extern "sysv64" fn(u64) -> !, argument: u64) -> ! {
    after_switch(percpu::current());
    interrupts::enable();
    entry(argument)
}

/// Whether a thread other than the running one is ready on this core.
pub fn has_ready_threads() -> bool {
    !scheduler(percpu::current()).lock().run_queue.is_empty()
}

/// The running thread's id.
pub fn current_id() -> Option<ThreadId> {
    // A per-CPU copy kept by the switch: read on every blocking receive (to make a waker), so no lock.
    match percpu::current().current_thread.load(Ordering::Relaxed) {
        0 => None,
        id => Some(ThreadId(id)),
    }
}

/// Runs `f` on the running thread's record.
pub fn with_current<R>(f: impl FnOnce(&Thread) -> R) -> Option<R> {
    scheduler(percpu::current()).lock().current.as_deref().map(f)
}

/// Gives the core to the next ready thread, if any; returns when this thread runs again.
pub fn yield_now() {
    let were_enabled = interrupts::are_enabled();
    interrupts::disable();
    schedule(Reason::Yield);
    if were_enabled {
        interrupts::enable();
    }
}

/// Parks the running thread until [`wake`] names it (returns at once if a wake came first).
pub fn block_current() {
    let were_enabled = interrupts::are_enabled();
    interrupts::disable();
    schedule(Reason::Block);
    if were_enabled {
        interrupts::enable();
    }
}

/// [`block_current`] at a cut point: the caller holds nothing of the kernel's (no lock, no allocation that
/// only its stack knows of, no half-done update), so a kill may remove the thread while it is parked here.
/// A doomed thread (its SIP is being ended) does not park but ends.
pub fn block_current_cuttable() {
    let were_enabled = interrupts::are_enabled();
    interrupts::disable();
    let doomed = {
        let _kernel = KernelAccount::enter();
        let mut s = scheduler(percpu::current()).lock_irqs_off();
        match s.current.as_mut() {
            Some(current) => {
                current.cuttable = !current.doomed;
                current.doomed
            }
            None => false,
        }
    };
    if doomed {
        crate::exec::end_doomed();
    }
    schedule(Reason::Block);
    if let Some(current) = scheduler(percpu::current()).lock_irqs_off().current.as_mut() {
        current.cuttable = false;
    }
    if were_enabled {
        interrupts::enable();
    }
}

/// Marks thread `id` of this core (not the running one) doomed: its SIP is being ended. Returns the thread if
/// it could be removed at once — ready after being switched out in SIP code, or parked at a cut point — and
/// `None` if it is busy in kernel code, which it then finishes before it ends itself (`exec::end_doomed`, at
/// its next return to SIP code or its next cut point). A thread that is already gone is `None` as well.
pub fn doom(id: ThreadId) -> Option<Box<Thread>> {
    let _kernel = KernelAccount::enter();
    let mut s = scheduler(percpu::current()).lock();
    let removable = if let Some(ThreadSlot::Parked(thread)) = s.slots.get_mut(id.slot())
        && thread.id == id
    {
        thread.doomed = true;
        thread.cuttable
    } else if let Some(thread) = s.run_queue.iter_mut().find(|t| t.id == id) {
        thread.doomed = true;
        // Switched out at depth 1 or less: in SIP code (the one level is the scheduler's own).
        thread.kernel_depth <= 1
    } else {
        false
    };
    drop(s);
    if removable { remove_thread(id) } else { None }
}

/// Makes `id` ready if it is parked on this core; otherwise remembers the wake for its next [`block_current`].
pub fn wake(id: ThreadId) {
    let _kernel = KernelAccount::enter();
    scheduler(percpu::current()).lock().make_ready(id);
}

/// Ends the running thread; its stack is freed by the next thread to run.
pub fn exit_current() -> ! {
    interrupts::disable();
    if watermark::ENABLED {
        watermark::end(percpu::current());
    }
    schedule(Reason::Exit);
    unreachable!("an exited thread was scheduled again")
}

/// Sleeps this long or longer are "forever": the thread parks with no deadline (about 292 years).
const FOREVER: u64 = u64::MAX / 2;

/// Parks the running thread for at least `nanos` (woken by the timer tick that passes the deadline).
pub fn sleep(nanos: u64) {
    if nanos >= FOREVER {
        // No deadline to track: park until something (a kill) ends the thread.
        loop {
            block_current_cuttable();
        }
    }
    let deadline = crate::time::uptime_nanos().saturating_add(nanos);
    while crate::time::uptime_nanos() < deadline {
        let were_enabled = interrupts::are_enabled();
        interrupts::disable();
        if let Some(id) = current_id() {
            let _kernel = KernelAccount::enter();
            scheduler(percpu::current()).lock().sleepers.insert((deadline, id));
        }
        block_current_cuttable();
        if were_enabled {
            interrupts::enable();
        }
    }
}

/// Removes thread `id` from this core's queues (it must not be the running one) and returns it; dropping it
/// frees its stack. Used to end the threads of a killed SIP.
pub fn remove_thread(id: ThreadId) -> Option<Box<Thread>> {
    let _kernel = KernelAccount::enter();
    let mut s = scheduler(percpu::current()).lock();
    s.sleepers.retain(|(_, t)| *t != id);
    let thread = match s.unpark(id) {
        Some(thread) => thread,
        None => {
            let at = s.run_queue.iter().position(|t| t.id == id)?;
            s.run_queue.remove(at)?
        }
    };
    s.release(id);
    drop(s);
    let mut thread = thread;
    if thread.rsp == thread.initial_rsp
        && let Some((argument, drop_start)) = thread.unstarted.take()
    {
        // SAFETY: the thread never ran (its saved stack pointer is still the one its first switch would start
        // from), so its boxed closure was never taken; it never will be now.
        unsafe { drop_start(argument) };
    }
    Some(thread)
}

/// Whether thread `id` is running or ready on this core.
pub fn is_runnable(id: ThreadId) -> bool {
    let s = scheduler(percpu::current()).lock();
    s.current.as_ref().is_some_and(|t| t.id == id) || s.run_queue.iter().any(|t| t.id == id)
}

/// Timer tick on this core, from the timer interrupt handler (on the interrupt IST stack) with the frame it
/// returns through: wake expired sleepers, then preempt the running thread if another is ready (round robin,
/// one tick a slice). Preempting rewrites `frame` so that the interrupted thread yields on its own stack after
/// the handler's `iretq` ([`preempt`]); a SIP found running inside its kernel reserve is sent to its end instead.
pub fn on_timer_tick(frame: &mut InterruptStackFrame) {
    wake_expired_sleepers();
    preempt::on_tick(frame);
}

/// The address space at physical address `level_4` is about to be freed: if the running thread is a ring-3
/// thread of it (its SIP's last, ending), it must never load it again.
pub fn forget_space(level_4: u64) {
    let mut s = scheduler(percpu::current()).lock();
    if let Some(current) = s.current.as_mut().filter(|t| t.ring3_space == level_4) {
        current.ring3_space = 0;
    }
}

/// Timer tick on this core that interrupted ring-3 code, from `interrupts` on the thread's own kernel stack
/// (interrupts off, the tick acknowledged): wake expired sleepers, then switch right here if another thread is
/// ready. The thread resumes in ring 3 where it was when it runs again; a doomed thread ends instead.
pub fn on_timer_tick_in_ring_3() {
    wake_expired_sleepers();
    if has_ready_threads() {
        note_ring3_stack();
        schedule(Reason::Yield);
    }
}

/// Notes the core's kernel stack for entries from ring 3 as the running thread's own: call on a ring-3 thread,
/// in kernel code entered from ring 3, before anything that may switch it out (a call that blocks or yields, a
/// preemption). The value is constant for the thread once it entered ring 3 (`cpu_rings::run_user` set it).
#[inline(always)]
pub fn note_ring3_stack() {
    let cpu = percpu::current();
    let stack = cpu.ring3_kernel_stack();
    // Noted already (the same stack, given back at the switch to this thread or noted since): a thread's stack
    // for entries from ring 3 changes only when it enters ring 3 anew, so most waits find it noted.
    let thread = cpu.current_thread.load(Ordering::Relaxed);
    if cpu.ring3_noted_thread.load(Ordering::Relaxed) != thread
        || cpu.ring3_noted_stack.load(Ordering::Relaxed) != stack
    {
        note_ring3_stack_in(cpu, stack);
    }
}

/// [`note_ring3_stack`]'s work: `stack` into the running thread's record.
#[cold]
#[inline(never)]
fn note_ring3_stack_in(cpu: &'static PerCpu, stack: u64) {
    if let Some(current) = scheduler(cpu).lock().current.as_mut() {
        current.ring3_stack = stack;
        cpu.ring3_noted_thread.store(current.id.0, Ordering::Relaxed);
        cpu.ring3_noted_stack.store(stack, Ordering::Relaxed);
    }
}

fn wake_expired_sleepers() {
    let now = crate::time::uptime_nanos();
    let _kernel = KernelAccount::enter();
    if let Some(expire) = TASK_TIMERS.get() {
        expire(percpu::current(), now);
    }
    let mut s = scheduler(percpu::current()).lock();
    if s.sleepers.first().is_none_or(|(deadline, _)| *deadline > now) {
        return;
    }
    let mut expired = Vec::new();
    while let Some(&(deadline, id)) = s.sleepers.first()
        && deadline <= now
    {
        s.sleepers.pop_first();
        expired.push(id);
    }
    drop(s);
    expired.into_iter().for_each(wake);
}

/// Switches away from the running thread for `reason`. Interrupts must be off.
fn schedule(reason: Reason) {
    // Queue bookkeeping allocates: always on the kernel heap, even when a SIP thread yields or is preempted.
    // Entering kernel mode is also where a SIP that yields with its stack used up is stopped (`exec`).
    let cpu = percpu::current();
    let _kernel = KernelAccount::enter_on(cpu);
    switch_away(cpu, reason);
}

/// The body of [`schedule`], for a caller in kernel mode (also the timer's preemption, `preempt`).
#[inline(always)]
fn switch_away(cpu: &'static PerCpu, reason: Reason) {
    let (prev_rsp, next_rsp) = {
        let mut s = scheduler(cpu).lock_irqs_off();
        let s = &mut *s;
        let Some(current) = s.current.as_mut() else { return };
        if reason == Reason::Block && core::mem::take(&mut current.wake_pending) {
            return;
        }
        current.kernel_depth = cpu.kernel_depth.load(Ordering::Relaxed);
        // Where the running thread's stack pointer is saved: a raw pointer taken where its box rests *after* this
        // switch's moves (taken before and kept across a move of the box, it would not be valid).
        let prev_rsp: *mut u64;
        if reason == Reason::Yield
            && !current.idle
            && s.run_queue.len() == 1
            && let Some(other) = s.run_queue.front_mut()
        {
            // Two threads taking turns (a same-core message exchange polls this way): the one ready thread
            // and the running one trade places, which is what popping the front and pushing the back would do,
            // without moving the queue's ends.
            core::mem::swap(current, other);
            prev_rsp = &raw mut other.rsp;
        } else {
            let next = match s.run_queue.pop_front() {
                Some(next) => next,
                None if reason == Reason::Yield => return,
                None => match s.idle.take() {
                    Some(idle) => idle,
                    None => panic!("no idle thread on cpu {}", cpu.index),
                },
            };
            // The next thread takes the running slot in place; the previous one comes out of it.
            let prev = core::mem::replace(current, next);
            let slot = prev.id.slot();
            let rests: &mut Thread = match reason {
                _ if prev.idle => s.idle.insert(prev),
                Reason::Yield => {
                    s.run_queue.push_back(prev);
                    s.run_queue.back_mut().unwrap_or_else(|| unreachable!("just pushed"))
                }
                Reason::Block => {
                    s.park(prev);
                    match s.slots.get_mut(slot) {
                        Some(ThreadSlot::Parked(parked)) => parked,
                        _ => unreachable!("just parked"),
                    }
                }
                Reason::Exit => {
                    s.dead.push(prev);
                    cpu.dead_threads.store(s.dead.len(), Ordering::Relaxed);
                    s.dead.last_mut().unwrap_or_else(|| unreachable!("just pushed"))
                }
            };
            prev_rsp = &raw mut rests.rsp;
        }
        let Some(next) = s.current.as_deref() else { unreachable!("the running slot was just filled") };
        let next_rsp = next.rsp;
        let (next_depth, next_id) = (next.kernel_depth, next.id.0);
        let next_owner = next.owner_word.load(Ordering::Relaxed);
        let next_arena = next.arena.load(Ordering::Relaxed);
        let (next_doomed, next_limit) = (next.doomed, next.stack_limit.load(Ordering::Relaxed));
        if next.ring3_space != 0 {
            switch_to_ring3_thread(cpu, next.ring3_space, next.ring3_stack, next_id);
        }
        s.switches = s.switches.wrapping_add(1);
        // Only now, after the last allocation of this switch (the queue pushes above), does the per-CPU
        // context become the next thread's: earlier, those pushes would land in the next SIP's arena.
        cpu.kernel_depth.store(next_depth, Ordering::Relaxed);
        cpu.current_owner.store(next_owner, Ordering::Relaxed);
        cpu.current_arena.store(next_arena, Ordering::Relaxed);
        cpu.current_thread.store(next_id, Ordering::Relaxed);
        cpu.current_doomed.store(next_doomed, Ordering::Relaxed);
        cpu.stack_limit.store(next_limit, Ordering::Relaxed);
        (prev_rsp, next_rsp)
    };
    // SAFETY: interrupts are off (caller contract); `prev_rsp` points into a boxed Thread, taken where the box
    // rests, which stays alive and unmoved at least until it is resumed or reaped by a *different* thread after
    // this switch; `next_rsp` was saved by `switch` or built by `initial_frame` on the next thread's live stack.
    unsafe { context::switch(prev_rsp, next_rsp) };
    // Threads never move between cores, so this thread resumes on `cpu`.
    after_switch(cpu);
}

/// At a timer tick, with the scheduler's lock held: if this core's active task runner is inside a poll (running
/// now, or switched out in a call the task made) while other tasks wait, another runner takes over the core's
/// tasks ([`RunnerHandover`]) and is made ready; the tick then preempts the running thread for it. At the tick,
/// not at every switch, so that switches between threads pay nothing for task runners.
fn hand_tasks_over(cpu: &PerCpu, s: &mut Scheduler) {
    if cpu.polling_runner.load(Ordering::Relaxed) != 0
        && cpu.tasks_ready.load(Ordering::Relaxed)
        && let Some(next) = RUNNER_HANDOVER.get().and_then(|handover| handover(cpu))
    {
        s.make_ready(next);
    }
}

/// The part of a switch that only a ring-3 thread needs: its kernel stack for entries from ring 3, and its
/// address space if the core has another one loaded. Out of line: ring-0 switches never come here.
#[cold]
#[inline(never)]
fn switch_to_ring3_thread(cpu: &'static PerCpu, space: u64, stack: u64, thread: u64) {
    // SAFETY: interrupts are off on this core (the switch's contract); the stack is the next thread's own (its
    // `run_user` frame), which lives as long as the thread, and only it enters ring 0 from ring 3 until the next
    // switch.
    unsafe { cpu.set_ring3_kernel_stack(stack) };
    // Its record holds this stack: noting it again is nothing to do (`note_ring3_stack`).
    cpu.ring3_noted_thread.store(thread, Ordering::Relaxed);
    cpu.ring3_noted_stack.store(stack, Ordering::Relaxed);
    if cpu.loaded_space.load(Ordering::Relaxed) != space {
        crate::ring3::load_space(cpu, space);
    }
}

/// Work every thread does right after it is switched to: free the threads that died on this core.
///
/// Inline, and one load in the common case (nothing died): this runs on every switch, twice per same-core
/// message round trip.
#[inline(always)]
fn after_switch(cpu: &'static percpu::PerCpu) {
    if cpu.dead_threads.load(Ordering::Relaxed) != 0 {
        reap_dead(cpu);
    }
}

/// Frees the threads that died on `cpu` (this core). Runs in kernel mode: the thread switched to may be a SIP's,
/// but freeing stacks is kernel bookkeeping and must not touch (or allocate in) that SIP's arena.
#[cold]
#[inline(never)]
fn reap_dead(cpu: &'static percpu::PerCpu) {
    let _kernel = KernelAccount::enter_on(cpu);
    let dead = {
        let mut s = scheduler(cpu).lock();
        cpu.dead_threads.store(0, Ordering::Relaxed);
        let dead = core::mem::take(&mut s.dead);
        dead.iter().for_each(|thread| s.release(thread.id));
        dead
    };
    drop(dead);
}

/// Counts of this core's threads, for `ps`-like reports and leak checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    /// Ready threads (excluding the running one).
    pub ready: usize,
    /// Parked threads.
    pub blocked: usize,
    /// Context switches so far.
    pub switches: u64,
}

/// This core's thread counts.
pub fn census() -> Census {
    census_of(percpu::current())
}

/// The thread counts of `cpu`'s scheduler, which may be another core's: a brief read under its lock, for reports.
pub fn census_of(cpu: &percpu::PerCpu) -> Census {
    let s = scheduler(cpu).lock();
    Census { ready: s.run_queue.len(), blocked: s.parked, switches: s.switches }
}

mod selftests;
