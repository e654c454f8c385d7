//! The kernel ABI: the one object through which a SIP reaches the kernel (DESIGN.md invariant 7).
//!
//! Every call takes and returns plain values: strings go in as `&str` and come back as `'static` manifest
//! names, lists are read one entry at a time, a new thread is a function and a number. So no call hands a SIP a
//! reference into kernel memory or a kernel address, no call makes the kernel allocate on a SIP's behalf in a
//! way that outlives the call or escapes the SIP's limits, and the trait can be implemented by a ring-3
//! `syscall` stub as well as by direct ring-0 calls. Endpoints cross as values (a startup endpoint, a
//! name-service connection), and the kernel checks in its records that the caller holds what it hands over.
//!
//! Against a hostile caller: a SIP can call every method with any arguments in any order (its `SipContext`
//! gives it the object); each call checks the caller's capabilities from the kernel's policy, bounds every
//! size it is given, and charges what it creates to the caller (docs/security.md).

use contracts::Exchangeable;
use core::fmt;

/// A SIP's identity, unique for the whole boot (never reused).
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SipId(pub u64);

impl fmt::Display for SipId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How a SIP ended.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Its entry returned, or it called `exit(Success)`.
    Success,
    /// It called `exit` with a failure code.
    Failure(i32),
}

/// Log levels a SIP may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something is odd.
    Warn,
    /// Progress worth seeing.
    Info,
    /// Detail for debugging.
    Debug,
}

/// Why a spawn did not start anything.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    /// No manifest has that name.
    NoSuchService,
    /// The manifest is invalid (the kernel's check; see `ManifestError`).
    BadManifest(crate::ManifestError),
    /// Memory for the SIP's arena, stack or records ran out.
    OutOfMemory,
    /// The caller's manifest lacks `Capability::ProcessControl`.
    NotPermitted,
    /// The requested core does not exist or is not online (it did not start).
    NoSuchCore,
    /// The argument string is longer than [`MAX_ARGS_LEN`] bytes.
    ArgumentsTooLong,
    /// The calling SIP already runs as many threads as its policy allows.
    TooManyThreads,
    /// The program is not verified code (it is not a service, and may use `unsafe`): the kernel runs only
    /// verified code in ring 0, so it starts only under hardware protection.
    NeedsHardwareProtection,
    /// The ring-3 image has no build of it (the service is not linked into the image), or there is no usable
    /// image.
    NoRing3Build,
}

/// How a SIP is protected, chosen when it is spawned: by the type system alone in ring 0, or by the MMU in ring 3
/// as well (docs/protection.md).
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protection {
    /// Ring 0, the kernel's address space: isolation by the type system (verified code only).
    #[default]
    Type,
    /// Ring 3, in the one user address space its core's ring-3 SIPs share: the MMU protects the kernel, the type
    /// system the SIPs from each other.
    Ring3,
    /// Ring 3, in an address space of its own: the MMU also separates it from every other SIP.
    Ring3Own,
}

impl Protection {
    /// Every mode, in the order of the papers' tables.
    pub const ALL: [Protection; 3] = [Protection::Type, Protection::Ring3, Protection::Ring3Own];

    /// The mode's name as `spawn --protection` takes it and `ps` shows it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Type => "type",
            Self::Ring3 => "ring3",
            Self::Ring3Own => "ring3-own",
        }
    }

    /// The mode named `name` ([`Protection::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether the MMU protects the kernel from this SIP (ring 3).
    pub const fn is_ring3(self) -> bool {
        !matches!(self, Self::Type)
    }
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Most bytes of the argument string a spawn takes.
pub const MAX_ARGS_LEN: usize = 1024;

