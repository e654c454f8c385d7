//! The ring-3 `KernelAbi`: what a service's `SipContext` calls when the service runs in ring 3.
//!
//! Every call is plain data over `syscall` (`calls`): numbers, and this SIP's own memory with lengths, which the
//! kernel checks and copies. What a ring-3 SIP has today: time, yielding and sleeping, logging, exiting, its
//! core, the cycle counter (read in ring 3 with `rdtsc`, which the kernel does not forbid) and its startup value
//! (the channel end the kernel holds under handle 0; channels themselves are the `ring3` build of `channels`).
//! The rest answers as a SIP without the capability or the resource would be answered in ring 0
//! (`NotPermitted`, `None`, one thread): ring-3 SIPs are granted no capability through calls yet
//! (docs/protection.md, "Next steps"). Nothing here panics.

use crate::calls::{self, Level};
use sip_runtime::{
    ChannelInfo, CpuInfo, EventCounts, ExitStatus, KernelAbi, KillError, LogFilter, LogLevel, MemoryInfo, NameInfo,
    NameRegistryError, NameServiceServer, NotPermitted, ProcessInfo, Protection, ReplicaInfo, SipId, SpawnError,
    Startup,
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
        _: &str,
        _: &str,
        _: Option<u32>,
        startup: Option<Startup>,
    ) -> Result<SipId, (SpawnError, Option<Startup>)> {
        Err((SpawnError::NotPermitted, startup))
    }

    fn spawn_protected(
        &self,
        _: &str,
        _: &str,
        _: Option<u32>,
        _: Protection,
        startup: Option<Startup>,
    ) -> Result<SipId, (SpawnError, Option<Startup>)> {
        Err((SpawnError::NotPermitted, startup))
    }

    fn events(&self) -> EventCounts {
        EventCounts::default()
    }

    fn exit_status_of(&self, _: SipId) -> Option<ExitStatus> {
        None
    }

    fn start_thread(&self, _: fn(usize), _: usize) -> Result<u64, SpawnError> {
        Err(SpawnError::TooManyThreads)
    }

    fn take_startup(&self) -> Option<Startup> {
        // Once: the handle is the SIP's first endpoint, and a second take would name what the first one took.
        if STARTUP_TAKEN.swap(true, core::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        crate::calls::startup_endpoint().map(Startup::from_end)
    }

    fn kill(&self, _: SipId) -> Result<(), KillError> {
        Err(KillError::NotPermitted)
    }

    fn process_after(&self, _: Option<SipId>) -> Option<ProcessInfo> {
        None
    }

    fn memory(&self) -> MemoryInfo {
        MemoryInfo::default()
    }

    fn current_core(&self) -> u32 {
        calls::core()
    }

    fn wait(&self, _: SipId) -> Result<(), KillError> {
        Err(KillError::NotPermitted)
    }

    fn console_write(&self, _: &str) -> Result<(), NotPermitted> {
        Err(NotPermitted)
    }

    fn cycles_are_instructions(&self) -> bool {
        calls::icount()
    }

    fn cpu(&self, _: u32) -> Option<CpuInfo> {
        None
    }

    fn channel_after(&self, _: Option<u64>) -> Option<ChannelInfo> {
        None
    }

    fn mid_protocol_drops(&self, _: &str) -> u64 {
        // The kernel's counts are not asked from ring 3 (no call for it).
        0
    }

    fn log_level(&self) -> LogFilter {
        // Not asked of the kernel yet: the level the kernel starts with. Lines below the real level are dropped
        // by the kernel anyway.
        LogFilter::Info
    }

    fn set_log_level(&self, _: LogFilter) -> Result<(), NotPermitted> {
        Err(NotPermitted)
    }

    fn run_selftests(&self, _: &str) -> Result<(u32, u32), NotPermitted> {
        Err(NotPermitted)
    }

    fn shutdown(&self) -> NotPermitted {
        NotPermitted
    }

    fn kernel_panic(&self, _: &str) -> NotPermitted {
        NotPermitted
    }

    fn connect_names(&self, core: Option<u32>, server: NameServiceServer) -> bool {
        crate::calls::names_connect(core, server)
    }

    fn claim_name(&self, _: &str, _: SipId, _: &str) -> Result<(), NameRegistryError> {
        Err(NameRegistryError::NotPermitted)
    }

    fn release_name(&self, _: &str, _: SipId) -> Result<(), NameRegistryError> {
        Err(NameRegistryError::NotPermitted)
    }

    fn broadcast_probe(&self) -> Option<u64> {
        None
    }

    fn resolve_name(&self, _: &str) -> Option<NameInfo> {
        None
    }

    fn name_after(&self, _: Option<&str>) -> Option<NameInfo> {
        None
    }

    fn replica(&self, _: u32) -> Option<ReplicaInfo> {
        None
    }
}
