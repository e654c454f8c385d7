//! Software-isolated processes: spawning from manifests, the per-core process table, ending and reclaiming.
//!
//! A SIP is a manifest (`sip-runtime`), a heap arena with a quota (`arena`), its threads (each with a guarded
//! stack), and — through the channel hooks — its exchange-heap blocks and endpoints. Every way a SIP can end
//! goes through [`end_current`] (its own thread: exit, panic, CPU exception, quota) or [`kill`] (another
//! thread), and both reclaim by ownership records: the arena is unmapped whole, threads and stacks are dropped
//! by the scheduler, exchange blocks and endpoints by their owner records. No destructor of the SIP's own
//! data ever needs to run, which is what makes reclaiming a SIP that died mid-operation possible without
//! unwinding.
//!
//! Invariants: SIP ids are never reused in a boot; a SIP's record is removed before its arena is dropped,
//! and its threads are gone before that; the table is per core (the multikernel issue replicates it).

pub mod abi;
pub mod arena;
pub mod name_registry;
pub mod names;
pub mod remote;
pub mod replica;
pub mod replicated_map;

use crate::exec::{self, KernelMode};
use crate::percpu;
use crate::sched::{self, Owner, ThreadId};
use crate::sync::IrqMutex;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use arena::Arena;
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};
use sip_runtime::{ExitStatus, KillError, MANIFESTS, Manifest, RestartPolicy, SipContext, SipId, SpawnError, Startup};

static NEXT_SIP_ID: AtomicU64 = AtomicU64::new(1);

/// One live SIP.
pub struct Sip {
    /// Identity.
    pub id: u64,
    /// What it is.
    pub manifest: &'static Manifest,
    arena: Box<Arena>,
    threads: Vec<ThreadId>,
    /// How many times this service was restarted to get this instance.
    restarts: u32,
    /// Who waits for it to end ([`wait`], [`notify_on_end`], waits from other cores).
    waiters: Vec<Waiter>,
    /// The value its parent handed it, until it takes it.
    startup: Option<Startup>,
}

/// Someone to tell when a SIP ends.
pub enum Waiter {
    /// A thread of this core: woken.
    Thread(ThreadId),
    /// A thread of another core: answered through its slot.
    Reply(alloc::sync::Arc<crate::ipc::intercore::Slot<()>>),
}

impl Waiter {
    fn notify(self) {
        match self {
            Waiter::Thread(id) => sched::wake(id),
            Waiter::Reply(slot) => slot.answer(()),
        }
    }
}

/// One core's table of the SIPs it runs.
pub struct Table {
    sips: BTreeMap<u64, Sip>,
}

impl Table {
    /// An empty table (usable in a `static` initialiser).
    pub const fn new() -> Self {
        Self { sips: BTreeMap::new() }
    }
}

fn table() -> &'static IrqMutex<Table> {
    &percpu::current().sips
}

/// Why a SIP ended.
#[derive(Debug)]
pub enum EndReason {
    /// Its entry returned or it called exit.
    Exited(ExitStatus),
    /// It panicked (message with location).
    Panicked(String),
    /// It took a CPU exception in its own code.
    Fault(String),
    /// An allocation failed because its heap quota was spent.
    QuotaExceeded,
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
            Self::Killed => f.write_str("was killed"),
        }
    }
}

/// Names of every contract the kernel knows (a manifest may only name these).
fn known_contracts() -> Vec<&'static str> {
    contracts::all().iter().map(|info| info.name).collect()
}

/// Finds a manifest by service name.
pub fn manifest(name: &str) -> Option<&'static Manifest> {
    MANIFESTS.iter().find(|m| m.name == name)
}

/// Starts service `name` on `core` (default: the least loaded). Nothing is left behind when it fails.
pub fn spawn(name: &str, args: &str, core: Option<u32>) -> Result<SipId, SpawnError> {
    spawn_with(name, args, core, None).map_err(|(e, _)| e)
}

/// Starts service `name` on `core` (default: the least loaded), handing it `startup`; on failure `startup`
/// comes back, still owned by the caller.
pub fn spawn_with(
    name: &str,
    args: &str,
    core: Option<u32>,
    startup: Option<Startup>,
) -> Result<SipId, (SpawnError, Option<Startup>)> {
    spawn_with_restarts(name, args, core, 0, startup)
}

