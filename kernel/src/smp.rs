//! Application processors: starting every enabled core of the ACPI MADT, each as its own kernel instance, and
//! stopping them again.
//!
//! The boot core (BSP) starts the others one at a time ([`start_application_processors`]): it builds the AP's
//! per-CPU record, descriptor tables, IST stacks and boot stack on the heap, writes them into the trampoline
//! (`arch::smp_trampoline`), sends INIT, STARTUP, STARTUP through its local APIC, and waits for the AP to report
//! itself online. A core that does not within [`START_TIMEOUT_MS`] is reported, sent INIT again (which parks it
//! in wait-for-STARTUP, so it cannot wake up later on the next core's trampoline parameters) and left out.
//!
//! Each AP ([`ap_entry`]) loads its own GDT/TSS and IDT, enables its local APIC and starts its timer with the
//! boot core's calibration (the APIC timers of one machine share a clock; measuring again would cost 10 ms of
//! PIT time per core and serialise the cores on the one PIT), creates its scheduler (boot thread + idle
//! thread), reports online, and turns its boot thread into the core's *monitor*: a kernel thread that sleeps
//! until a job arrives in the core's one-slot mailbox ([`run_on`], used by the self-tests to run per-core tests
//! on every core). When nothing is ready the idle thread halts until the timer tick or an IPI.
//!
//! Not here yet (later parts of the multikernel issue): SIPs on application processors (spawn names them with
//! `SpawnError::NoSuchCore`), inter-core message queues, TLB shootdowns. The mailbox is a synchronous
//! diagnostic call, not the inter-core messaging layer. Device interrupts stay routed to the boot core.
//!
//! Stopping: [`stop_other_cores`] (shutdown) sends every other online core the STOP IPI; its handler runs with
//! interrupts off, so the core stops holding no interrupt-safe lock, and halts. A core that does not confirm in
//! time gets an NMI. [`halt_other_cores_now`] (panic) sends NMIs straight away: the other cores may be spinning
//! with interrupts off on a lock the panicking core holds.
//!
//! Invariants: a core's state only moves forward (`NotStarted` → `Starting` → `Online`/`Failed` → `Stopped`);
//! only the boot core writes the trampoline; the core table is written once, before any AP starts.

use crate::arch::{apic, cpu, smp_trampoline};
use crate::interrupts::{self, APIC_ERROR_VECTOR, APIC_SPURIOUS_VECTOR, CALL_VECTOR, STOP_VECTOR, TIMER_VECTOR};
use crate::percpu::{self, PerCpu};
use crate::sync::IrqMutex;
use crate::{memory, sched, time};
use alloc::string::String;
use alloc::vec::Vec;
use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use x86_64::structures::paging::{Page, PageTableFlags as Flags, PhysFrame, Size4KiB};
use x86_64::{PhysAddr, VirtAddr};

/// How long an AP may take from the first STARTUP IPI to reporting online. Measured here: 0.2-6 ms under TCG
/// (plus the 10 ms INIT delay); `boot-facts.md` saw 40-50 ms with a slower throw-away kernel. The host is shared
/// with other work and runs up to 8 vCPUs on 2 cores, and a healthy core wrongly left out costs more than
/// waiting longer for a dead one.
pub const START_TIMEOUT_MS: u64 = 500;
/// The INIT-to-STARTUP delay of the MP specification.
const INIT_DELAY_NANOS: u64 = 10_000_000;
/// The STARTUP-to-STARTUP delay of the MP specification.
const STARTUP_DELAY_NANOS: u64 = 200_000;
/// Boot stack of an AP's first thread (which becomes its monitor thread).
const AP_STACK_BYTES: u64 = 64 * 1024;
/// How long [`stop_other_cores`] waits for cores to confirm before using NMIs.
const STOP_TIMEOUT_NANOS: u64 = 100_000_000;
/// How long a [`run_on`] job may take.
const CALL_TIMEOUT_NANOS: u64 = 10_000_000_000;

