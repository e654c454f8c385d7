//! Software-isolated processes: spawning from manifests (within the kernel's policy), the per-core process
//! table, ending and reclaiming.
//!
//! A SIP is a manifest (`sip-runtime`) with what the policy grants it (`policy`), its protection mode, a heap
//! arena with a quota (`memory::arena`; a ring-3 SIP has a slot of user memory instead, `ring3`), its threads (each with a guarded stack, at most its thread limit), and — through the exchange
//! ledger — the exchange-heap blocks and endpoints it holds; what it pays for there (blocks it allocated,
//! received or opened, channels it made) is charged to its exchange quota. Every way a SIP can end goes
//! through [`end`]: its own thread (exit, panic, CPU exception, quota, a refused ownership change) or another
//! thread ([`kill`]). Ending never cuts kernel code short: threads parked at a cut point or switched out in SIP
//! code are removed at once; a thread busy in kernel code is *doomed* and ends itself when it leaves it
//! (`exec::end_doomed`), which takes a bounded time (kernel work never waits on a SIP). The last thread to go
//! reclaims the SIP by ownership records: the arena is unmapped whole, the exchange ledger frees its blocks
//! and closes its endpoints. No destructor or other code of the SIP's ever runs for that, which is what makes
//! reclaiming a SIP that died mid-operation possible without unwinding.
//!
//! Invariants: SIP ids are never reused in a boot; a SIP's record lives until its last thread is gone, and its
//! arena until after that; the first reason a SIP ends for is the one reported; the table is per core (the
//! multikernel issue replicates it); no monitor thread ever waits (a remote kill only marks, a remote wait is
//! a waiter entry).

pub mod abi;
mod async_selftests;
pub mod name_registry;
pub mod names;
pub mod policy;
pub mod remote;
pub mod replica;
pub mod replicated_map;
pub mod ring3;

use crate::exec::{self, Account, KernelAccount};
use crate::memory::arena::Arena;
use crate::memory::frames::Use;
use crate::memory::small_heap;
use crate::percpu::{self, CoreLocal, LocalName};
use crate::sched::{self, ThreadId};
use crate::sync::IrqMutex;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicU64, Ordering};
use sip_runtime::{
    AsyncMain, Capability, Entry, ExitStatus, KillError, MANIFESTS, MAX_ARGS_LEN, Manifest, Protection, RestartPolicy,
    SipContext, SipId, SpawnError, Startup,
};

static NEXT_SIP_ID: AtomicU64 = AtomicU64::new(1);

/// One live SIP.
pub struct Sip {
    /// Identity.
    pub id: u64,
    /// What it is, and what the kernel's policy grants it: exactly what the manifest asks (a spawn that asks
    /// beyond the policy is refused, `policy::grant`), so the manifest's limits and capabilities are its grant;
    /// the policy's log rate is in `log`.
    pub manifest: &'static Manifest,
    /// How it is protected.
    pub protection: Protection,
    /// Its heap arena (ring 0) or its ring-3 memory.
    memory: SipMemory,
    threads: Vec<ThreadId>,
    /// How many times this service was restarted to get this instance.
    restarts: u32,
    /// Who waits for it to end ([`wait`], [`notify_on_end`], waits from other cores).
    waiters: Vec<Waiter>,
    /// The endpoint its parent handed it, until it takes it. Never dropped by the kernel: if the SIP dies
    /// first, the ledger closes the endpoint's side (the SIP holds it) and the struct is forgotten.
    startup: Option<ManuallyDrop<Startup>>,
    /// Why it is ending, once it is: its threads are doomed and the last one to go reclaims it.
    ending: Option<EndReason>,
    /// Its log budget.
    log: LogBudget,
}

/// Where a SIP's memory is.
enum SipMemory {
    /// A ring-0 SIP's heap arena, in the kernel's address space.
    Arena(Box<Arena>),
    /// A ring-3 SIP's slot of user memory (`ring3`).
    User(ring3::UserMemory),
    /// An async SIP's blocks in its core's small heap, and its task (`ipc::tasks`: its continuation, polled by
    /// its core's runner; `None` until it is started).
    Small(Box<small_heap::Owner>, Option<u64>),
}

impl SipMemory {
    /// Bytes it holds for the SIP.
    fn used(&self) -> usize {
        match self {
            Self::Arena(arena) => arena.used(),
            Self::User(user) => user.heap() as usize,
            Self::Small(owner, _) => owner.used(),
        }
    }

    /// An async SIP's task.
    fn task(&self) -> Option<u64> {
        match self {
            Self::Small(_, task) => *task,
            _ => None,
        }
    }

    /// Whether an allocation failed for its quota.
    fn quota_hit(&self) -> bool {
        match self {
            Self::Arena(arena) => arena.quota_hit(),
            Self::User(user) => user.quota_hit(),
            Self::Small(owner, _) => owner.quota_hit(),
        }
    }
}

/// Someone to tell when a SIP ends.
pub enum Waiter {
    /// A thread of this core: woken.
    Thread(ThreadId),
    /// A thread of another core: answered through its reply cell.
    Reply(alloc::sync::Arc<crate::ipc::intercore::ReplyCell<()>>),
    /// An async SIP's task, of any core: woken through its token (a stale one wakes nobody).
    Task(u64),
}