/// Most bytes of one log line (a longer one is cut there, and says so).
pub const MAX_LOG_LINE: usize = 512;

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchService => f.write_str("no such service"),
            Self::BadManifest(e) => write!(f, "manifest rejected: {e}"),
            Self::OutOfMemory => f.write_str("out of memory"),
            Self::NotPermitted => f.write_str("not permitted (needs the ProcessControl capability)"),
            Self::NoSuchCore => f.write_str("no such core, or it is not online"),
            Self::ArgumentsTooLong => write!(f, "arguments longer than {MAX_ARGS_LEN} bytes"),
            Self::TooManyThreads => f.write_str("the SIP runs as many threads as its policy allows"),
            Self::NoRing3Build => f.write_str(
                "no ring-3 build of it (the ring-3 image has the programs and services its services.rs names: \
                 template, echo, kv, names, bench, shell)",
            ),
            Self::NeedsHardwareProtection => f.write_str(
                "not verified code: only verified code runs in ring 0 (`type`); start it with --protection ring3 \
                 or ring3-own",
            ),
        }
    }
}

/// Why a kill did not happen.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillError {
    /// No live SIP has that id.
    NoSuchProcess,
    /// The caller's manifest lacks `Capability::ProcessControl`.
    NotPermitted,
}

impl fmt::Display for KillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchProcess => f.write_str("no such process"),
            Self::NotPermitted => f.write_str("not permitted (needs the ProcessControl capability)"),
        }
    }
}

/// A SIP's state as `ps` shows it.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// At least one of its threads is running or ready.
    Running,
    /// All its threads are parked (waiting for a message or a timer).
    Blocked,
}

/// One live SIP, for `ps`: plain data, so it crosses the ABI to a ring-3 SIP too.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Identity.
    pub id: SipId,
    /// Its manifest's name.
    pub name: crate::ShortName,
    /// Core it runs on.
    pub core: u32,
    /// Running or blocked.
    pub state: ProcessState,
    /// Bytes live in its heap arena.
    pub heap_used: usize,
    /// Its arena's quota.
    pub heap_quota: usize,
    /// Its threads.
    pub threads: usize,
    /// Channel endpoints it holds.
    pub channels: usize,
    /// Exchange-heap bytes charged to it as payer, which need not be what it holds: blocks it allocated,
    /// received or unsealed, messages it sent that wait in rings (or sit sealed in a value nobody opened yet),
    /// and the channels it made, wherever their ends are.
    pub exchange_bytes: usize,
    /// Most exchange-heap bytes it may be charged (its policy).
    pub exchange_quota: usize,
    /// How it is protected.
    pub protection: Protection,
}

/// Counts of the events that explain what protection costs, summed over every core since boot (`bench
/// protection` reads them before and after each operation).
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventCounts {
    /// Entries into the kernel from ring 3 (`syscall`s, interrupts and exceptions).
    pub ring3_entries: u64,
    /// Writes of CR3 (address-space switches).
    pub cr3_writes: u64,
    /// Whole-TLB flushes: CR3 writes (without PCID, each flushes the TLB) and explicit flushes.
    pub tlb_flushes: u64,
    /// Page faults (every one ends a SIP or the machine: there is no demand paging).
    pub page_faults: u64,
    /// Inter-processor interrupts sent.
    pub ipis: u64,
}

/// Memory figures for `mem`.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryInfo {
    /// Usable physical frames.
    pub frames_total: u64,
    /// Free physical frames.
    pub frames_free: u64,
    /// Frames holding page tables (among the used ones).
    pub page_table_frames: u64,
    /// Bytes of the kernel heap's region mapped so far.
    pub kernel_heap_mapped: u64,
    /// Most the kernel heap may grow to.
    pub kernel_heap_limit: u64,
    /// SIP heap arenas alive.
    pub arenas_live: usize,
    /// Kernel heap bytes in live allocations.
    pub kernel_heap_used: usize,
    /// Kernel heap bytes free without growing.
    pub kernel_heap_free: usize,
    /// Exchange-heap bytes in live blocks.
    pub exchange_used: usize,
    /// Live exchange-heap blocks.
    pub exchange_blocks: usize,
    /// Bytes of the exchange heap's region mapped so far.
    pub exchange_mapped: u64,
    /// Bytes the small heaps (async SIPs' memory, every core's) have mapped so far.
    pub small_heaps_mapped: u64,
}

