//! Starting the application processors: every usable core of the core table (`cores`, from the ACPI MADT),
//! each as its own kernel instance.
//!
//! The boot core (BSP) first sends INIT to every core it will start and waits out the MP specification's 10 ms
//! once for all of them (a core stays in wait-for-STARTUP until it gets one, however long that is). Then it
//! starts them one at a time ([`start_application_processors`]): it builds the AP's per-CPU record, descriptor
//! tables, IST stacks and boot stack on the heap, writes them into the trampoline (`arch::smp_trampoline`),
//! sends STARTUP, STARTUP through its local APIC, and waits for the AP to report itself online (one at a time:
//! the trampoline holds one core's parameters). Sending INIT core by core, each followed by its own 10 ms,
//! took 2.6 of the 2.7 s that 255 cores needed to come online. A core that does not report within
//! [`START_TIMEOUT_MS`] is reported, sent INIT again (which parks it in wait-for-STARTUP, so it cannot wake up
//! later on the next core's trampoline parameters) and left out.
//!
//! Each AP ([`ap_entry`]) loads its own GDT/TSS and IDT, enables its local APIC and starts its timer with the
//! boot core's calibration (the APIC timers of one machine share a clock; measuring again would cost 10 ms of
//! PIT time per core and serialise the cores on the one PIT), creates its scheduler (boot thread + idle
//! thread), reports online, and turns its boot thread into the core's monitor (`monitor`). When nothing is ready the idle thread halts
//! until the timer tick or an IPI. Device interrupts stay routed to the boot core.
//!
//! Invariant: only the boot core writes the trampoline.

use super::monitor;
use crate::arch::vectors::{APIC_ERROR_VECTOR, APIC_SPURIOUS_VECTOR, TIMER_VECTOR};
use crate::arch::{apic, cpu, smp_trampoline};
use crate::cores::{self, Core, CoreState};
use crate::percpu::{self, PerCpu};
use crate::{interrupts, memory, sched, time};
use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use core::sync::atomic::{AtomicU64, Ordering};
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
/// Memory each running core costs beyond the boot core's: its kernel instance (record, stacks, threads), its
/// name service and its share of the inter-core lanes. Measured at about 320 KiB a core (frames in use after a
/// 255-core boot, against a one-core boot); half again as much is kept for what its first SIPs do.
const PER_CORE_BYTES: u64 = 512 * 1024;
/// Memory kept, whatever the width, for the boot core's shell and the first SIPs a user starts.
const SERVICE_RESERVE_BYTES: u64 = 8 << 20;

/// Index + 1 of the core that must panic after coming online (test hook `opt/plurality/panic-on-cpu`), or 0.
static PANIC_ON_CPU: AtomicU64 = AtomicU64::new(0);
/// Index + 1 of the core that must halt before reporting online (test hook `opt/plurality/stall-cpu`), or 0.
static STALL_CPU: AtomicU64 = AtomicU64::new(0);
/// How long after coming online that core panics: by then the boot core is at the console prompt.
const INJECTED_PANIC_DELAY_NANOS: u64 = 300_000_000;

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
    Stack(#[allow(dead_code, reason = "shown through Debug in the report")] memory::stacks::StackError),
    Trampoline(#[allow(dead_code, reason = "shown through Debug in the report")] smp_trampoline::TrampolineError),
    Ipi(#[allow(dead_code, reason = "shown through Debug in the report")] apic::IpiError),
    NoStartupResponse,
    Timeout,
    SetupFailed,
}

/// Builds the core table from the MADT (`cores`), reads the test hooks that make a core fail, and lays the
/// inter-core lanes. Call on the boot core after ACPI, before any other use of this layer.
pub fn init(machine: &crate::firmware::acpi::Machine) {
    for (name, hook, what) in [
        ("opt/plurality/panic-on-cpu", &PANIC_ON_CPU, "panic after it comes online"),
        ("opt/plurality/stall-cpu", &STALL_CPU, "halt before it reports online"),
    ] {
        if let Some(index) = crate::firmware::fw_cfg::core_index(name).filter(|i| *i != 0) {
            log::warn!("test hook: cpu {index} will {what}");
            hook.store(u64::from(index) + 1, Ordering::Relaxed);
        }
    }
    cores::init(machine);
    monitor::init();
    crate::ipc::intercore::init(cores::cores().len());
    interrupts::set_call_handler(monitor::on_call_interrupt);
}

/// Starts every other usable core, one at a time; reports each that does not start and carries on.
/// Returns how many cores run (the boot core included).
pub fn start_application_processors(regions: &MemoryRegions) -> Result<usize, SmpError> {
    let cores = cores::cores();
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

    // A core the memory cannot serve is not started: better fewer cores that run than a machine whose services
    // cannot start anywhere.
    let free = memory::frames::stats().free * 4096;
    let affordable = (free.saturating_sub(SERVICE_RESERVE_BYTES) / PER_CORE_BYTES) as usize;
    if affordable < cores.len() - 1 {
        log::warn!(
            "memory: {} MiB free serves {} of {} cores; the other {} stay offline (give the guest more with --memory)",
            free >> 20,
            affordable + 1,
            cores.len(),
            cores.len() - 1 - affordable
        );
    }
    let to_start = &cores[1..(1 + affordable).min(cores.len())];
    // INIT for all, one wait for all; the first core's start time includes that wait.
    let mut begun = time::uptime_nanos();
    for core in to_start.iter().filter(|core| core.apic_id <= apic::MAX_XAPIC_ID) {
        if let Err(e) = apic::send_ipi(core.apic_id, apic::Ipi::Init) {
            log::warn!("cpu {} (APIC id {}): INIT failed ({e:?})", core.index, core.apic_id);
        }
    }
    spin_for(INIT_DELAY_NANOS);
    for core in to_start {
        let started = start_one(core, &mut trampoline);
        if started.is_ok() {
            core.set_start_nanos(time::uptime_nanos() - begun);
        }
        begun = time::uptime_nanos();
        match started {
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

/// Starts one AP, which has had its INIT; returns the time from its first STARTUP IPI to its report.
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
        memory::stacks::Stack::new(AP_STACK_BYTES, crate::memory::frames::Use::Kernel).map_err(StartError::Stack)?;
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

    // INIT was sent to every core at once, and its delay waited out, before the first start.
    core.set_state(CoreState::Starting);
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
    crate::ring3::init_this_core();
    interrupts::load_own();
    apic::init_this_core(APIC_SPURIOUS_VECTOR, APIC_ERROR_VECTOR);
    time::start_tick(TIMER_VECTOR);
    let Some(core) = cores::cores().get(cpu.index as usize) else { cpu::halt_forever() };
    if STALL_CPU.load(Ordering::Relaxed) == u64::from(core.index) + 1 {
        cpu::halt_forever();
    }
    if let Err(e) = sched::init_this_core() {
        log::error!("cpu {}: cannot start its scheduler: {e:?}", cpu.index);
        core.set_state(CoreState::Failed);
        cpu::halt_forever();
    }
    core.set_monitor(sched::current_id().map_or(0, |t| t.0));
    core.set_state(CoreState::Online);
    x86_64::instructions::interrupts::enable();
    if PANIC_ON_CPU.load(Ordering::Relaxed) == u64::from(core.index) + 1 {
        sched::sleep(INJECTED_PANIC_DELAY_NANOS);
        panic!("deliberate panic on cpu {} (test hook opt/plurality/panic-on-cpu)", core.index);
    }
    monitor::run(core)
}