impl Waiter {
    fn notify(self) {
        match self {
            Waiter::Thread(id) => sched::wake(id),
            Waiter::Reply(slot) => slot.answer(()),
            Waiter::Task(token) => channels::Blocking::wake(&crate::ipc::blocking::SCHEDULER, token),
        }
    }
}

/// One core's table of the SIPs it runs.
pub struct Table {
    /// Inline records, kept small: a map node holds eleven and sequential inserts leave most a little over half
    /// full, so each byte of a record costs nearly two (docs/thread-models.md, "How it works").
    sips: BTreeMap<u64, Sip>,
    /// This core's ring-3 slots and the space its `ring3` SIPs share.
    ring3: ring3::CoreSpaces,
    /// How the most recent ring-3 SIPs of this core ended, newest last (at most [`ENDS_KEPT`]), after they are
    /// gone: a ring-3 program's end is its result (the fault tests read it). Only ring-3 SIPs: a `type` SIP's
    /// end is in the log, and keeping reports would make the kernel heap after a run depend on how earlier SIPs
    /// ended, which the hostile tests compare exactly.
    ends: VecDeque<(u64, EndReason)>,
}

/// How many end reports a core keeps.
const ENDS_KEPT: usize = 32;

impl Table {
    /// An empty table (each core's, made with its per-CPU record).
    pub const fn new() -> Self {
        Self { sips: BTreeMap::new(), ring3: ring3::CoreSpaces::new(), ends: VecDeque::new() }
    }

    /// SIP `id`'s record.
    #[inline]
    fn sip(&self, id: u64) -> Option<&Sip> {
        self.sips.get(&id)
    }

    /// SIP `id`'s record, to change.
    #[inline]
    fn sip_mut(&mut self, id: u64) -> Option<&mut Sip> {
        self.sips.get_mut(&id)
    }
}

/// Every core's process table, in its per-CPU record (boot hands this to `percpu::init_bsp`).
// SAFETY: the only `CoreLocal` of the process-table slot.
pub static TABLES: CoreLocal<IrqMutex<Table>> =
    unsafe { CoreLocal::new(LocalName::Processes, || IrqMutex::new(Table::new())) };

fn table() -> &'static IrqMutex<Table> {
    TABLES.get(percpu::current())
}

/// Why a SIP ended.
#[derive(Debug)]
pub enum EndReason {
    /// Its entry returned or it called exit.
    Exited(ExitStatus),
    /// It panicked (message with location).
    Panicked(String),
    /// It took a CPU exception in its own code, or broke the exchange's ownership rules.
    Fault(String),
    /// An allocation failed because its heap quota was spent.
    QuotaExceeded,
    /// An allocation failed because its exchange quota was spent.
    ExchangeQuotaExceeded,
    /// Another SIP or the console killed it.
    Killed,
}

impl EndReason {
    /// Whether the restart policy counts this as a failure.
    fn is_failure(&self) -> bool {
        !matches!(self, Self::Exited(ExitStatus::Success) | Self::Killed)
    }
}

impl core::fmt::Display for EndReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Exited(ExitStatus::Success) => f.write_str("exited"),
            Self::Exited(ExitStatus::Failure(code)) => write!(f, "exited with failure code {code}"),
            Self::Panicked(message) => write!(f, "panicked: {message}"),
            Self::Fault(what) => write!(f, "faulted: {what}"),
            Self::QuotaExceeded => f.write_str("exceeded its heap quota"),
            Self::ExchangeQuotaExceeded => f.write_str("exceeded its exchange quota"),
            Self::Killed => f.write_str("was killed"),
        }
    }
}

/// At boot, before any SIP: refuses two manifests of one name (with both crates named), and installs how a SIP
/// ends for the layers below (a doomed thread, a fault).
pub fn init() {
    if let Err((name, first, second)) = policy::check_unique(&MANIFESTS) {
        panic!("two services are named '{name}' (crates '{first}' and '{second}'): service names must be unique");
    }
    exec::install_sip_endings(exec::SipEndings { doomed: doomed_exit, fault: on_fault });
    crate::ipc::tasks::install_sip_exit(async_exited);
    crate::ring3::install_calls(ring3::calls);
}

/// Names of every contract the kernel knows (a manifest may only name these).
fn known_contracts() -> Vec<&'static str> {
    contracts::all().iter().map(|info| info.name).collect()
}

/// Finds a manifest by service name.
pub fn manifest(name: &str) -> Option<&'static Manifest> {
    MANIFESTS.iter().find(|m| m.name == name)
}

/// The owner the exchange records know the calling code as: the SIP whose code runs, or the kernel.
fn caller_owner() -> channels::Owner {
    exec::current_sip().map_or(channels::Owner::KERNEL, channels::Owner::sip)
}

/// Starts service `name` on `core` (default: the least loaded). Nothing is left behind when it fails.
pub fn spawn(name: &str, args: &str, core: Option<u32>) -> Result<SipId, SpawnError> {
    spawn_with(name, args, core, None).map_err(|(e, _)| e)
}