/// One core's replica of the process table, for `replicas`.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaInfo {
    /// The core.
    pub core: u32,
    /// Whether a kernel instance runs on it (an offline core's replica is empty and stays so).
    pub online: bool,
    /// Updates it applied.
    pub version: u64,
    /// A digest of its entries: equal sets, equal digests.
    pub digest: u64,
    /// Live SIPs it knows of.
    pub entries: usize,
    /// Updates its name registry applied.
    pub names_version: u64,
    /// A digest of its name registry.
    pub names_digest: u64,
    /// Names it knows of.
    pub names: usize,
}

/// One core, for `cpus`.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuInfo {
    /// Dense index.
    pub index: u32,
    /// Local APIC ID.
    pub apic_id: u32,
    /// ACPI processor UID.
    pub acpi_id: u32,
    /// Whether a kernel instance runs on it.
    pub online: bool,
    /// Whether it is the boot core.
    pub boot: bool,
    /// Timer interrupts it has taken (0 when offline).
    pub timer_ticks: u64,
    /// Its timer's rate.
    pub timer_hz: u32,
    /// Threads ready to run on it, waiting in its run queue (the running one not counted; 0 when offline).
    pub run_queue: u32,
    /// Threads parked on it (0 when offline).
    pub blocked: u32,
    /// Nanoseconds the boot core spent starting it, from building its kernel records to its report online (the
    /// first core started also carries the MP specification's 10 ms INIT delay, which all cores wait out
    /// together); 0 for the boot core and for a core that did not start. Their sum is the time to bring every
    /// core online.
    pub start_nanos: u64,
}

/// Who holds one end of a channel.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndHolder {
    /// The endpoint is gone (dropped, or its SIP died).
    Closed,
    /// The kernel.
    Kernel,
    /// Inside a message not yet received.
    InTransit,
    /// A SIP.
    Sip(SipId),
}

/// One live channel, for `channels`.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelInfo {
    /// An identity for the listing: a serial number in creation order (never an address).
    pub id: u64,
    /// Who holds each end.
    pub ends: [EndHolder; 2],
}

/// Log levels the system log can be set to.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFilter {
    /// Nothing.
    Off,
    /// Errors only.
    Error,
    /// And warnings.
    Warn,
    /// And information.
    Info,
    /// And debugging detail.
    Debug,
    /// Everything.
    Trace,
}

impl LogFilter {
    /// Every level, from the quietest.
    pub const ALL: [LogFilter; 6] =
        [LogFilter::Off, LogFilter::Error, LogFilter::Warn, LogFilter::Info, LogFilter::Debug, LogFilter::Trace];
}