/// Where a core is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CoreState {
    /// Not started (yet, or left out before starting).
    NotStarted = 0,
    /// STARTUP sent, not yet online.
    Starting = 1,
    /// Running its kernel instance.
    Online = 2,
    /// Did not start (or could not set itself up); left out.
    Failed = 3,
    /// Stopped by shutdown or a panic.
    Stopped = 4,
}

impl CoreState {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Starting,
            2 => Self::Online,
            3 => Self::Failed,
            4 => Self::Stopped,
            _ => Self::NotStarted,
        }
    }
}

/// A job for another core's monitor thread.
type Job = fn() -> Result<(), String>;

enum Mail {
    Empty,
    Posted(Job),
    Done(Result<(), String>),
}

/// One core of the MADT, by dense index (0 = the boot core, then the others in MADT order).
pub struct Core {
    /// Dense index.
    pub index: u32,
    /// Local APIC ID.
    pub apic_id: u32,
    /// ACPI processor UID.
    pub acpi_id: u32,
    state: AtomicU8,
    /// Thread id of the core's monitor thread (0 before it is online).
    monitor: AtomicU64,
    mailbox: IrqMutex<Mail>,
}

impl Core {
    /// Its current state.
    pub fn state(&self) -> CoreState {
        CoreState::from_u8(self.state.load(Ordering::Acquire))
    }

    fn set_state(&self, state: CoreState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// Its per-CPU record, once built.
    pub fn record(&self) -> Option<&'static PerCpu> {
        percpu::by_index(self.index)
    }
}

static CORES: spin::Once<Vec<Core>> = spin::Once::new();
/// Index + 1 of the core that must panic after coming online (test hook `opt/plurality/panic-on-cpu`), or 0.
static PANIC_ON_CPU: AtomicU64 = AtomicU64::new(0);
/// Index + 1 of the core that must halt before reporting online (test hook `opt/plurality/stall-cpu`), or 0.
static STALL_CPU: AtomicU64 = AtomicU64::new(0);
/// How long after coming online that core panics: by then the boot core is at the console prompt.
const INJECTED_PANIC_DELAY_NANOS: u64 = 300_000_000;
/// Set when the machine stops: NMIs are then requests to halt, not faults.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Every core the MADT names usable, by dense index (only the boot core before [`start_application_processors`]).
pub fn cores() -> &'static [Core] {
    CORES.get().map_or(&[], Vec::as_slice)
}