/// Starts `name` with `args` protected as `protection` says, on `core` (default: the least loaded): a service
/// under `type` as [`spawn`] does; a program or service of the ring-3 image under `ring3` or `ring3-own`.
pub fn spawn_protected(
    name: &str,
    args: &str,
    core: Option<u32>,
    protection: Protection,
    startup: Option<Startup>,
) -> Result<SipId, (SpawnError, Option<Startup>)> {
    if !protection.is_ring3() {
        return spawn_with_restarts(name, args, core, 0, startup);
    }
    let _kernel = KernelAccount::enter();
    if args.len() > MAX_ARGS_LEN {
        return Err((SpawnError::ArgumentsTooLong, startup));
    }
    let target = core.unwrap_or_else(least_loaded_core);
    if !crate::cores::is_online(target) {
        return Err((SpawnError::NoSuchCore, startup));
    }
    let caller = caller_owner();
    if target != percpu::current_index() {
        return remote::spawn(target, name, args, 0, startup, caller, protection);
    }
    ring3::spawn_named(name, args, protection, startup, caller, 0)
}

/// Starts service `name` on `core` (default: the least loaded) under the protection its manifest asks for,
/// handing it `startup` (which the caller holds); on failure `startup` comes back, still the caller's.
pub fn spawn_with(
    name: &str,
    args: &str,
    core: Option<u32>,
    startup: Option<Startup>,
) -> Result<SipId, (SpawnError, Option<Startup>)> {
    // The service's own mode, unless it asks for ring 0 (the caller chose none: `spawn_protected` chooses).
    match manifest(name).map(|m| m.protection) {
        Some(protection) if protection.is_ring3() => spawn_protected(name, args, core, protection, startup),
        _ => spawn_with_restarts(name, args, core, 0, startup),
    }
}

fn spawn_with_restarts(
    name: &str,
    args: &str,
    core: Option<u32>,
    restarts: u32,
    startup: Option<Startup>,
) -> Result<SipId, (SpawnError, Option<Startup>)> {
    let _kernel = KernelAccount::enter();
    // Refused before any message: these answers are the same on every core.
    if args.len() > MAX_ARGS_LEN {
        return Err((SpawnError::ArgumentsTooLong, startup));
    }
    if let Err(e) = checked_manifest(name) {
        // A program of the ring-3 image is not verified code: say so rather than that there is no such service.
        let e = match (e, ring3::image_program(name)) {
            (SpawnError::NoSuchService, Some(_)) => SpawnError::NeedsHardwareProtection,
            (e, _) => e,
        };
        return Err((e, startup));
    }
    let me = percpu::current_index();
    let target = core.unwrap_or_else(least_loaded_core);
    if !crate::cores::is_online(target) {
        return Err((SpawnError::NoSuchCore, startup));
    }
    let caller = caller_owner();
    if target != me {
        return remote::spawn(target, name, args, restarts, startup, caller, Protection::Type);
    }
    spawn_here(name, args, restarts, startup, caller)
}

/// The manifest of service `name` and what the policy grants it, if there is one and the kernel accepts it.
fn checked_manifest(name: &str) -> Result<(&'static Manifest, policy::Entry), SpawnError> {
    let manifest = manifest(name).ok_or(SpawnError::NoSuchService)?;
    manifest.check(&known_contracts()).map_err(SpawnError::BadManifest)?;
    let grant = policy::grant(manifest).map_err(SpawnError::BadManifest)?;
    Ok((manifest, grant))
}

/// The running core with the fewest SIPs, by this core's replica of the process table (ties: the lowest index).
fn least_loaded_core() -> u32 {
    let cores = crate::cores::cores().len().max(1);
    let load = replica::load_by_core(cores);
    crate::cores::online_cores().min_by_key(|c| (load.get(*c as usize).copied().unwrap_or(0), *c)).unwrap_or(0)
}

/// Hands `startup`'s channel end from `from` to `to` in the exchange records.
fn give_startup(startup: &Startup, from: channels::Owner, to: channels::Owner) {
    // SAFETY: the kernel is the trusted base.
    let trusted = unsafe { channels::trusted::Trusted::new() };
    channels::trusted::give(&trusted, startup.end(), from, to);
}

