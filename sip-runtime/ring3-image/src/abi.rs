//! The ring-3 `KernelAbi`: what a service's `SipContext` calls when the service runs in ring 3.
//!
//! Every call is plain data over `syscall` (`calls`): numbers, and this SIP's own memory with lengths, which the
//! kernel checks and copies. What a ring-3 SIP has today: time, yielding and sleeping, logging, exiting, its
//! core, the cycle counter (read in ring 3 with `rdtsc`, which the kernel does not forbid) and its startup value
//! (the channel end the kernel holds under handle 0; channels themselves are the `ring3` build of `channels`).
//! The name registry, process control (spawn with a startup value, kill, wait, the process list), system
//! information, the console and administration go through the `KERNEL` call (`sip_runtime::kernel_requests`),
//! which the kernel answers with its ring-0 implementation: the same capabilities are checked in both modes.
//! What does not cross yet answers as a SIP without the capability would be answered in ring 0: threads (one)
//! and self-tests (`NotPermitted`) (docs/protection.md, "Next steps"). Nothing here panics.

use crate::calls::{self, Level, ask};
use sip_runtime::kernel_requests::{MAX_CONSOLE_PIECE, Request};
use sip_runtime::{
    Broadcast, ChannelInfo, CpuInfo, EventCounts, ExitStatus, KernelAbi, KillError, LogFilter, LogLevel, MemoryInfo,
    NameInfo, NameRegistryError, NameServiceServer, NotPermitted, ProbeReport, ProcessInfo, Protection, ReplicaInfo,
    RestartError, SipId, SpawnError, Startup,
};

/// The ABI object of every ring-3 SIP.
pub struct Ring3Abi;

/// Whether the startup endpoint was taken.
static STARTUP_TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The one instance.
pub static RING3: Ring3Abi = Ring3Abi;

impl KernelAbi for Ring3Abi {
    fn yield_now(&self) {
        calls::yield_now();
    }

    fn sleep(&self, nanos: u64) {
        calls::sleep(nanos);
    }

    fn now(&self) -> u64 {
        calls::now()
    }

    fn cycles(&self) -> u64 {
        calls::cycles()
    }