/// Why no application processor can be started at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmpError {
    /// The trampoline page is not usable RAM in the boot memory map.
    TrampolinePageUnusable,
    /// The trampoline page could not be identity-mapped.
    Map(#[allow(dead_code, reason = "shown through Debug in the boot log")] memory::paging::MapError),
    /// The trampoline does not fit, or the page tables are out of its reach.
    Trampoline(#[allow(dead_code, reason = "shown through Debug in the boot log")] smp_trampoline::TrampolineError),
}

/// Why one core did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartError {
    TooManyCores,
    Record(#[allow(dead_code, reason = "shown through Debug in the report")] percpu::ApRecordError),
    Stack(#[allow(dead_code, reason = "shown through Debug in the report")] sched::stack::StackError),
    Trampoline(#[allow(dead_code, reason = "shown through Debug in the report")] smp_trampoline::TrampolineError),
    Ipi(#[allow(dead_code, reason = "shown through Debug in the report")] apic::IpiError),
    NoStartupResponse,
    Timeout,
    SetupFailed,
}

/// Builds the core table from the MADT. Call on the boot core after ACPI, before any other use of this module.
pub fn init(platform: &crate::platform::acpi::Platform) {
    let me = percpu::current();
    for (name, hook, what) in [
        ("opt/plurality/panic-on-cpu", &PANIC_ON_CPU, "panic after it comes online"),
        ("opt/plurality/stall-cpu", &STALL_CPU, "halt before it reports online"),
    ] {
        if let Some(index) = crate::platform::fw_cfg::core_index(name).filter(|i| *i != 0) {
            log::warn!("test hook: cpu {index} will {what}");
            hook.store(u64::from(index) + 1, Ordering::Relaxed);
        }
    }
    CORES.call_once(|| {
        let boot = platform.usable_processors().find(|p| p.apic_id == me.apic_id);
        let others = platform.usable_processors().filter(|p| p.apic_id != me.apic_id);
        let mut cores = Vec::new();
        let mut push = |apic_id, acpi_id, state: CoreState| {
            let index = cores.len() as u32;
            cores.push(Core {
                index,
                apic_id,
                acpi_id,
                state: AtomicU8::new(state as u8),
                monitor: AtomicU64::new(0),
                mailbox: IrqMutex::new(Mail::Empty),
            });
        };
        push(me.apic_id, boot.map_or(0, |p| p.acpi_id), CoreState::Online);
        for p in others {
            push(p.apic_id, p.acpi_id, CoreState::NotStarted);
        }
        cores
    });
    crate::ipc::intercore::init(cores().len());
}

/// Starts every other usable core, one at a time; reports each that does not start and carries on.
/// Returns how many cores run (the boot core included).
pub fn start_application_processors(regions: &MemoryRegions) -> Result<usize, SmpError> {
    let cores = cores();
    if cores.len() <= 1 {
        return Ok(cores.len().max(1));
    }
    let page = smp_trampoline::PAGE;
    let usable = regions.iter().any(|r| r.kind == MemoryRegionKind::Usable && r.start <= page && page + 4096 <= r.end);
    if !usable {
        return Err(SmpError::TrampolinePageUnusable);
    }
    let window = memory::phys_to_virt(PhysAddr::new(page)).as_mut_ptr::<u8>();
    // SAFETY: `window` maps physical PAGE, usable RAM below 1 MiB that the frame allocator never hands out, so
    // nothing else uses it; this is the only trampoline.
    let mut trampoline = unsafe { smp_trampoline::Trampoline::install(window) }.map_err(SmpError::Trampoline)?;
    let identity = Page::<Size4KiB>::containing_address(VirtAddr::new(page));
    let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(page));
    // Writable only for the APs' "started" byte; not global, so a CR3 reload drops it from every TLB.
    memory::paging::map(identity, frame, Flags::WRITABLE).map_err(SmpError::Map)?;

    for core in &cores[1..] {
        match start_one(core, &mut trampoline) {
            Ok(nanos) => log::info!(
                "cpu {} (APIC id {}) online {}.{:03} ms after STARTUP",
                core.index,
                core.apic_id,
                nanos / 1_000_000,
                (nanos / 1000) % 1000
            ),
            Err(e) => {
                core.set_state(CoreState::Failed);
                log::error!(
                    "cpu {} (APIC id {}) did not start ({e:?}); carrying on without it",
                    core.index,
                    core.apic_id
                );
            }
        }
    }
    // The APs are past the trampoline: the lower half is empty again.
    if let Err(e) = memory::paging::unmap(identity) {
        log::warn!("cannot unmap the AP trampoline page: {e:?}");
    }
    Ok(cores.iter().filter(|c| c.state() == CoreState::Online).count())
}

/// Starts one AP; returns the time from its first STARTUP IPI to its report.
fn start_one(core: &Core, trampoline: &mut smp_trampoline::Trampoline) -> Result<u64, StartError> {
    if core.index as usize >= percpu::MAX_CPUS {
        return Err(StartError::TooManyCores);
    }
    if core.apic_id > apic::MAX_XAPIC_ID {
        return Err(StartError::Ipi(apic::IpiError::BadDestination(core.apic_id)));
    }
    let record = percpu::new_ap(core.index, core.apic_id).map_err(StartError::Record)?;
    // The boot stack stays mapped for good: its thread becomes the core's monitor, which never exits.
    let stack =
        sched::stack::Stack::new(AP_STACK_BYTES, crate::memory::frames::Use::Kernel).map_err(StartError::Stack)?;
    let stack_top = stack.top();
    core::mem::forget(stack);
    let (level_4, _) = x86_64::registers::control::Cr3::read();
    trampoline
        .prepare(smp_trampoline::Parameters {
            cr3: level_4.start_address().as_u64(),
            stack_top,
            entry: ap_entry as *const () as u64,
            percpu: record as *const PerCpu as u64,
        })
        .map_err(StartError::Trampoline)?;

    core.set_state(CoreState::Starting);
    apic::send_ipi(core.apic_id, apic::Ipi::Init).map_err(StartError::Ipi)?;
    spin_for(INIT_DELAY_NANOS);
    let startup_at = time::uptime_nanos();
    apic::send_ipi(core.apic_id, apic::Ipi::Startup(smp_trampoline::STARTUP_VECTOR)).map_err(StartError::Ipi)?;
    spin_for(STARTUP_DELAY_NANOS);
    if !trampoline.started() {
        // The MP specification's second STARTUP; ignored by a core that already left wait-for-STARTUP.
        apic::send_ipi(core.apic_id, apic::Ipi::Startup(smp_trampoline::STARTUP_VECTOR)).map_err(StartError::Ipi)?;
    }
    let deadline = startup_at + START_TIMEOUT_MS * 1_000_000;
    loop {
        match core.state() {
            CoreState::Online => return Ok(time::uptime_nanos() - startup_at),
            CoreState::Failed => return Err(StartError::SetupFailed),
            _ => {}
        }
        if time::uptime_nanos() > deadline {
            // Park it for good, so it cannot run on the next core's trampoline parameters later.
            let _ = apic::send_ipi(core.apic_id, apic::Ipi::Init);
            return Err(if trampoline.started() { StartError::Timeout } else { StartError::NoStartupResponse });
        }
        core::hint::spin_loop();
    }
}

fn spin_for(nanos: u64) {
    let end = time::uptime_nanos() + nanos;
    while time::uptime_nanos() < end {
        core::hint::spin_loop();
    }
}

/// Where an application processor enters Rust, called by the trampoline on its boot stack with GS pointing at
/// its record and interrupts off.
extern "sysv64" fn ap_entry(record: u64) -> ! {
    // SAFETY: the boot core passed the address of this AP's leaked (hence 'static) record.
    let cpu: &'static PerCpu = unsafe { &*(record as *const PerCpu) };
    // SAFETY: first thing on this AP, once, interrupts off (the trampoline ran `cli`); the record was made for it.
    unsafe { percpu::enter_ap(cpu) };
    interrupts::load_own();
    apic::init_this_core(APIC_SPURIOUS_VECTOR, APIC_ERROR_VECTOR);
    time::start_tick(TIMER_VECTOR);
    let Some(core) = cores().get(cpu.index as usize) else { cpu::halt_forever() };
    if STALL_CPU.load(Ordering::Relaxed) == u64::from(core.index) + 1 {
        cpu::halt_forever();
    }
    if let Err(e) = sched::init_this_core() {
        log::error!("cpu {}: cannot start its scheduler: {e:?}", cpu.index);
        core.set_state(CoreState::Failed);
        cpu::halt_forever();
    }
    core.monitor.store(sched::current_id().map_or(0, |t| t.0), Ordering::Release);
    core.set_state(CoreState::Online);
    x86_64::instructions::interrupts::enable();
    if PANIC_ON_CPU.load(Ordering::Relaxed) == u64::from(core.index) + 1 {
        sched::sleep(INJECTED_PANIC_DELAY_NANOS);
        panic!("deliberate panic on cpu {} (test hook opt/plurality/panic-on-cpu)", core.index);
    }
    monitor(core)
}

/// A core's monitor thread: the kernel instance's message loop. It answers requests from other cores
/// (`ipc::intercore`, handled by `sip::remote`) and runs jobs posted to its mailbox ([`run_on`]); it sleeps
/// otherwise, woken by the CALL IPI. It never waits for another core (`ipc::intercore`'s invariant).
fn monitor(core: &'static Core) -> ! {
    let mut turn = 0u32;
    loop {
        let job = match *core.mailbox.lock() {
            Mail::Posted(job) => Some(job),
            _ => None,
        };
        if let Some(job) = job {
            let result = job();
            *core.mailbox.lock() = Mail::Done(result);
            continue;
        }
        // Start from a different sending core each time, so one busy core cannot starve the others.
        turn = turn.wrapping_add(1);
        match crate::ipc::intercore::next_request(turn) {
            Some(request) => crate::sip::remote::handle(request),
            // Requests still waiting for room in a full lane: look again shortly (their receivers are draining).
            None if crate::ipc::intercore::flush_backlogs() => sched::sleep(BACKLOG_RETRY_NANOS),
            // A wake that arrives between the checks and the park is kept (token semantics): nothing is missed.
            None => sched::block_current(),
        }
    }
}

/// How long a monitor waits before trying again to move backlogged requests into full lanes.
const BACKLOG_RETRY_NANOS: u64 = 100_000;

/// Wakes this core's monitor thread (a request joined a backlog, or a job was posted).
pub fn wake_monitor() {
    let me = percpu::current_index();
    if let Some(id) = cores().get(me as usize).map(|c| c.monitor.load(Ordering::Acquire)).filter(|id| *id != 0) {
        sched::wake(sched::ThreadId(id));
    }
}

/// Starts the boot core's monitor thread (application processors turn their boot thread into theirs).
pub fn start_boot_core_monitor() {
    let Some(core) = cores().first() else { return };
    match sched::spawn(sched::Owner::Kernel, AP_STACK_BYTES, move || monitor(core)) {
        Ok(id) => core.monitor.store(id.0, Ordering::Release),
        Err(e) => log::error!("cpu 0: cannot start its monitor thread ({e:?}): other cores cannot reach it"),
    }
}

/// The CALL IPI on this core: apply the wake-ups other cores sent, and wake the monitor thread if a request or
/// a job waits for it.
pub fn on_call_interrupt() {
    let requests = crate::ipc::intercore::drain_wakes();
    let me = percpu::current_index();
    let Some(core) = cores().get(me as usize) else { return };
    let posted = matches!(*core.mailbox.lock(), Mail::Posted(_));
    let monitor = core.monitor.load(Ordering::Acquire);
    if (requests || posted) && monitor != 0 {
        sched::wake(sched::ThreadId(monitor));
    }
}

/// Asks every other running core to start its system services (its name service), once all cores are up:
/// started earlier, a core's first SIPs would be announced to a process table that later cores never saw.
pub fn start_services_on_other_cores() {
    let me = percpu::current_index();
    for core in online_cores().filter(|c| *c != me) {
        crate::ipc::intercore::send(core, crate::ipc::intercore::Request::StartServices);
    }
}

/// Whether core `index` runs its kernel instance.
pub fn is_online(index: u32) -> bool {
    cores().get(index as usize).is_some_and(|c| c.state() == CoreState::Online)
}

/// The indices of the cores that run.
pub fn online_cores() -> impl Iterator<Item = u32> {
    cores().iter().filter(|c| c.state() == CoreState::Online).map(|c| c.index)
}

/// Why [`run_on`] did not run the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// No such core, or it is not online.
    NotOnline,
    /// Its mailbox holds another job.
    Busy,
    /// The IPI could not be sent.
    Ipi(#[allow(dead_code, reason = "shown through Debug in reports")] apic::IpiError),
    /// The job did not finish in time (it may still finish; the mailbox stays busy until then).
    Timeout,
}

/// Runs `job` on the monitor thread of core `index` and waits (sleeping) for its result. On the calling core
/// itself the job runs directly.
pub fn run_on(index: u32, job: Job) -> Result<Result<(), String>, CallError> {
    if index == percpu::current_index() {
        return Ok(job());
    }
    let core = cores().get(index as usize).filter(|c| c.state() == CoreState::Online).ok_or(CallError::NotOnline)?;
    {
        let mut mail = core.mailbox.lock();
        if !matches!(*mail, Mail::Empty) {
            return Err(CallError::Busy);
        }
        *mail = Mail::Posted(job);
    }
    if let Err(e) = apic::send_ipi(core.apic_id, apic::Ipi::Fixed(CALL_VECTOR)) {
        *core.mailbox.lock() = Mail::Empty;
        return Err(CallError::Ipi(e));
    }
    let deadline = time::uptime_nanos() + CALL_TIMEOUT_NANOS;
    loop {
        {
            let mut mail = core.mailbox.lock();
            if matches!(*mail, Mail::Done(_))
                && let Mail::Done(result) = core::mem::replace(&mut *mail, Mail::Empty)
            {
                return Ok(result);
            }
        }
        if time::uptime_nanos() > deadline {
            return Err(CallError::Timeout);
        }
        sched::sleep(1_000_000);
    }
}

/// Whether the machine is being stopped (then an NMI means "halt", not a fault).
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::Acquire)
}

/// Stops the calling core for good, recording it. Called by the STOP IPI and by the NMI while stopping.
pub fn park_this_core() -> ! {
    x86_64::instructions::interrupts::disable();
    if let Some(core) = cores().get(percpu::current_index() as usize) {
        core.set_state(CoreState::Stopped);
    }
    cpu::halt_forever()
}

fn others_online() -> impl Iterator<Item = &'static Core> {
    let me = percpu::current_index();
    cores().iter().filter(move |c| c.index != me && c.state() == CoreState::Online)
}