/// Starts service `name` on this core; `startup` (if any) is held by `holder` until then.
fn spawn_here(
    name: &str,
    args: &str,
    restarts: u32,
    startup: Option<Startup>,
    holder: channels::Owner,
) -> Result<SipId, (SpawnError, Option<Startup>)> {
    let _kernel = KernelAccount::enter();
    let (manifest, grant) = match checked_manifest(name) {
        Ok(checked) => checked,
        Err(e) => return Err((e, startup)),
    };
    // Its records take kernel heap, which may grow into the frames reserved for the kernel: refused first when
    // memory for SIPs is spent (an async SIP takes no arena or stack that would fail first).
    if !crate::memory::frames::room_for_a_sip() {
        return Err((SpawnError::OutOfMemory, startup));
    }
    // A thread SIP's heap is an arena of its own; an async SIP's, its blocks in this core's small heap.
    let memory = match manifest.entry {
        Entry::Thread(_) => Arena::new(grant.heap_quota, Use::Sip).map(SipMemory::Arena).ok(),
        Entry::Async(_) => small_heap::Owner::new(percpu::current_index() as usize, grant.heap_quota)
            .map(|owner| SipMemory::Small(owner, None))
            .ok(),
    };
    let Some(memory) = memory else { return Err((SpawnError::OutOfMemory, startup)) };
    let heap_word = match &memory {
        SipMemory::Arena(arena) => &**arena as *const Arena as usize,
        SipMemory::Small(owner, _) => &**owner as *const small_heap::Owner as usize | exec::SMALL_HEAP_TAG,
        SipMemory::User(_) => 0,
    };
    let id = NEXT_SIP_ID.fetch_add(1, Ordering::Relaxed);
    let owner = channels::Owner::sip(id);
    crate::ipc::exchange_heap::set_quota(owner, grant.exchange_quota);
    // The startup end becomes the child's before any of its code can run (the thread does not exist yet).
    if let Some(value) = &startup {
        give_startup(value, holder, owner);
    }
    // The record exists before the thread, so the thread always finds it (even if it ends at once); so does
    // every replica's entry, so its removal can never overtake it.
    let record = Sip {
        id,
        manifest,
        protection: Protection::Type,
        memory,
        threads: Vec::new(),
        restarts,
        waiters: Vec::new(),
        startup: startup.map(ManuallyDrop::new),
        ending: None,
        log: LogBudget::new(grant.log_lines_per_second),
    };
    table().lock().sips.insert(id, record);
    let entry = replica::Entry { core: percpu::current_index(), name: manifest.name };
    replica::publish(replica::Update::Added { id, entry });
    let args = String::from(args);
    let started = match manifest.entry {
        Entry::Thread(main) => sched::spawn_in(Account::Sip(id), heap_word, manifest.stack_size as u64, move || {
            sip_main(id, manifest.name, main, args)
        })
        .map(|tid| table().lock().sip_mut(id).map(|sip| sip.threads.push(tid)))
        .is_ok(),
        Entry::Async(main) => {
            let body = Box::pin(AsyncStart { entry: main, id, name: manifest.name, args, main: None });
            // Interrupts stay off until the task is recorded: the runner cannot poll it (and find it ended)
            // before its record knows it.
            x86_64::instructions::interrupts::without_interrupts(|| {
                crate::ipc::tasks::spawn_sip(id, heap_word, body)
                    .map(|task| {
                        if let Some(Sip { memory: SipMemory::Small(_, slot), .. }) = table().lock().sip_mut(id) {
                            *slot = Some(task);
                        }
                    })
                    .is_ok()
            })
        }
    };
    match started {
        true => Ok(SipId(id)),
        false => {
            let startup = table().lock().sips.remove(&id).and_then(|mut record| record.startup.take());
            replica::publish(replica::Update::Removed { id });
            let startup = startup.map(ManuallyDrop::into_inner);
            if let Some(value) = &startup {
                give_startup(value, owner, holder);
            }
            crate::ipc::exchange_heap::reclaim(owner);
            Err((SpawnError::OutOfMemory, startup))
        }
    }
}

/// Whether SIP `id` is alive somewhere (by this core's replica).
pub fn is_alive(id: u64) -> bool {
    replica::core_of(id).is_some()
}

/// The core SIP `id` runs on, if it is another than this one.
fn elsewhere(id: u64) -> Option<u32> {
    replica::core_of(id).filter(|core| *core != percpu::current_index())
}

/// First code of a SIP's first thread, in SIP mode (allocations go to its arena).
fn sip_main(id: u64, name: &'static str, main: fn(SipContext), kernel_args: String) {
    let args = String::from(kernel_args.as_str());
    drop(kernel_args);
    main(SipContext::new(&abi::RING0, SipId(id), name, args));
    end_current(EndReason::Exited(ExitStatus::Success))
}

/// An async SIP's task body as its runner polls it (on the SIP's account): the first poll makes the SIP's
/// context and calls its entry, in SIP mode (so the future, and everything in it, is in the SIP's small heap),
/// and every poll polls the future the entry returned. The body itself is the kernel's; it never drops the
/// SIP's future (nothing of the SIP's runs in kernel mode): the future is forgotten, and its memory reclaimed
/// with the SIP's blocks.
struct AsyncStart {
    entry: fn(SipContext) -> AsyncMain,
    id: u64,
    name: &'static str,
    /// The arguments, on the kernel heap until the first poll (empty afterwards: an empty `String` holds no
    /// memory).
    args: String,
    main: Option<AsyncMain>,
}

impl core::future::Future for AsyncStart {
    type Output = ();

    fn poll(self: core::pin::Pin<&mut Self>, cx: &mut core::task::Context<'_>) -> core::task::Poll<()> {
        let this = self.get_mut();
        // Every poll but the first is this test and a tail call: the first one's work is out of line, so this
        // needs no frame of its own (it cost the async round trip 44 instructions with one).
        match &mut this.main {
            Some(main) => main.as_mut().poll(cx),
            None => this.start().as_mut().poll(cx),
        }
    }
}

impl AsyncStart {
    /// The first poll's part: makes the SIP's context and calls its entry (in SIP mode: the future is the SIP's).
    #[cold]
    #[inline(never)]
    fn start(&mut self) -> &mut AsyncMain {
        let kernel_args = core::mem::take(&mut self.args);
        let args = String::from(kernel_args.as_str());
        drop(kernel_args);
        self.main.insert((self.entry)(SipContext::new(&abi::RING0, SipId(self.id), self.name, args)))
    }
}