    fn exit(&self, status: ExitStatus) -> ! {
        calls::exit(match status {
            ExitStatus::Success => 0,
            ExitStatus::Failure(code) => code as u32,
        })
    }

    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Error => Level::Error,
            LogLevel::Warn => Level::Warn,
            LogLevel::Info => Level::Info,
            LogLevel::Debug => Level::Debug,
        };
        calls::log(level, message);
    }

    fn spawn(
        &self,
        name: &str,
        args: &str,
        core: Option<u32>,
        startup: Option<Startup>,
    ) -> Result<SipId, (SpawnError, Option<Startup>)> {
        spawn(name, args, core, None, startup)
    }

    fn spawn_protected(
        &self,
        name: &str,
        args: &str,
        core: Option<u32>,
        protection: Protection,
        startup: Option<Startup>,
    ) -> Result<SipId, (SpawnError, Option<Startup>)> {
        spawn(name, args, core, Some(protection), startup)
    }

    fn events(&self) -> EventCounts {
        ask(Request::Events).unwrap_or_default()
    }

    fn exit_status_of(&self, id: SipId) -> Option<ExitStatus> {
        ask(Request::ExitStatusOf(id)).flatten()
    }

    fn start_thread(&self, entry: fn(usize), argument: usize) -> Result<u64, SpawnError> {
        crate::start::start_thread(entry, argument)
    }

    fn take_startup(&self) -> Option<Startup> {
        // Once: the handle is the SIP's first endpoint, and a second take would name what the first one took.
        if STARTUP_TAKEN.swap(true, core::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        crate::calls::startup_endpoint().map(Startup::from_end)
    }

    fn kill(&self, id: SipId) -> Result<(), KillError> {
        ask(Request::Kill(id)).unwrap_or(Err(KillError::NotPermitted))
    }

    fn process_after(&self, after: Option<SipId>) -> Option<ProcessInfo> {
        ask(Request::ProcessAfter(after)).flatten()
    }

    fn memory(&self) -> MemoryInfo {
        ask(Request::Memory).unwrap_or_default()
    }

    fn current_core(&self) -> u32 {
        calls::core()
    }

    fn wait(&self, id: SipId) -> Result<(), KillError> {
        ask(Request::Wait(id)).unwrap_or(Err(KillError::NotPermitted))
    }

    fn console_write(&self, text: &str) -> Result<(), NotPermitted> {
        // In pieces that fit a request, each cut at a character's boundary.
        let mut rest = text;
        while !rest.is_empty() {
            let mut cut = rest.len().min(MAX_CONSOLE_PIECE);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let (piece, after) = rest.split_at(cut);
            ask::<Result<(), NotPermitted>>(Request::ConsoleWrite(piece)).unwrap_or(Err(NotPermitted))?;
            rest = after;
        }
        Ok(())
    }

    fn cycles_are_instructions(&self) -> bool {
        calls::icount()
    }

    fn cpu(&self, index: u32) -> Option<CpuInfo> {
        ask(Request::Cpu(index)).flatten()
    }

    fn channel_after(&self, after: Option<u64>) -> Option<ChannelInfo> {
        ask(Request::ChannelAfter(after)).flatten()
    }

    fn mid_protocol_drops(&self, contract: &str) -> u64 {
        ask(Request::MidProtocolDrops(contract)).unwrap_or(0)
    }

    fn log_level(&self) -> LogFilter {
        // Unanswered (it is always answered): the level the kernel starts with.
        ask(Request::LogLevel).unwrap_or(LogFilter::Info)
    }

    fn set_log_level(&self, level: LogFilter) -> Result<(), NotPermitted> {
        ask(Request::SetLogLevel(level)).unwrap_or(Err(NotPermitted))
    }

    fn run_selftests(&self, filter: &str) -> Result<(u32, u32), NotPermitted> {
        // A filter too long for a request matches no test's name: none runs.
        if filter.len() > MAX_CONSOLE_PIECE {
            return Ok((0, 0));
        }
        ask(Request::RunSelftests(filter)).unwrap_or(Err(NotPermitted))
    }

    fn shutdown(&self) -> NotPermitted {
        ask(Request::Shutdown).unwrap_or(NotPermitted)
    }

    fn kernel_panic(&self, message: &str) -> NotPermitted {
        // A message too long for a request is cut, as the kernel would cut it in its panic line anyway.
        let mut cut = message.len().min(MAX_CONSOLE_PIECE);
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        ask(Request::KernelPanic(&message[..cut])).unwrap_or(NotPermitted)
    }

    fn connect_names(&self, core: Option<u32>, server: NameServiceServer) -> bool {
        crate::calls::names_connect(core, server)
    }

    fn restart_names(&self, protection: Protection) -> Result<Protection, RestartError> {
        ask(Request::RestartNames(protection)).unwrap_or(Err(RestartError::NotPermitted))
    }

    // A request that does not fit a call has a name far beyond any valid one: `Invalid`, or not bound.

    fn claim_name(&self, name: &str, sip: SipId, contract: &str) -> Result<(), NameRegistryError> {
        ask(Request::ClaimName { name, sip, contract }).unwrap_or(Err(NameRegistryError::Invalid))
    }

    fn release_name(&self, name: &str, sip: SipId) -> Result<(), NameRegistryError> {
        ask(Request::ReleaseName { name, sip }).unwrap_or(Err(NameRegistryError::Invalid))
    }

    fn broadcast_probe(&self, scheme: Broadcast) -> Option<ProbeReport> {
        ask(Request::BroadcastProbe(scheme)).flatten()
    }

    fn resolve_name(&self, name: &str) -> Option<NameInfo> {
        ask(Request::ResolveName(name)).flatten()
    }

    fn name_after(&self, after: Option<&str>) -> Option<NameInfo> {
        ask(Request::NameAfter(after)).flatten()
    }

    fn replica(&self, core: u32) -> Option<ReplicaInfo> {
        ask(Request::Replica(core)).flatten()
    }
}

/// A spawn through `KERNEL`. The startup end crosses as its handle; the kernel takes it only if it does the
/// request, and gives it back (as a handle in the answer) if the spawn is refused. A request the kernel never did
/// leaves the end with this SIP, and it comes back from its handle.
fn spawn(
    name: &str,
    args: &str,
    core: Option<u32>,
    protection: Option<Protection>,
    startup: Option<Startup>,
) -> Result<SipId, (SpawnError, Option<Startup>)> {
    use channels::wire::{self, NoEndpoints};
    type End = channels::raw::RawEndpoint<(), channels::ExAny>;
    let handle = startup.map(|startup| {
        let bytes = wire::encode(startup.into_end(), &mut NoEndpoints).unwrap_or_default();
        u32::from_le_bytes(bytes.try_into().unwrap_or([0xff; 4]))
    });
    let request = Request::Spawn { name, args, core, protection, startup: handle };
    match crate::calls::ask_telling::<Result<SipId, (SpawnError, Option<End>)>>(request) {
        Ok(Some(Ok(id))) => Ok(id),
        Ok(Some(Err((error, back)))) => Err((error, back.map(Startup::from_end))),
        // Done, but the answer does not decode: the end is the kernel's now, or lost with the SIP's handles.
        Ok(None) => Err((SpawnError::OutOfMemory, None)),
        Err(crate::calls::NotDone) => {
            let back = handle.and_then(|h| wire::decode::<End>(&h.to_le_bytes(), &mut NoEndpoints).ok());
            let error = if args.len() > sip_runtime::MAX_ARGS_LEN {
                SpawnError::ArgumentsTooLong
            } else {
                SpawnError::NoSuchService
            };
            Err((error, back.map(Startup::from_end)))
        }
    }
}