/// Sends INIT to every other core still starting (a panic or shutdown during bring-up): INIT parks a core
/// safely in any mode, where an NMI could hit it in real mode without an IDT and reset the machine.
fn park_starting_cores() {
    let me = percpu::current_index();
    for core in cores().iter().filter(|c| c.index != me && c.state() == CoreState::Starting) {
        let _ = apic::send_ipi(core.apic_id, apic::Ipi::Init);
        core.set_state(CoreState::Failed);
    }
}

fn wait_stopped(nanos: u64) -> bool {
    let end = time::uptime_nanos() + nanos;
    loop {
        if others_online().next().is_none() {
            return true;
        }
        if time::uptime_nanos() > end {
            return false;
        }
        core::hint::spin_loop();
    }
}

/// What [`stop_other_cores`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Cores that were online and are stopped now (or were sent an NMI).
    pub cores: usize,
    /// Whether some core had to be stopped by NMI: it may have stopped holding a lock (the console's too).
    pub forced: bool,
}

/// Stops every other core for shutdown: the STOP IPI first (each stops where it holds no interrupt-safe lock),
/// NMIs for the cores that do not confirm in time.
pub fn stop_other_cores() -> Stopped {
    park_starting_cores();
    let cores = others_online().count();
    for core in others_online() {
        let _ = apic::send_ipi(core.apic_id, apic::Ipi::Fixed(STOP_VECTOR));
    }
    if wait_stopped(STOP_TIMEOUT_NANOS) {
        return Stopped { cores, forced: false };
    }
    STOP_REQUESTED.store(true, Ordering::Release);
    for core in others_online() {
        crate::console::emergency_print(format_args!("cpu {} did not stop; sending it an NMI\n", core.index));
        let _ = apic::send_ipi(core.apic_id, apic::Ipi::Nmi);
    }
    wait_stopped(STOP_TIMEOUT_NANOS);
    Stopped { cores, forced: true }
}