impl Drop for AsyncStart {
    fn drop(&mut self) {
        core::mem::forget(self.main.take());
    }
}

/// Async SIP `id`'s future completed (its entry returned), seen by its runner: it ends as a thread SIP whose
/// entry returned.
fn async_exited(id: u64) {
    let _kernel = KernelAccount::enter();
    end(id, EndReason::Exited(ExitStatus::Success));
}

/// Ends the SIP the calling thread belongs to, for `reason` (unless it is already ending for another), and
/// this thread with it. Called on the SIP's own thread: from its exit, its panic, a CPU exception it caused.
pub fn end_current(reason: EndReason) -> ! {
    // Kernel mode for good: this thread runs only kernel code from here on (its guard is never dropped).
    core::mem::forget(KernelAccount::enter());
    match exec::current_sip() {
        Some(id) => {
            end(id, reason);
            leave(id);
        }
        None => panic!("end_current called on a kernel thread ({reason})"),
    }
    runner_ends_with_its_sip();
    sched::exit_current()
}

/// If the calling thread is a task runner that was polling an async SIP (its allocations went to a small heap:
/// the tagged word), it ends with that SIP; the core's standby runner takes over. One load for other threads.
fn runner_ends_with_its_sip() {
    if percpu::current().current_arena.load(Ordering::Relaxed) & exec::SMALL_HEAP_TAG != 0
        && let Some(me) = sched::current_id()
    {
        crate::ipc::tasks::runner_gone(me);
    }
}

/// What a doomed thread runs when it leaves kernel code or parks at a cut point (`exec::end_doomed`): its SIP
/// is ending, so it goes.
fn doomed_exit() -> ! {
    core::mem::forget(KernelAccount::enter());
    if let Some(id) = exec::current_sip() {
        leave(id);
    }
    runner_ends_with_its_sip();
    sched::exit_current()
}

/// Starts another thread of the calling SIP, running `entry(argument)` in SIP mode on a stack of the
/// manifest's size. The SIP ends when its first thread returns (like a process whose `main` returns), or when
/// any of its threads fails; another thread that returns ends alone.
pub fn start_thread(entry: fn(usize), argument: usize) -> Result<u64, SpawnError> {
    let _kernel = KernelAccount::enter();
    let id = exec::current_sip().ok_or(SpawnError::NotPermitted)?;
    let (stack, arena) = match table().lock().sip(id) {
        Some(sip) if sip.ending.is_some() => return Err(SpawnError::NoSuchService),
        Some(sip) if sip.threads.len() >= sip.manifest.threads => return Err(SpawnError::TooManyThreads),
        Some(Sip { memory: SipMemory::Arena(arena), manifest, .. }) => {
            (manifest.stack_size as u64, &**arena as *const Arena as usize)
        }
        // A ring-3 SIP starts threads through its own call (`THREAD_START`), never from ring 0.
        Some(_) => return Err(SpawnError::NotPermitted),
        None => return Err(SpawnError::NoSuchService),
    };
    // Interrupts stay off from the thread's creation to its record, so the new thread cannot run (and end)
    // before it is recorded as the SIP's. Only plain data (a function and a number) goes into the kernel's
    // closure: nothing of the SIP's is ever dropped in kernel mode.
    x86_64::instructions::interrupts::without_interrupts(|| {
        let tid = sched::spawn_in(Account::Sip(id), arena, stack, move || {
            entry(argument);
            end_thread();
        })
        .map_err(|_| SpawnError::OutOfMemory)?;
        if let Some(sip) = table().lock().sip_mut(id) {
            sip.threads.push(tid);
        }
        Ok(tid.0)
    })
}

/// Ends the calling thread of a SIP that returned from its entry; the SIP lives on in its other threads.
pub(super) fn end_thread() -> ! {
    core::mem::forget(KernelAccount::enter());
    if let Some(id) = exec::current_sip() {
        leave(id);
    }
    sched::exit_current()
}

/// The running thread of SIP `id` leaves it for good; if it was the SIP's last thread and the SIP is ending,
/// the SIP is reclaimed. (A thread that returns from a non-first entry leaves a live SIP.)
fn leave(id: u64) {
    let me = sched::current_id();
    let last = {
        let mut table = table().lock();
        let Some(sip) = table.sip_mut(id) else { return };
        sip.threads.retain(|t| Some(*t) != me);
        sip.threads.is_empty() && sip.ending.is_some()
    };
    if last {
        finish(id);
    }
}

