//! The cores of the machine: the table of every usable core of the ACPI MADT with its life state, and stopping
//! the other cores (shutdown, panic).
//!
//! The table is built once on the boot core ([`init`]), before any other core starts, and is read-only after
//! that except for each core's state, which only moves forward (`NotStarted` → `Starting` → `Online`/`Failed`
//! → `Stopped`), and the id of each core's monitor thread (set once, by the layer that starts it). Starting the
//! cores is `smp`'s; this layer only records what happened, so that every layer from here up can ask which
//! cores run.
//!
//! Stopping: [`stop_other_cores`] (shutdown) sends every other online core the STOP IPI; its handler runs with
//! interrupts off, so the core stops holding no interrupt-safe lock, and halts ([`park_this_core`]). A core
//! that does not confirm in time gets an NMI. [`halt_other_cores_now`] (panic) sends NMIs straight away: the
//! other cores may be spinning with interrupts off on a lock the panicking core holds. Neither takes a lock or
//! allocates.

use crate::arch::vectors::STOP_VECTOR;
use crate::arch::{apic, cpu};
use crate::firmware::acpi::Machine;
use crate::percpu::{self, PerCpu};
use crate::time;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

/// How long [`stop_other_cores`] waits for cores to confirm before using NMIs.
const STOP_TIMEOUT_NANOS: u64 = 100_000_000;

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
    /// Nanoseconds the boot core spent starting it, from building its records to its report online (the first
    /// core started carries the INIT delay all wait out together; 0 for the boot core and for a core that did
    /// not start).
    start_nanos: AtomicU64,
}

impl Core {
    /// Its current state.
    pub fn state(&self) -> CoreState {
        CoreState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Moves it to `state` (forward only: the module invariant is the caller's).
    pub fn set_state(&self, state: CoreState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// Its per-CPU record, once built.
    pub fn record(&self) -> Option<&'static PerCpu> {
        percpu::by_index(self.index)
    }

    /// The id of the thread that serves the core's inter-core messages (its monitor), once it runs.
    pub fn monitor(&self) -> Option<u64> {
        match self.monitor.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }

    /// Records the core's monitor thread.
    pub fn set_monitor(&self, thread: u64) {
        self.monitor.store(thread, Ordering::Release);
    }

    /// Nanoseconds the boot core spent starting it (0 for the boot core and a core that did not start).
    pub fn start_nanos(&self) -> u64 {
        self.start_nanos.load(Ordering::Relaxed)
    }

    /// Records how long starting it took.
    pub fn set_start_nanos(&self, nanos: u64) {
        self.start_nanos.store(nanos, Ordering::Relaxed);
    }
}

static CORES: spin::Once<Vec<Core>> = spin::Once::new();
/// Set when the machine stops: NMIs are then requests to halt, not faults.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Builds the core table from the MADT: the calling (boot) core first, online, then every other usable core.
/// Call once on the boot core, after ACPI and before any other use of this module.
pub fn init(machine: &Machine) {
    let me = percpu::current();
    CORES.call_once(|| {
        let boot = machine.usable_processors().find(|p| p.apic_id == me.apic_id);
        let others = machine.usable_processors().filter(|p| p.apic_id != me.apic_id);
        let mut cores = Vec::new();
        let mut push = |apic_id, acpi_id, state: CoreState| {
            let index = cores.len() as u32;
            cores.push(Core {
                index,
                apic_id,
                acpi_id,
                state: AtomicU8::new(state as u8),
                monitor: AtomicU64::new(0),
                start_nanos: AtomicU64::new(0),
            });
        };
        push(me.apic_id, boot.map_or(0, |p| p.acpi_id), CoreState::Online);
        for p in others {
            push(p.apic_id, p.acpi_id, CoreState::NotStarted);
        }
        cores
    });
}

/// Every core the MADT names usable, by dense index (empty before [`init`]).
pub fn cores() -> &'static [Core] {
    CORES.get().map_or(&[], Vec::as_slice)
}

/// The calling core's entry of the table.
pub fn this_core() -> Option<&'static Core> {
    cores().get(percpu::current_index() as usize)
}

/// Whether core `index` runs its kernel instance.
pub fn is_online(index: u32) -> bool {
    cores().get(index as usize).is_some_and(|c| c.state() == CoreState::Online)
}

/// The indices of the cores that run.
pub fn online_cores() -> impl Iterator<Item = u32> {
    cores().iter().filter(|c| c.state() == CoreState::Online).map(|c| c.index)
}

/// Whether the machine is being stopped (then an NMI means "halt", not a fault).
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::Acquire)
}

/// Stops the calling core for good, recording it. Called by the STOP IPI and by the NMI while stopping.
pub fn park_this_core() -> ! {
    x86_64::instructions::interrupts::disable();
    if let Some(core) = this_core() {
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
/// NMIs for the cores that do not confirm in time, each announced through `before_nmi` with its index first
/// (the caller reports it without taking a lock such a core may hold).
pub fn stop_other_cores(before_nmi: impl Fn(u32)) -> Stopped {
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
        before_nmi(core.index);
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