fn spawn_with_restarts(
    name: &str,
    args: &str,
    core: Option<u32>,
    restarts: u32,
    startup: Option<Startup>,
) -> Result<SipId, (SpawnError, Option<Startup>)> {
    let _kernel = KernelMode::enter();
    // Refused before any message: these answers are the same on every core.
    if let Err(e) = checked_manifest(name) {
        return Err((e, startup));
    }
    let me = percpu::current_index();
    let target = core.unwrap_or_else(least_loaded_core);
    if !crate::smp::is_online(target) {
        return Err((SpawnError::NoSuchCore, startup));
    }
    if target != me {
        return remote::spawn(target, name, args, restarts, startup);
    }
    spawn_here(name, args, restarts, startup)
}

/// The manifest of service `name`, if there is one and the kernel accepts it.
fn checked_manifest(name: &str) -> Result<&'static Manifest, SpawnError> {
    let manifest = manifest(name).ok_or(SpawnError::NoSuchService)?;
    manifest.check(&known_contracts()).map_err(SpawnError::BadManifest)?;
    Ok(manifest)
}

/// The running core with the fewest SIPs, by this core's replica of the process table (ties: the lowest index).
fn least_loaded_core() -> u32 {
    let cores = crate::smp::cores().len().max(1);
    let load = replica::load_by_core(cores);
    crate::smp::online_cores().min_by_key(|c| (load.get(*c as usize).copied().unwrap_or(0), *c)).unwrap_or(0)
}