/// Halts every other core at once (panic path): NMIs, which arrive even where interrupts are off. Takes no lock
/// and does not allocate; waits briefly for the cores to confirm, so their output does not mix with the report.
pub fn halt_other_cores_now() {
    STOP_REQUESTED.store(true, Ordering::Release);
    park_starting_cores();
    for core in others_online() {
        let _ = apic::send_ipi(core.apic_id, apic::Ipi::Nmi);
    }
    wait_stopped(STOP_TIMEOUT_NANOS);
}

/// Self-tests that check the core they run on; [`per_core_selftests_pass_on_every_core`] runs them on every AP.
/// (Tests of global state, such as frame counts, are left out: other cores change it meanwhile.)
const PER_CORE_TESTS: &[&str] = &[
    "percpu::percpu_record_is_self_consistent",
    "percpu::ist_stacks_are_installed",
    "interrupts::devices::device_interrupts_run_on_their_own_stack",
    "time::timer_ticks_advance",
    "interrupts::exceptions::breakpoint_returns",
    "sched::selftests::threads_alternate_on_yield",
    "sched::selftests::spinning_thread_is_preempted",
    "sched::selftests::block_and_wake",
    "smp::this_core_is_online_with_its_own_tables",
];

crate::selftest! {
    /// The core running this is online in the core table, with its own IDT, GDT and TSS.
    fn this_core_is_online_with_its_own_tables() {
        let me = percpu::current();
        let core = cores().get(me.index as usize).ok_or("this core is not in the core table")?;
        crate::check!(core.state() == CoreState::Online, "cpu {} is {:?}", me.index, core.state());
        crate::check!(core.apic_id == me.apic_id, "core table and record disagree on the APIC ID");
        let idt = x86_64::instructions::tables::sidt().base.as_u64();
        let gdt = x86_64::instructions::tables::sgdt().base.as_u64();
        for other in cores().iter().filter(|c| c.index != me.index) {
            crate::check!(other.record().is_none_or(|r| !core::ptr::eq(r, me)), "two cores share a record");
        }
        crate::check!(idt != 0 && gdt != 0, "no IDT or GDT loaded");
        if me.index != 0 {
            crate::check!(crate::memory::heap::contains(idt as usize), "cpu {} runs on the boot core's IDT", me.index);
            crate::check!(crate::memory::heap::contains(gdt as usize), "cpu {} runs on the boot core's GDT", me.index);
        }
        Ok(())
    }
}