/// The kernel as a SIP sees it. Implemented by the kernel (ring 0: direct calls).
pub trait KernelAbi: Sync {
    /// Gives the core to another ready thread.
    fn yield_now(&self);
    /// Parks the calling thread for at least `nanos`.
    fn sleep(&self, nanos: u64);
    /// Nanoseconds since boot.
    fn now(&self) -> u64;
    /// In an async SIP's poll: wakes the polled task at `deadline` (nanoseconds since boot), once, replacing an
    /// earlier such timer; `false` where there is no task to wake (a thread, or ring 3), the default.
    fn wake_at(&self, deadline: u64) -> bool {
        let _ = deadline;
        false
    }
    /// The raw cycle counter (instructions under `--icount`), for benchmarks.
    fn cycles(&self) -> u64;
    /// Ends the calling SIP (all its threads) with `status`.
    fn exit(&self, status: ExitStatus) -> !;
    /// Writes one log line attributed to the calling SIP: at most [`MAX_LOG_LINE`] bytes of it, and at most
    /// the SIP's policy's rate of lines (lines beyond it are dropped and counted, and the count is reported).
    fn log(&self, level: LogLevel, message: &str);
    /// Starts the service `name` with one argument string, on `core` (or the least loaded), handing it
    /// `startup` (taken by the child with [`KernelAbi::take_startup`]). On failure `startup` comes back.
    fn spawn(
        &self,
        name: &str,
        args: &str,
        core: Option<u32>,
        startup: Option<crate::Startup>,
    ) -> Result<SipId, (SpawnError, Option<crate::Startup>)>;
    /// Starts `name` with `args` under `protection`, on `core` (or the least loaded), handing it `startup` as
    /// [`KernelAbi::spawn`] does: in `ring3` or `ring3-own` a program of the ring-3 image or a service built into
    /// it (one the image lacks is refused: [`SpawnError::NoRing3Build`]), under `type` what [`KernelAbi::spawn`]
    /// starts (a ring-3 program is refused there: [`SpawnError::NeedsHardwareProtection`]). Needs
    /// `Capability::ProcessControl`. On failure `startup` comes back.
    fn spawn_protected(
        &self,
        name: &str,
        args: &str,
        core: Option<u32>,
        protection: Protection,
        startup: Option<crate::Startup>,
    ) -> Result<SipId, (SpawnError, Option<crate::Startup>)>;
    /// The event counts since boot, all cores (needs `SystemInfo`; zeroes otherwise).
    fn events(&self) -> EventCounts;
    /// How ring-3 SIP `id` of the calling core exited, once it has ended (a core keeps its last 32 ring-3 ends):
    /// `None` while it lives, if it ended otherwise than by exiting, or if it is not such a SIP. Needs
    /// `SystemInfo`. (A ring-3 program's exit status is its result: `bench protection` reads its figures so.)
    fn exit_status_of(&self, id: SipId) -> Option<ExitStatus>;
    /// Starts another thread of the calling SIP running `entry(argument)` in the SIP, on a stack of its
    /// manifest's size; returns the thread's id. The SIP ends when its first thread returns or any thread
    /// fails; another thread that returns ends alone. Refused beyond the SIP's thread limit.
    fn start_thread(&self, entry: fn(usize), argument: usize) -> Result<u64, SpawnError>;
    /// The startup value this SIP was spawned with, once.
    fn take_startup(&self) -> Option<crate::Startup>;
    /// Ends SIP `id` (needs `ProcessControl`).
    fn kill(&self, id: SipId) -> Result<(), KillError>;
    /// The live SIP with the smallest id above `after` (`None` starts from the beginning; needs `SystemInfo`,
    /// `None` otherwise).
    fn process_after(&self, after: Option<SipId>) -> Option<ProcessInfo>;
    /// Memory figures (needs `SystemInfo`; zeroes otherwise).
    fn memory(&self) -> MemoryInfo;
    /// The core the calling thread runs on (also the cheapest call there is: the ABI-call benchmark).
    fn current_core(&self) -> u32;
    /// Blocks until SIP `id` has ended; `Err(NoSuchProcess)` if it is not alive.
    fn wait(&self, id: SipId) -> Result<(), KillError>;
    /// In an async SIP's poll: `Some(true)` if SIP `id` is not alive (ended, or never was); `Some(false)` if it
    /// is, and then the polled task is woken once when it ends (a task is registered once however often it
    /// asks); `None` where there is no task to wake (a thread, or ring 3), the default: the caller waits with
    /// [`wait`](Self::wait). The future of [`SipContext::wait_async`](crate::SipContext::wait_async).
    fn wake_on_end(&self, id: SipId) -> Option<bool> {
        let _ = id;
        None
    }
    /// Writes text to the system console as it is (needs `Console`). Long text is written in pieces, so the
    /// console (shared by every core) is never held for long.
    fn console_write(&self, text: &str) -> Result<(), NotPermitted>;
    /// Whether the cycle counter counts guest instructions (QEMU `-icount`) rather than TSC cycles.
    fn cycles_are_instructions(&self) -> bool;
    /// Core `index` (`None` past the last; needs `SystemInfo`, `None` otherwise).
    fn cpu(&self, index: u32) -> Option<CpuInfo>;
    /// The live channel with the smallest id above `after` (needs `SystemInfo`, `None` otherwise).
    fn channel_after(&self, after: Option<u64>) -> Option<ChannelInfo>;
    /// How many endpoints of contract `contract` were dropped outside a terminal state while their peer was
    /// still there, since boot (each such drop is also logged at debug level, with the state and side).
    fn mid_protocol_drops(&self, contract: &str) -> u64;
    /// The system log's level.
    fn log_level(&self) -> LogFilter;
    /// Sets the system log's level (needs `SystemAdmin`).
    fn set_log_level(&self, level: LogFilter) -> Result<(), NotPermitted>;
    /// Runs the kernel's self-tests whose names contain `filter`; they report on the console. Returns
    /// (passed, failed) (needs `SystemAdmin`).
    fn run_selftests(&self, filter: &str) -> Result<(u32, u32), NotPermitted>;
    /// Powers the machine off (needs `SystemAdmin`); returns only if not permitted.
    fn shutdown(&self) -> NotPermitted;
    /// A deliberate kernel panic with `message`, for debugging the panic path (needs `SystemAdmin`); returns
    /// only if not permitted.
    fn kernel_panic(&self, message: &str) -> NotPermitted;
    /// Hands `server`, the server end of a fresh name-service channel whose client end the caller keeps, to
    /// the name service of `core` (default: the caller's core), on behalf of the calling SIP (which the name
    /// service learns from the kernel, so it cannot be forged). `false` if that name service is not running or
    /// is overloaded (the end is then closed: the client sees `Closed`).
    fn connect_names(&self, core: Option<u32>, server: NameServiceServer) -> bool;
    /// Ends the caller's core's name service and starts it again in `protection` (the mode it keeps until the
    /// next restart), returning once the new one is running, with the mode it runs in: `protection`, or `type`
    /// if it could not start so (the kernel logs why). The names it served are released, as when it ends for any
    /// reason (needs `SystemAdmin`).
    fn restart_names(&self, protection: Protection) -> Result<Protection, RestartError>;
    /// Binds `name` to SIP `sip` in the replicated name registry, agreed with every core: exactly one of any
    /// concurrent claims of a name wins (needs `NameRegistry`).
    fn claim_name(&self, name: &str, sip: SipId, contract: &str) -> Result<(), NameRegistryError>;
    /// Removes `name`, bound to SIP `sip`, from the replicated registry (needs `NameRegistry`).
    fn release_name(&self, name: &str, sip: SipId) -> Result<(), NameRegistryError>;
    /// A message from this core reaching every other core and confirmed, sent as `scheme` says (the cost of one
    /// replica update reaching all cores); `None` on a single core, and without `SystemInfo` (a call that makes
    /// every core work is not for any SIP to repeat at will).
    fn broadcast_probe(&self, scheme: Broadcast) -> Option<ProbeReport>;
    /// `name` in this core's replica of the registry.
    fn resolve_name(&self, name: &str) -> Option<NameInfo>;
    /// The bound name after `after` in name order, in this core's replica (`None` starts from the first).
    fn name_after(&self, after: Option<&str>) -> Option<NameInfo>;
    /// Core `core`'s replica of the process table (`None` past the last core; needs `SystemInfo`, `None`
    /// otherwise).
    fn replica(&self, core: u32) -> Option<ReplicaInfo>;
}