/// Starts ending SIP `id` of this core for `reason` (the first reason wins): dooms its threads, removes those
/// that can go at once, and reclaims it if none is left but the caller's own (which then leaves by itself).
/// Never waits. Returns whether the SIP existed.
fn end(id: u64, reason: EndReason) -> bool {
    let me = sched::current_id();
    let (threads, task) = {
        let mut table = table().lock();
        let Some(sip) = table.sip_mut(id) else { return false };
        if sip.ending.is_none() {
            sip.ending = Some(reason);
        }
        (sip.threads.clone(), sip.memory.task())
    };
    let mut removed = Vec::new();
    for tid in threads.into_iter().filter(|t| Some(*t) != me) {
        if let Some(thread) = sched::doom(tid) {
            drop(thread); // frees its stack
            removed.push(tid);
        }
    }
    // An async SIP's task is never polled again; a runner that polls it right now (switched out inside the
    // poll) is, until it leaves it, a thread of the SIP: removed at once if it can be, doomed otherwise.
    if let Some(task) = task
        && let crate::ipc::tasks::Stopped::PolledBy(runner) = crate::ipc::tasks::stop(task)
        && Some(runner) != me
    {
        match sched::doom(runner) {
            Some(thread) => {
                drop(thread);
                crate::ipc::tasks::runner_gone(runner);
            }
            None => {
                if let Some(sip) = table().lock().sip_mut(id) {
                    sip.threads.push(runner);
                }
            }
        }
    }
    let empty = {
        let mut table = table().lock();
        let Some(sip) = table.sip_mut(id) else { return true };
        sip.threads.retain(|t| !removed.contains(t));
        sip.threads.is_empty()
    };
    if empty {
        finish(id);
    }
    true
}

/// Ends SIP `id` from another thread and waits until it is gone (its threads busy in kernel code finish that
/// first, which takes a bounded time).
pub fn kill(id: u64) -> Result<(), KillError> {
    let _kernel = KernelAccount::enter();
    if exec::current_sip() == Some(id) {
        end_current(EndReason::Killed);
    }
    if let Some(core) = elsewhere(id) {
        remote::kill(core, id)?;
        remote::wait(core, id);
        return Ok(());
    }
    if !end(id, EndReason::Killed) {
        return Err(KillError::NoSuchProcess);
    }
    wait(id);
    Ok(())
}

/// Starts ending SIP `id` of this core (a monitor thread answering another core's kill): never waits.
pub fn kill_here(id: u64) -> Result<(), KillError> {
    if end(id, EndReason::Killed) { Ok(()) } else { Err(KillError::NoSuchProcess) }
}

/// Blocks the calling thread until SIP `id` has ended; returns at once if it is not alive.
pub fn wait(id: u64) {
    let _kernel = KernelAccount::enter();
    if let Some(core) = elsewhere(id) {
        return remote::wait(core, id);
    }
    let Some(me) = sched::current_id() else { return };
    loop {
        match table().lock().sip_mut(id) {
            Some(sip) => sip.waiters.push(Waiter::Thread(me)),
            None => return,
        }
        // Waiting holds nothing of the kernel's: a kill of the waiter may end it right here.
        sched::block_current_cuttable();
    }
}

/// Whether SIP `id` has ended (or never was); if not, the task with wake token `token` (an async SIP's, asking
/// from its poll) is woken once when it does. A token is registered once however often it asks, so a task that
/// polls in a loop cannot grow the SIP's record. Asks the SIP's core if it is another (a bounded call to its
/// monitor, as `ps` makes).
pub fn wake_task_on_end(id: u64, token: u64) -> bool {
    let _kernel = KernelAccount::enter();
    match elsewhere(id) {
        Some(core) => remote::wake_task_on_end(core, id, token),
        None => wake_task_on_end_here(id, token),
    }
}

/// [`wake_task_on_end`] for a SIP of this core.
fn wake_task_on_end_here(id: u64, token: u64) -> bool {
    let mut table = table().lock();
    let Some(sip) = table.sip_mut(id) else { return true };
    if !sip.waiters.iter().any(|waiter| matches!(waiter, Waiter::Task(t) if *t == token)) {
        sip.waiters.push(Waiter::Task(token));
    }
    false
}

/// Wakes thread `who` once when SIP `id` ends (at once if it is not alive), without blocking the caller.
pub fn notify_on_end(id: u64, who: ThreadId) {
    watch(id, Waiter::Thread(who));
}

/// Tells `waiter` when SIP `id` of this core ends (at once if it is not alive).
fn watch(id: u64, waiter: Waiter) {
    let waiter = match table().lock().sip_mut(id) {
        Some(sip) => {
            sip.waiters.push(waiter);
            return;
        }
        None => waiter,
    };
    waiter.notify();
}

