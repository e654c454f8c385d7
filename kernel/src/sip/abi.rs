//! The ring-0 implementation of the kernel ABI: direct calls, each in kernel mode.
//!
//! Every entry switches to kernel mode first (allocations on the kernel heap, a panic is the kernel's), checks
//! the caller's capabilities (from the kernel's policy) where the call is privileged, bounds every size it is
//! given (arguments, log lines, console text), and returns plain values (see `sip_runtime::abi`). A caller can
//! name every method with any arguments: none of them trusts a value the SIP chose beyond its type.

use super::{EndReason, prefix};
use crate::exec::{self, KernelAccount};
use crate::{arch, memory, sched, time};
use channels::ledger::Holder;
use sip_runtime::{
    Broadcast, Capability, ChannelInfo, CpuInfo, EndHolder, EventCounts, ExitStatus, KernelAbi, KillError, LogFilter,
    LogLevel, MAX_LOG_LINE, MemoryInfo, NameInfo, NameRegistryError, NameServiceServer, NotPermitted, ProbeReport,
    ProcessInfo, Protection, RestartError, SipId, SpawnError, Startup,
};

/// Logs `message` for the calling SIP at `level`, prefixed with its name, within its log budget; a message longer
/// than `MAX_LOG_LINE` is cut there and says how much more there was (`more`: bytes the caller already cut off).
/// Call in kernel mode.
pub fn log_for_caller(level: LogLevel, message: &str, more: usize) {
    let level = match level {
        LogLevel::Error => log::Level::Error,
        LogLevel::Warn => log::Level::Warn,
        LogLevel::Info => log::Level::Info,
        LogLevel::Debug => log::Level::Debug,
    };
    if level > log::max_level() {
        return;
    }
    let Some(dropped) = super::log_allowed() else { return };
    let id = exec::current_sip().unwrap_or(0);
    let name = super::manifest_of(id).map_or("?", |m| m.name);
    if dropped > 0 {
        log::warn!(target: "sip", "[{name}#{id}] {dropped} log lines beyond its rate were dropped");
    }
    let line = prefix(message, MAX_LOG_LINE);
    match message.len() - line.len() + more {
        0 => log::log!(target: "sip", level, "[{name}#{id}] {line}"),
        cut => log::log!(target: "sip", level, "[{name}#{id}] {line}... ({cut} more bytes)"),
    }
}

/// The ABI object every ring-0 SIP gets.
pub struct Ring0Abi;

/// The one instance.
pub static RING0: Ring0Abi = Ring0Abi;

/// Whether the kernel's policy grants the calling SIP `capability`.
fn caller_may(capability: Capability) -> bool {
    super::caller_may(capability)
}

/// The stack of the kernel thread that runs the self-tests for a ring-3 caller: what a ring-0 caller's has (the
/// shell's 64 KiB and the kernel reserve).
const SELFTEST_STACK: u64 = 72 * 1024;

/// `run_selftests` for a ring-3 SIP (its `KERNEL` call): the capability checked as for a ring-0 caller, then the
/// tests on a kernel thread of their own on this core, because the caller's kernel stack (16 KiB) is too small
/// for them, while the caller waits. `NotPermitted` also if no thread could be started for them (logged). A kill
/// of the caller meanwhile takes effect once the tests are done, as for a ring-0 caller, whose tests run on its
/// own stack in kernel mode.
pub fn run_selftests_on_own_thread(filter: &str) -> Result<(u32, u32), NotPermitted> {
    let _kernel = KernelAccount::enter();
    if !caller_may(Capability::SystemAdmin) {
        return Err(NotPermitted);
    }
    let Some(caller) = sched::current_id() else { return Err(NotPermitted) };
    let summary = alloc::sync::Arc::new(spin::Mutex::new(None));
    let (filter, done) = (alloc::string::String::from(filter), summary.clone());
    let started = sched::spawn(exec::Account::Kernel, SELFTEST_STACK, move || {
        let run = crate::selftest::run(&filter, crate::console::print);
        *done.lock() = Some((run.passed as u32, run.failed as u32));
        sched::wake(caller);
    });
    if let Err(e) = started {
        log::warn!("self-tests for a ring-3 caller: no thread to run them on ({e:?})");
        return Err(NotPermitted);
    }
    loop {
        if let Some(summary) = summary.lock().take() {
            return Ok(summary);
        }
        // Not cuttable: the summary's cell is shared with the tests' thread, and this stack holds a reference.
        sched::block_current();
    }
}