crate::selftest! {
    /// Every core the MADT names is online, and each application processor passes the per-core self-tests
    /// (per-CPU record, IST stacks, timer, breakpoint recovery, its own scheduler) on itself.
    fn per_core_selftests_pass_on_every_core() {
        for core in cores() {
            crate::check!(core.state() == CoreState::Online, "cpu {} (APIC id {}) is {:?}", core.index, core.apic_id, core.state());
        }
        let tests: Vec<_> = crate::selftest::SELFTESTS
            .iter()
            .filter(|t| PER_CORE_TESTS.iter().any(|name| t.name.strip_prefix("kernel::") == Some(name)))
            .collect();
        crate::check!(tests.len() == PER_CORE_TESTS.len(), "only {} of the per-core tests exist", tests.len());
        for core in cores().iter().filter(|c| c.index != percpu::current_index()) {
            let elsewhere = run_on(core.index, || {
                crate::check!(percpu::current_index() != 0, "a job for another core ran on the boot core");
                Ok(())
            });
            crate::check!(elsewhere == Ok(Ok(())), "cpu {}: {elsewhere:?}", core.index);
            for test in &tests {
                match run_on(core.index, test.run) {
                    Ok(Ok(())) => {}
                    Ok(Err(why)) => return Err(alloc::format!("cpu {}: {}: {why}", core.index, test.name)),
                    Err(e) => return Err(alloc::format!("cpu {}: cannot run {}: {e:?}", core.index, test.name)),
                }
            }
        }
        Ok(())
    }
}