/// Reclaims SIP `id`, which is ending and has no thread left: its record, exchange blocks and endpoints (from
/// the ledger), its arena; then tells everyone who waits, and applies its restart policy.
fn finish(id: u64) {
    let Some(mut sip) = table().lock().sips.remove(&id) else { return };
    ring3::forget_handles(id);
    let owner = channels::Owner::sip(id);
    let reason = match sip.ending.take().unwrap_or(EndReason::Killed) {
        // An allocation failure shows up as a panic; the arena and the ledger know whether a quota was the cause.
        EndReason::Panicked(_) if sip.memory.quota_hit() => EndReason::QuotaExceeded,
        EndReason::Panicked(_) if crate::ipc::exchange_heap::quota_refused(owner) => EndReason::ExchangeQuotaExceeded,
        other => other,
    };
    // An untaken startup endpoint is the SIP's: the ledger closes its side below; the struct is never dropped.
    let _ = sip.startup.take();
    // So are the endpoints the kernel held for a ring-3 SIP: forgotten here, their sides closed below.
    if let SipMemory::User(user) = &mut sip.memory {
        user.abandon_handles();
    }
    crate::ipc::exchange_heap::reclaim(owner);
    let (name, restarts) = (sip.manifest.name, sip.restarts);
    let policy = sip.manifest.restart;
    let waiters = core::mem::take(&mut sip.waiters);
    let dropped_lines = sip.log.dropped;
    let protection = sip.protection;
    let Sip { memory, .. } = sip;
    match memory {
        SipMemory::Arena(arena) => drop(arena), // unmaps it
        SipMemory::User(user) => ring3::release(user),
        SipMemory::Small(owner, _) => drop(owner), // frees its blocks
    }

    if dropped_lines > 0 {
        log::info!("sip {name}#{id}: {dropped_lines} log lines beyond its rate were dropped");
    }
    match reason {
        EndReason::Exited(ExitStatus::Success) => log::debug!("sip {name}#{id} {reason}"),
        EndReason::Killed => log::info!("sip {name}#{id} {reason}"),
        _ => log::warn!("sip {name}#{id} {reason}"),
    }
    let failed = reason.is_failure();
    // The report is kept before anyone waiting hears of the end, so a waiter always finds it.
    if protection.is_ring3() {
        let mut table = table().lock();
        if table.ends.len() == ENDS_KEPT {
            table.ends.pop_front();
        }
        table.ends.push_back((id, reason));
    }
    // Every replica forgets it before anyone waiting hears of its end (the same lanes carry both, in order).
    replica::publish(replica::Update::Removed { id });
    name_registry::release_all_of(id);
    waiters.into_iter().for_each(Waiter::notify);
    if failed {
        schedule_restart(name, policy, restarts, protection);
    }
}

/// Applies the restart policy after a failure: a kernel thread waits out the backoff and spawns again, under the
/// protection the failed instance had (a ring-3 instance on this core, where its image and slots are).
fn schedule_restart(name: &'static str, policy: RestartPolicy, restarts: u32, protection: Protection) {
    let RestartPolicy::OnFailure { max_restarts, backoff_ms } = policy else { return };
    if restarts >= max_restarts {
        log::warn!("sip {name}: restart limit ({max_restarts}) reached, not restarting");
        return;
    }
    let delay_ms = backoff_ms.saturating_mul(1 << restarts.min(16));
    let result = sched::spawn(Account::Kernel, 16 * 1024, move || {
        sched::sleep(delay_ms.saturating_mul(1_000_000));
        let restarted = if protection.is_ring3() {
            ring3::spawn_named(name, "", protection, None, channels::Owner::KERNEL, restarts + 1)
        } else {
            spawn_with_restarts(name, "", None, restarts + 1, None)
        };
        match restarted {
            Ok(id) => log::info!("sip {name} restarted as #{id} (restart {} of {max_restarts})", restarts + 1),
            Err((e, _)) => log::warn!("sip {name}: restart failed: {e}"),
        }
    });
    if let Err(e) = result {
        log::warn!("sip {name}: cannot schedule its restart: {e:?}");
    }
}

/// Called by the panic handler when SIP code panicked: ends that SIP only.
pub fn on_panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _kernel = KernelAccount::enter();
    let mut message = String::new();
    if let Some(at) = info.location() {
        let _ = write!(message, "{}:{}: ", at.file(), at.line());
    }
    let _ = write!(message, "{}", info.message());
    // A SIP's panic message is its own text: keep the kernel's report to one bounded line.
    truncate_at_char(&mut message, sip_runtime::MAX_LOG_LINE);
    end_current(EndReason::Panicked(message))
}

/// Ends the running thread's SIP for a fault (the `fault` ending this layer installs for the layers below: a CPU
/// exception in SIP code, a broken rule of the exchange heap's records).
fn on_fault(description: String) -> ! {
    end_current(EndReason::Fault(description))
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let cut = (0..=max).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    &text[..cut]
}

/// Cuts `text` to at most `max` bytes, at a character boundary, saying so.
fn truncate_at_char(text: &mut String, max: usize) {
    let cut = prefix(text, max).len();
    if cut < text.len() {
        let dropped = text.len() - cut;
        text.truncate(cut);
        let _ = write!(text, "... ({dropped} more bytes)");
    }
}

/// A snapshot of one SIP for `ps`.
pub fn info(id: u64) -> Option<sip_runtime::ProcessInfo> {
    match elsewhere(id) {
        Some(core) => remote::query(core, id),
        None => info_here(id),
    }
}

/// A snapshot of SIP `id` of this core.
fn info_here(id: u64) -> Option<sip_runtime::ProcessInfo> {
    let table = table().lock();
    let sip = table.sip(id)?;
    let running = sip.threads.iter().any(|t| sched::is_runnable(*t))
        || sip.memory.task().is_some_and(crate::ipc::tasks::is_running);
    let owner = channels::Owner::sip(id);
    Some(sip_runtime::ProcessInfo {
        id: SipId(sip.id),
        name: sip_runtime::ShortName::new(sip.manifest.name),
        core: percpu::current().index,
        state: if running { sip_runtime::ProcessState::Running } else { sip_runtime::ProcessState::Blocked },
        heap_used: sip.memory.used(),
        heap_quota: sip.manifest.heap_quota,
        threads: sip.threads.len(),
        channels: crate::ipc::exchange_heap::channel_ends_of(owner),
        exchange_bytes: crate::ipc::exchange_heap::charged_to(owner).1,
        exchange_quota: sip.manifest.exchange_quota,
        protection: sip.protection,
    })
}