/// Console text is written in pieces of at most this many bytes, the console lock taken for each: a long
/// text never holds the console (and its core's interrupts) for long.
const CONSOLE_PIECE: usize = 256;

impl KernelAbi for Ring0Abi {
    fn yield_now(&self) {
        // No kernel-mode guard of its own: the scheduler enters kernel mode for exactly the part that needs it.
        sched::yield_now();
    }

    fn sleep(&self, nanos: u64) {
        let _kernel = KernelAccount::enter();
        sched::sleep(nanos);
    }

    fn now(&self) -> u64 {
        time::uptime_nanos()
    }

    fn wake_at(&self, deadline: u64) -> bool {
        let _kernel = KernelAccount::enter();
        crate::ipc::tasks::wake_polled_at(deadline)
    }

    fn cycles(&self) -> u64 {
        arch::cpu::rdtsc()
    }

    fn exit(&self, status: ExitStatus) -> ! {
        super::end_current(EndReason::Exited(status))
    }

    fn log(&self, level: LogLevel, message: &str) {
        let _kernel = KernelAccount::enter();
        log_for_caller(level, message, 0);
    }

    fn spawn(
        &self,
        name: &str,
        args: &str,
        core: Option<u32>,
        startup: Option<Startup>,
    ) -> Result<SipId, (SpawnError, Option<Startup>)> {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::ProcessControl) {
            return Err((SpawnError::NotPermitted, startup));
        }
        super::spawn_with(name, args, core, startup)
    }

    fn spawn_protected(
        &self,
        name: &str,
        args: &str,
        core: Option<u32>,
        protection: Protection,
        startup: Option<Startup>,
    ) -> Result<SipId, (SpawnError, Option<Startup>)> {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::ProcessControl) {
            return Err((SpawnError::NotPermitted, startup));
        }
        super::spawn_protected(name, args, core, protection, startup)
    }

    fn events(&self) -> EventCounts {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::SystemInfo) {
            return EventCounts::default();
        }
        let mut sum = EventCounts { ipis: crate::arch::apic::ipis_sent(), ..EventCounts::default() };
        for cpu in (0..).map_while(crate::percpu::by_index) {
            let read = |counter: &core::sync::atomic::AtomicU64| counter.load(core::sync::atomic::Ordering::Relaxed);
            sum.ring3_entries += cpu.ring3_entries();
            sum.cr3_writes += read(&cpu.cr3_writes);
            // Without PCID every CR3 write flushes the whole TLB.
            sum.tlb_flushes += read(&cpu.tlb_flushes) + read(&cpu.cr3_writes);
            sum.page_faults += read(&cpu.page_faults);
        }
        sum
    }

    fn exit_status_of(&self, id: SipId) -> Option<ExitStatus> {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::SystemInfo) {
            return None;
        }
        super::exit_status_of(id.0)
    }

    fn start_thread(&self, entry: fn(usize), argument: usize) -> Result<u64, SpawnError> {
        super::start_thread(entry, argument)
    }

    fn take_startup(&self) -> Option<Startup> {
        let _kernel = KernelAccount::enter();
        super::take_startup()
    }

    fn kill(&self, id: SipId) -> Result<(), KillError> {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::ProcessControl) {
            return Err(KillError::NotPermitted);
        }
        super::kill(id.0)
    }

    fn process_after(&self, after: Option<SipId>) -> Option<ProcessInfo> {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::SystemInfo) {
            return None;
        }
        let mut cursor = after.map(|a| a.0);
        loop {
            let id = super::next_after(cursor)?;
            if let Some(info) = super::info(id) {
                return Some(info);
            }
            cursor = Some(id); // ended in between: skip it
        }
    }

    fn memory(&self) -> MemoryInfo {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::SystemInfo) {
            return MemoryInfo::default();
        }
        let frames = memory::frames::stats();
        let heap = memory::heap::stats();
        let (exchange_blocks, exchange_used) = crate::ipc::exchange_heap::totals();
        MemoryInfo {
            frames_total: frames.total,
            frames_free: frames.free,
            page_table_frames: frames.page_tables,
            kernel_heap_mapped: heap.mapped,
            kernel_heap_limit: heap.limit,
            arenas_live: crate::memory::arena::live(),
            kernel_heap_used: heap.used,
            kernel_heap_free: heap.free,
            exchange_used,
            exchange_blocks,
            exchange_mapped: crate::ipc::exchange_heap::mapped(),
            small_heaps_mapped: crate::memory::small_heap::mapped(),
        }
    }

    fn current_core(&self) -> u32 {
        crate::percpu::current_index()
    }

    fn wait(&self, id: SipId) -> Result<(), KillError> {
        let _kernel = KernelAccount::enter();
        if !super::is_alive(id.0) {
            return Err(KillError::NoSuchProcess);
        }
        super::wait(id.0);
        Ok(())
    }

    fn wake_on_end(&self, id: SipId) -> Option<bool> {
        let _kernel = KernelAccount::enter();
        let token = crate::ipc::tasks::polled_token()?;
        Some(super::wake_task_on_end(id.0, token))
    }

    fn console_write(&self, text: &str) -> Result<(), NotPermitted> {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::Console) {
            return Err(NotPermitted);
        }
        let mut rest = text;
        while !rest.is_empty() {
            let piece = match prefix(rest, CONSOLE_PIECE) {
                "" => &rest[..rest.chars().next().map_or(rest.len(), char::len_utf8)],
                piece => piece,
            };
            crate::print!("{piece}");
            rest = &rest[piece.len()..];
        }
        Ok(())
    }

    fn cycles_are_instructions(&self) -> bool {
        *ICOUNT.call_once(crate::firmware::fw_cfg::icount)
    }

    fn cpu(&self, index: u32) -> Option<CpuInfo> {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::SystemInfo) {
            return None;
        }
        let core = crate::cores::cores().get(index as usize)?;
        let record = core.record().filter(|_| core.state() == crate::cores::CoreState::Online);
        let census = record.map(sched::census_of);
        Some(CpuInfo {
            index,
            apic_id: core.apic_id,
            acpi_id: core.acpi_id,
            online: record.is_some(),
            boot: index == 0,
            timer_ticks: record.map_or(0, |r| r.timer_ticks.load(core::sync::atomic::Ordering::Relaxed)),
            timer_hz: crate::time::TIMER_HZ as u32,
            run_queue: census.map_or(0, |c| c.ready as u32),
            blocked: census.map_or(0, |c| c.blocked as u32),
            start_nanos: core.start_nanos(),
        })
    }

    fn mid_protocol_drops(&self, contract: &str) -> u64 {
        let _kernel = KernelAccount::enter();
        crate::ipc::exchange_heap::mid_protocol_drops(contract)
    }

    fn channel_after(&self, after: Option<u64>) -> Option<ChannelInfo> {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::SystemInfo) {
            return None;
        }
        let holder = |side: Option<Holder>| match side {
            None => EndHolder::Closed,
            Some(Holder::Ring(_) | Holder::Sealed(_)) => EndHolder::InTransit,
            Some(Holder::Owner(owner)) => owner.sip_id().map_or(EndHolder::Kernel, |id| EndHolder::Sip(SipId(id))),
        };
        crate::ipc::exchange_heap::channels()
            .into_iter()
            .find(|(serial, _)| after.is_none_or(|a| *serial > a))
            .map(|(serial, [a, b])| ChannelInfo { id: serial, ends: [holder(a), holder(b)] })
    }

    fn log_level(&self) -> LogFilter {
        match log::max_level() {
            log::LevelFilter::Off => LogFilter::Off,
            log::LevelFilter::Error => LogFilter::Error,
            log::LevelFilter::Warn => LogFilter::Warn,
            log::LevelFilter::Info => LogFilter::Info,
            log::LevelFilter::Debug => LogFilter::Debug,
            log::LevelFilter::Trace => LogFilter::Trace,
        }
    }

    fn set_log_level(&self, level: LogFilter) -> Result<(), NotPermitted> {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::SystemAdmin) {
            return Err(NotPermitted);
        }
        log::set_max_level(match level {
            LogFilter::Off => log::LevelFilter::Off,
            LogFilter::Error => log::LevelFilter::Error,
            LogFilter::Warn => log::LevelFilter::Warn,
            LogFilter::Info => log::LevelFilter::Info,
            LogFilter::Debug => log::LevelFilter::Debug,
            LogFilter::Trace => log::LevelFilter::Trace,
        });
        Ok(())
    }

    fn run_selftests(&self, filter: &str) -> Result<(u32, u32), NotPermitted> {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::SystemAdmin) {
            return Err(NotPermitted);
        }
        let summary = crate::selftest::run(filter, crate::console::print);
        Ok((summary.passed as u32, summary.failed as u32))
    }

    fn shutdown(&self) -> NotPermitted {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::SystemAdmin) {
            return NotPermitted;
        }
        crate::power::shutdown()
    }

    fn kernel_panic(&self, message: &str) -> NotPermitted {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::SystemAdmin) {
            return NotPermitted;
        }
        panic!("{message}");
    }

    fn replica(&self, core: u32) -> Option<sip_runtime::ReplicaInfo> {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::SystemInfo) {
            return None;
        }
        crate::cores::cores().get(core as usize)?;
        let summary = super::replica::summary(core)?;
        let (names_version, names_digest, names) = super::name_registry::summary(core)?;
        Some(sip_runtime::ReplicaInfo {
            core,
            online: crate::cores::is_online(core),
            version: summary.version,
            digest: summary.digest,
            entries: summary.entries,
            names_version,
            names_digest,
            names,
        })
    }

    fn connect_names(&self, core: Option<u32>, server: NameServiceServer) -> bool {
        let _kernel = KernelAccount::enter();
        match exec::current_sip() {
            Some(sip) => super::names::connect(sip, core, server),
            // A kernel thread has no SIP to connect for; the end closes with the kernel's drop.
            None => false,
        }
    }

    fn restart_names(&self, protection: Protection) -> Result<Protection, RestartError> {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::SystemAdmin) {
            return Err(RestartError::NotPermitted);
        }
        super::names::restart(protection)
    }

    fn claim_name(&self, name: &str, sip: SipId, contract: &str) -> Result<(), NameRegistryError> {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::NameRegistry) {
            return Err(NameRegistryError::NotPermitted);
        }
        super::name_registry::claim(name, sip.0, contract)
    }

    fn release_name(&self, name: &str, sip: SipId) -> Result<(), NameRegistryError> {
        let _kernel = KernelAccount::enter();
        if !caller_may(Capability::NameRegistry) {
            return Err(NameRegistryError::NotPermitted);
        }
        super::name_registry::release(name, sip.0)
    }

    fn broadcast_probe(&self, scheme: Broadcast) -> Option<ProbeReport> {
        let _kernel = KernelAccount::enter();
        // One call makes every core take two messages: not for anyone to repeat at will.
        if !caller_may(Capability::SystemInfo) {
            return None;
        }
        let cost = crate::ipc::intercore::probe_all(match scheme {
            Broadcast::OneByOne => crate::ipc::intercore::Scheme::OneByOne,
            Broadcast::Tree => crate::ipc::intercore::Scheme::Tree,
        })?;
        Some(ProbeReport { cycles: cost.cycles, messages: cost.messages, busiest: cost.busiest })
    }

    fn resolve_name(&self, name: &str) -> Option<NameInfo> {
        let _kernel = KernelAccount::enter();
        super::name_registry::resolve(name)
    }

    fn name_after(&self, after: Option<&str>) -> Option<NameInfo> {
        let _kernel = KernelAccount::enter();
        super::name_registry::after(after)
    }
}

static ICOUNT: spin::Once<bool> = spin::Once::new();