/// What one message to every core and its acknowledgements cost (`KernelAbi::broadcast_probe`).
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeReport {
    /// Cycles from the first send to the last acknowledgement, on the sending core (guest instructions under
    /// `--icount`).
    pub cycles: u64,
    /// Inter-core messages it took, probes and acknowledgements, all cores together.
    pub messages: u64,
    /// Most messages one core sent and took: the serial work on the busiest core, which bounds the latency where
    /// cores run in parallel (under QEMU TCG they share the host's few threads; docs/multikernel.md).
    pub busiest: u64,
}

/// How a message for every core travels (what `KernelAbi::broadcast_probe` measures; docs/multikernel.md).
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broadcast {
    /// From the sender to each core in turn; each answers the sender.
    OneByOne,
    /// Along the kernel's tree of all cores; answers are gathered on the way back.
    Tree,
}

impl Broadcast {
    /// Both, in the order of the figures.
    pub const ALL: [Broadcast; 2] = [Broadcast::OneByOne, Broadcast::Tree];
}

/// Why the name service was not restarted.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartError {
    /// The caller's manifest lacks `SystemAdmin`.
    NotPermitted,
    /// The core's name service gave up after failing again and again, or the new one did not start in time.
    Unavailable,
}

impl fmt::Display for RestartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotPermitted => "not permitted (needs the SystemAdmin capability)",
            Self::Unavailable => "the name service of this core is unavailable (see the log)",
        })
    }
}