/// Starts service `name` on this core.
fn spawn_here(
    name: &str,
    args: &str,
    restarts: u32,
    startup: Option<Startup>,
) -> Result<SipId, (SpawnError, Option<Startup>)> {
    let _kernel = KernelMode::enter();
    let manifest = match checked_manifest(name) {
        Ok(manifest) => manifest,
        Err(e) => return Err((e, startup)),
    };
    let Ok(arena) = Arena::new(manifest.heap_quota) else { return Err((SpawnError::OutOfMemory, startup)) };
    let arena_addr = &*arena as *const Arena as usize;
    let id = NEXT_SIP_ID.fetch_add(1, Ordering::Relaxed);
    // The startup value becomes the child's before any of its code can run (the thread does not exist yet).
    let caller = exec::current_sip().map_or(channels::Owner::KERNEL, channels::Owner);
    if let Some(value) = &startup {
        value.transfer(channels::Owner(id));
    }
    // The record exists before the thread, so the thread always finds it (even if it ends at once); so does
    // every replica's entry, so its removal can never overtake it.
    let record = Sip { id, manifest, arena, threads: Vec::new(), restarts, waiters: Vec::new(), startup };
    table().lock().sips.insert(id, record);
    let entry = replica::Entry { core: percpu::current_index(), name: manifest.name };
    replica::publish(replica::Update::Added { id, entry });
    let args = String::from(args);
    let spawned =
        sched::spawn_in(Owner::Sip(id), arena_addr, manifest.stack_size as u64, move || sip_main(id, manifest, args));
    match spawned {
        Ok(tid) => {
            if let Some(sip) = table().lock().sips.get_mut(&id) {
                sip.threads.push(tid);
            }
            Ok(SipId(id))
        }
        Err(_) => {
            let startup = table().lock().sips.remove(&id).and_then(|mut record| record.startup.take());
            replica::publish(replica::Update::Removed { id });
            if let Some(value) = &startup {
                value.transfer(caller);
            }
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
fn sip_main(id: u64, manifest: &'static Manifest, kernel_args: String) {
    let args = String::from(kernel_args.as_str());
    drop(kernel_args);
    let context = SipContext::new(&abi::RING0, SipId(id), manifest.name, args);
    (manifest.entry)(context);
    end_current(EndReason::Exited(ExitStatus::Success))
}

/// Ends the SIP the calling thread belongs to, for `reason`, and this thread with it. Called on the SIP's own
/// thread: from its exit, its panic, a CPU exception it caused.
pub fn end_current(reason: EndReason) -> ! {
    // Kernel mode for good: this thread runs only kernel code from here on (its guard is never dropped).
    core::mem::forget(KernelMode::enter());
    match exec::current_sip() {
        Some(id) => reclaim(id, reason, sched::current_id()),
        None => panic!("end_current called on a kernel thread ({reason})"),
    }
    sched::exit_current()
}

/// Starts another thread of the calling SIP, running `entry` in SIP mode on a stack of the manifest's size.
/// The SIP ends when its first thread returns (like a process whose `main` returns), or when any of its threads
/// fails; another thread that returns ends alone.
pub fn start_thread(entry: Box<dyn FnOnce() + Send>) -> Result<u64, SpawnError> {
    let _kernel = KernelMode::enter();
    let id = exec::current_sip().ok_or(SpawnError::NotPermitted)?;
    let (stack, arena) = match table().lock().sips.get(&id) {
        Some(sip) => (sip.manifest.stack_size as u64, &*sip.arena as *const Arena as usize),
        None => return Err(SpawnError::NoSuchService),
    };
    // Interrupts stay off from the thread's creation to its record, so the new thread cannot run (and end)
    // before it is recorded as the SIP's.
    x86_64::instructions::interrupts::without_interrupts(|| {
        let tid = sched::spawn_in(Owner::Sip(id), arena, stack, move || {
            entry();
            end_thread();
        })
        .map_err(|_| SpawnError::OutOfMemory)?;
        if let Some(sip) = table().lock().sips.get_mut(&id) {
            sip.threads.push(tid);
        }
        Ok(tid.0)
    })
}

/// Ends the calling thread of a SIP that returned from its entry; the SIP lives on in its other threads.
fn end_thread() -> ! {
    core::mem::forget(KernelMode::enter());
    if let (Some(id), Some(me)) = (exec::current_sip(), sched::current_id())
        && let Some(sip) = table().lock().sips.get_mut(&id)
    {
        sip.threads.retain(|t| *t != me);
    }
    sched::exit_current()
}

/// Ends SIP `id` from another thread.
pub fn kill(id: u64) -> Result<(), KillError> {
    let _kernel = KernelMode::enter();
    if exec::current_sip() == Some(id) {
        end_current(EndReason::Killed);
    }
    if let Some(core) = elsewhere(id) {
        return remote::kill(core, id);
    }
    // Never cut a thread short inside kernel code or a channel operation (a message between its owner records and
    // the ring would be lost): let it run out of the section first. Such sections are short and never block.
    loop {
        let busy = match table().lock().sips.get(&id) {
            None => return Err(KillError::NoSuchProcess),
            Some(sip) => sip.threads.iter().any(|t| sched::is_preempted_in_kernel(*t)),
        };
        if !busy {
            break;
        }
        sched::yield_now();
    }
    reclaim(id, EndReason::Killed, None);
    Ok(())
}

/// Blocks the calling (kernel) thread until SIP `id` has ended; returns at once if it is not alive.
pub fn wait(id: u64) {
    let _kernel = KernelMode::enter();
    if let Some(core) = elsewhere(id) {
        return remote::wait(core, id);
    }
    let Some(me) = sched::current_id() else { return };
    loop {
        match table().lock().sips.get_mut(&id) {
            Some(sip) => sip.waiters.push(Waiter::Thread(me)),
            None => return,
        }
        sched::block_current();
    }
}

/// Wakes thread `who` once when SIP `id` ends (at once if it is not alive), without blocking the caller.
pub fn notify_on_end(id: u64, who: ThreadId) {
    watch(id, Waiter::Thread(who));
}

/// Tells `waiter` when SIP `id` of this core ends (at once if it is not alive).
fn watch(id: u64, waiter: Waiter) {
    let waiter = match table().lock().sips.get_mut(&id) {
        Some(sip) => {
            sip.waiters.push(waiter);
            return;
        }
        None => waiter,
    };
    waiter.notify();
}

/// Removes SIP `id` and everything it owns, except the running thread `running` (which exits right after).
fn reclaim(id: u64, reason: EndReason, running: Option<ThreadId>) {
    let Some(mut sip) = table().lock().sips.remove(&id) else { return };
    let reason = match reason {
        // An allocation failure shows up as a panic; the arena knows whether the quota was the cause.
        EndReason::Panicked(_) if sip.arena.quota_hit() => EndReason::QuotaExceeded,
        other => other,
    };
    for tid in sip.threads.iter().filter(|t| Some(**t) != running) {
        drop(sched::remove_thread(*tid));
    }
    // An untaken startup value's blocks are the SIP's and go with the rest below: dropping it too would free
    // them twice.
    if let Some(startup) = sip.startup.take() {
        startup.forget_reclaimed();
    }
    crate::ipc::exchange_heap::reclaim(channels::Owner(id));
    crate::ipc::exchange_heap::close_endpoints_of(channels::Owner(id));
    let (name, restarts) = (sip.manifest.name, sip.restarts);
    let policy = sip.manifest.restart;
    let waiters = core::mem::take(&mut sip.waiters);
    drop(sip); // unmaps the arena
    // Every replica forgets it before anyone waiting hears of its end (the same lanes carry both, in order).
    replica::publish(replica::Update::Removed { id });
    name_registry::release_all_of(id);
    waiters.into_iter().for_each(Waiter::notify);
    match reason {
        EndReason::Exited(ExitStatus::Success) => log::debug!("sip {name}#{id} {reason}"),
        EndReason::Killed => log::info!("sip {name}#{id} {reason}"),
        _ => log::warn!("sip {name}#{id} {reason}"),
    }
    if reason.is_failure() {
        schedule_restart(name, policy, restarts);
    }
}

/// Applies the restart policy after a failure: a kernel thread waits out the backoff and spawns again.
fn schedule_restart(name: &'static str, policy: RestartPolicy, restarts: u32) {
    let RestartPolicy::OnFailure { max_restarts, backoff_ms } = policy else { return };
    if restarts >= max_restarts {
        log::warn!("sip {name}: restart limit ({max_restarts}) reached, not restarting");
        return;
    }
    let delay_ms = backoff_ms.saturating_mul(1 << restarts.min(16));
    let result = sched::spawn(Owner::Kernel, 16 * 1024, move || {
        sched::sleep(delay_ms.saturating_mul(1_000_000));
        match spawn_with_restarts(name, "", None, restarts + 1, None) {
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
    let _kernel = KernelMode::enter();
    let mut message = String::new();
    if let Some(at) = info.location() {
        let _ = write!(message, "{}:{}: ", at.file(), at.line());
    }
    let _ = write!(message, "{}", info.message());
    end_current(EndReason::Panicked(message))
}

/// Called by a CPU exception handler when SIP code faulted: ends that SIP only.
pub fn on_exception(description: String) -> ! {
    end_current(EndReason::Fault(description))
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
    let sip = table.sips.get(&id)?;
    let running = sip.threads.iter().any(|t| sched::is_runnable(*t));
    Some(sip_runtime::ProcessInfo {
        id: SipId(sip.id),
        name: sip.manifest.name,
        core: percpu::current().index,
        state: if running { sip_runtime::ProcessState::Running } else { sip_runtime::ProcessState::Blocked },
        heap_used: sip.arena.used(),
        heap_quota: sip.manifest.heap_quota,
        threads: sip.threads.len(),
        channels: crate::ipc::exchange_heap::channel_ends_of(channels::Owner(id)),
        exchange_bytes: crate::ipc::exchange_heap::owned_by(channels::Owner(id)).1,
    })
}

/// The id of the live SIP after `after`, on any core (by this core's replica of the process table).
pub fn next_after(after: Option<u64>) -> Option<u64> {
    replica::next_after(after).map(|(id, _)| id)
}

/// Takes the startup value of the calling SIP (once).
pub fn take_startup() -> Option<Startup> {
    let id = exec::current_sip()?;
    table().lock().sips.get_mut(&id)?.startup.take()
}

/// The manifest of live SIP `id`.
pub fn manifest_of(id: u64) -> Option<&'static Manifest> {
    table().lock().sips.get(&id).map(|s| s.manifest)
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