/// The id of the live SIP after `after`, on any core (by this core's replica of the process table).
pub fn next_after(after: Option<u64>) -> Option<u64> {
    replica::next_after(after).map(|(id, _)| id)
}

/// Takes the startup endpoint of the calling SIP (once).
pub fn take_startup() -> Option<Startup> {
    let id = exec::current_sip()?;
    table().lock().sip_mut(id)?.startup.take().map(ManuallyDrop::into_inner)
}

/// How ring-3 SIP `id` of this core exited, if it is among the last few that ended and it exited.
pub fn exit_status_of(id: u64) -> Option<ExitStatus> {
    match table().lock().ends.iter().rev().find(|(i, _)| *i == id) {
        Some((_, EndReason::Exited(status))) => Some(*status),
        _ => None,
    }
}

/// The start of ring-3 SIP `id`'s slot (its image), if it is a ring-3 SIP of this core.
pub fn with_user_slot(id: u64) -> Option<u64> {
    match &table().lock().sip(id)?.memory {
        SipMemory::User(user) => Some(user.image_start()),
        SipMemory::Arena(_) | SipMemory::Small(..) => None,
    }
}

/// How ring-3 SIP `id` of this core ended, if it is among the last few that did.
pub fn end_report(id: u64) -> Option<String> {
    table().lock().ends.iter().rev().find(|(i, _)| *i == id).map(|(_, reason)| alloc::format!("{reason}"))
}

/// Whether the calling SIP's policy grants `capability`.
pub fn caller_may(capability: Capability) -> bool {
    let Some(id) = exec::current_sip() else { return false };
    table().lock().sip(id).is_some_and(|sip| sip.manifest.capabilities.contains(&capability))
}

/// The manifest of live SIP `id` of this core.
pub fn manifest_of(id: u64) -> Option<&'static Manifest> {
    table().lock().sip(id).map(|s| s.manifest)
}

/// A SIP's log lines per second: a token bucket that refills continuously, as deep as one second's lines.
struct LogBudget {
    per_second: u32,
    tokens: u32,
    refilled_at: u64,
    /// Lines refused since the last report.
    dropped: u64,
}

impl LogBudget {
    fn new(per_second: u32) -> Self {
        Self { per_second, tokens: per_second, refilled_at: crate::time::uptime_nanos(), dropped: 0 }
    }

    /// Whether a line may be written now; if so, also how many were dropped before it (reported once).
    fn take(&mut self, now: u64) -> Option<u64> {
        let elapsed = now.saturating_sub(self.refilled_at);
        let earned = elapsed.saturating_mul(u64::from(self.per_second)) / 1_000_000_000;
        if earned > 0 {
            self.tokens = self.tokens.saturating_add(earned.min(u64::from(u32::MAX)) as u32).min(self.per_second);
            self.refilled_at = now;
        }
        if self.tokens == 0 {
            self.dropped += 1;
            return None;
        }
        self.tokens -= 1;
        Some(core::mem::take(&mut self.dropped))
    }
}

/// Whether the calling SIP may write a log line now (its rate); `Some(n)`: yes, and `n` lines were dropped
/// before it. Kernel code always may.
pub fn log_allowed() -> Option<u64> {
    let Some(id) = exec::current_sip() else { return Some(0) };
    let now = crate::time::uptime_nanos();
    table().lock().sip_mut(id).map_or(Some(0), |sip| sip.log.take(now))
}

crate::selftest! {
    /// A spawned SIP is listed with its manifest's figures, and a kill removes it and its memory.
    fn spawn_list_kill() {
        let frames_before = crate::memory::frames::stats();
        let id = spawn("fault", "spin", Some(percpu::current_index())).map_err(|e| alloc::format!("spawn failed: {e}"))?.0;
        let mut listed = false;
        let mut after = None;
        while let Some(next) = next_after(after) {
            listed |= next == id;
            after = Some(next);
        }
        crate::check!(listed, "pid {id} not listed by next_after");
        let listing = info(id).ok_or("no info for a live SIP")?;
        crate::check!(listing.name == "fault" && listing.heap_quota == 256 * 1024, "wrong info {listing:?}");
        sched::yield_now(); // let it run (and be preempted)
        kill(id).map_err(|e| alloc::format!("kill failed: {e}"))?;
        crate::check!(info(id).is_none(), "killed SIP still listed");
        crate::check!(kill(id) == Err(KillError::NoSuchProcess), "second kill not refused");
        sched::yield_now();
        let frames_after = crate::memory::frames::stats();
        crate::check!(frames_after.free + 8 >= frames_before.free, "frames {frames_before:?} -> {frames_after:?}");
        Ok(())
    }
}

crate::selftest! {
    /// The log budget allows a second's lines at once, then refills with time, and counts what it refused.
    fn log_budget_limits_the_rate() {
        let mut budget = LogBudget::new(10);
        let start = budget.refilled_at;
        let allowed = (0..25).filter(|_| budget.take(start).is_some()).count();
        crate::check!(allowed == 10, "{allowed} lines allowed at once, expected 10");
        crate::check!(budget.take(start + 500_000_000) == Some(15), "the refill did not report 15 dropped lines");
        Ok(())
    }
}