/// Why the name registry refused a change.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRegistryError {
    /// Another SIP has the name.
    AlreadyBound,
    /// Nobody has the name.
    NotFound,
    /// The name is bound to another SIP.
    NotOwner,
    /// Not 1-64 bytes of `a-z 0-9 - _ . /`, or the contract name is over 32 bytes.
    Invalid,
    /// The caller's manifest lacks `NameRegistry`.
    NotPermitted,
    /// The core that decides about this name could not be reached.
    Unavailable,
}

/// One binding of the replicated name registry: plain data (fixed arrays), so it crosses the ABI by value.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameInfo {
    name: [u8; contracts::MAX_NAME_LEN],
    name_len: u8,
    contract: [u8; 32],
    contract_len: u8,
    /// The SIP that bound it.
    pub sip: SipId,
    /// The core it runs on.
    pub core: u32,
}

impl NameInfo {
    /// A binding; `None` if `name` or `contract` is too long (names are checked by the caller).
    pub fn new(name: &str, contract: &str, sip: SipId, core: u32) -> Option<Self> {
        let mut info =
            Self { name: [0; contracts::MAX_NAME_LEN], name_len: 0, contract: [0; 32], contract_len: 0, sip, core };
        info.name.get_mut(..name.len())?.copy_from_slice(name.as_bytes());
        info.contract.get_mut(..contract.len())?.copy_from_slice(contract.as_bytes());
        (info.name_len, info.contract_len) = (name.len() as u8, contract.len() as u8);
        Some(info)
    }

    /// The bound name.
    pub fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..usize::from(self.name_len)]).unwrap_or("?")
    }

    /// The contract its provider serves.
    pub fn contract(&self) -> &str {
        core::str::from_utf8(&self.contract[..usize::from(self.contract_len)]).unwrap_or("?")
    }
}

/// A SIP's end of a fresh name-service connection.
pub type NameServiceClient = contracts::name_service::Client<contracts::name_service::state::Ready>;

/// The name service's end of a fresh connection, which a SIP hands to the kernel.
pub type NameServiceServer = contracts::name_service::Server<contracts::name_service::state::Ready>;

/// The caller's manifest lacks the capability the call needs.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPermitted;

#[cfg(test)]
mod tests {
    use super::Protection;

    #[test]
    fn protection_names_round_trip_and_nothing_else_parses() {
        for mode in Protection::ALL {
            assert_eq!(Protection::from_name(mode.name()), Some(mode));
        }
        let huge = "ring3".repeat(100_000);
        for other in ["", "Ring3", "ring3 ", "ring3-own-", "ring0", "type\0", huge.as_str()] {
            assert_eq!(Protection::from_name(other), None, "{other:.20}");
        }
        assert_eq!(Protection::default(), Protection::Type);
        assert!(!Protection::Type.is_ring3() && Protection::Ring3.is_ring3() && Protection::Ring3Own.is_ring3());
    }
}
