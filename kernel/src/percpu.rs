//! Per-CPU data, reached through the GS base register from the first line of the kernel on.
//!
//! Every core gets one [`PerCpu`] that only it writes; other cores may read its counters. The GS base of a core
//! points at its record, whose first word points at itself, so `current()` is one `mov` from `gs:0`. The boot
//! core's record is static (it is needed before the heap exists); each application processor gets one built on
//! the heap by the boot core ([`new_ap`], leaked: a core never goes away) before the AP starts, so the AP's
//! trampoline can point GS at it before the first line of Rust runs.
//!
//! Every record is also listed by its dense index ([`by_index`]) so that reports (`cpus`) and shutdown can reach
//! all cores. Another core may read a record's atomics and briefly take its locks for a report; only the owning
//! core changes its scheduler's queues.

use crate::sched::Scheduler;
use crate::sync::IrqMutex;
use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use cpu_rings::{CpuTables, IstStacks};
use x86_64::VirtAddr;
use x86_64::registers::model_specific::GsBase;

/// One core's private kernel state.
#[repr(C)]
pub struct PerCpu {
    /// Points at this record; must stay the first field (read as `gs:0`). Atomic because it is set after the
    /// record has its final address, through a shared reference.
    self_ptr: AtomicPtr<PerCpu>,
    /// Dense core number: 0 is the boot core.
    pub index: u32,
    /// Local APIC ID of this core.
    pub apic_id: u32,
    /// Local APIC timer interrupts taken on this core.
    pub timer_ticks: AtomicU64,
    /// This core's GDT/TSS, loaded by `cpu-rings`.
    pub tables: &'static CpuTables,
    /// This core's scheduler (used only by this core; the lock keeps its own interrupt handlers out).
    pub scheduler: IrqMutex<Scheduler>,
    /// Who the running thread works for: 0 = kernel, SIP id + 1 otherwise (`sched::owner_code`).
    pub current_owner: AtomicU64,
    /// The running thread's kernel-mode nesting depth (`exec`); saved per thread on every switch.
    pub kernel_depth: AtomicU32,
    /// Address of the running thread's SIP arena (0 for kernel threads); the allocator routes by it.
    pub current_arena: AtomicUsize,
    /// The running thread's stack limit: for a SIP thread the upper end of its kernel reserve (stack bottom +
    /// `sched::stack::KERNEL_RESERVE`), below which its own code must not go; 0 for kernel threads. Kept by the
    /// switch; read on every kernel entry (`exec`), by the allocator in SIP mode and by the timer tick.
    pub stack_limit: AtomicU64,
    /// The SIPs this core runs.
    pub sips: IrqMutex<crate::sip::Table>,
    /// Id of the thread running on this core (0 before the scheduler starts); kept by the switch.
    pub current_thread: AtomicU64,
    /// Exited threads waiting to be freed by the next thread to run (a hint read without the scheduler lock).
    pub dead_threads: AtomicUsize,
    /// The running thread is doomed (`sched::doom`); kept by the switch, read when it leaves kernel mode.
    pub current_doomed: AtomicBool,
}

/// Most cores the kernel runs on; MADT entries beyond it are reported and left out.
pub const MAX_CPUS: usize = 64;

/// Every record by dense index (null: none yet).
static RECORDS: [AtomicPtr<PerCpu>; MAX_CPUS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

impl PerCpu {
    /// A fresh record for core `index` with its tables; its self pointer is set once it has its final address.
    fn new(index: u32, apic_id: u32, tables: &'static CpuTables) -> Self {
        Self {
            self_ptr: AtomicPtr::new(core::ptr::null_mut()),
            index,
            apic_id,
            timer_ticks: AtomicU64::new(0),
            tables,
            scheduler: IrqMutex::new(Scheduler::new()),
            current_owner: AtomicU64::new(0),
            kernel_depth: AtomicU32::new(0),
            current_arena: AtomicUsize::new(0),
            stack_limit: AtomicU64::new(0),
            sips: IrqMutex::new(crate::sip::Table::new()),
            current_thread: AtomicU64::new(0),
            dead_threads: AtomicUsize::new(0),
            current_doomed: AtomicBool::new(false),
        }
    }
}

static BSP_IST_STACKS: IstStacks = IstStacks::new();
static mut BSP_TABLES: CpuTables = CpuTables::empty();
static BSP: spin::Once<PerCpu> = spin::Once::new();
static BSP_READY: AtomicBool = AtomicBool::new(false);

/// Builds and loads the boot core's GDT/TSS and points GS at its per-CPU record. Call once, first thing.
pub fn init_bsp() {
    assert!(!BSP_READY.load(Ordering::Relaxed), "percpu::init_bsp called twice");
    // SAFETY: runs once on the boot core before anything else can reach BSP_TABLES (the assert above), so the
    // mutable reference is unique.
    let tables = unsafe { &mut *core::ptr::addr_of_mut!(BSP_TABLES) };
    let tables = tables.init(&BSP_IST_STACKS);
    x86_64::instructions::interrupts::disable();
    // SAFETY: first load of the boot core's tables, on the boot core, interrupts off; the IST stacks are the
    // boot core's own.
    unsafe { tables.load() };
    let record = BSP.call_once(|| PerCpu::new(0, crate::arch::cpu::apic_id_from_cpuid(), tables));
    let addr = record as *const PerCpu;
    record.self_ptr.store(addr.cast_mut(), Ordering::Release);
    RECORDS[0].store(addr.cast_mut(), Ordering::Release);
    GsBase::write(VirtAddr::from_ptr(addr));
    BSP_READY.store(true, Ordering::Release);
}

/// Why an application processor's record could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApRecordError {
    /// The index is 0 (the boot core's), beyond [`MAX_CPUS`], or taken.
    BadIndex(u32),
}

/// Builds (on the boot core, on the heap, leaked) the record, GDT/TSS and IST stacks of the application
/// processor with dense `index` and local APIC ID `apic_id`, and lists it. The AP loads them with [`enter_ap`].
pub fn new_ap(index: u32, apic_id: u32) -> Result<&'static PerCpu, ApRecordError> {
    let slot = RECORDS.get(index as usize).filter(|_| index != 0).ok_or(ApRecordError::BadIndex(index))?;
    if !slot.load(Ordering::Acquire).is_null() {
        return Err(ApRecordError::BadIndex(index));
    }
    // SAFETY: `IstStacks` is an `UnsafeCell` around plain bytes, for which all zeroes is a valid value. Built
    // zeroed in place: the 80 KiB value never passes through a stack.
    let stacks: &'static IstStacks = Box::leak(unsafe { Box::<IstStacks>::new_zeroed().assume_init() });
    let tables = Box::leak(Box::new(CpuTables::empty())).init(stacks);
    let record = Box::leak(Box::new(PerCpu::new(index, apic_id, tables)));
    let addr = record as *mut PerCpu;
    record.self_ptr.store(addr, Ordering::Release);
    slot.store(record as *mut PerCpu, Ordering::Release);
    Ok(record)
}

/// Loads an application processor's GDT/TSS and points GS at its record. The first thing an AP does.
///
/// # Safety
/// Call once, on the AP whose record `record` is (made by [`new_ap`] for this core's APIC ID), with interrupts
/// disabled.
pub unsafe fn enter_ap(record: &'static PerCpu) {
    // SAFETY: per the caller: this core, once, interrupts off; the IST stacks were made for this record alone.
    unsafe { record.tables.load() };
    GsBase::write(VirtAddr::from_ptr(record));
}

/// The record of the core with dense `index`, if one was made.
pub fn by_index(index: u32) -> Option<&'static PerCpu> {
    let ptr = RECORDS.get(index as usize)?.load(Ordering::Acquire);
    // SAFETY: non-null entries point at leaked or static records, which live for the whole boot and are Sync.
    (!ptr.is_null()).then(|| unsafe { &*ptr })
}

/// The calling core's record, or `None` before [`init_bsp`] ran.
#[inline]
pub fn try_current() -> Option<&'static PerCpu> {
    if !BSP_READY.load(Ordering::Acquire) {
        return None;
    }
    let ptr: *const PerCpu;
    // SAFETY: once BSP_READY is set, GS base of every running core points at a live 'static PerCpu whose first
    // word is its own address; reading it has no side effects.
    unsafe { core::arch::asm!("mov {}, gs:[0]", out(reg) ptr, options(nostack, preserves_flags, readonly)) };
    // SAFETY: see above: the pointer is to a 'static, Sync record.
    Some(unsafe { &*ptr })
}

/// The calling core's record. Panics if called before [`init_bsp`] (a kernel bug).
#[inline]
pub fn current() -> &'static PerCpu {
    try_current().unwrap_or_else(|| panic!("per-CPU data used before percpu::init_bsp"))
}

/// The calling core's dense index for reports; falls back to the APIC ID before per-CPU data exists.
#[inline]
pub fn current_index() -> u32 {
    try_current().map_or_else(crate::arch::cpu::apic_id_from_cpuid, |c| c.index)
}

crate::selftest! {
    /// GS points at a record naming itself, of the core we run on.
    fn percpu_record_is_self_consistent() {
        let me = current();
        crate::check!(core::ptr::eq(me.self_ptr.load(Ordering::Relaxed), me), "gs:0 does not point at the record");
        crate::check!(me.apic_id == crate::arch::cpu::apic_id_from_cpuid(), "APIC ID differs from CPUID");
        crate::check!(me.apic_id == crate::arch::apic::id(), "APIC ID differs from the local APIC's ID register");
        crate::check!(GsBase::read().as_u64() == me as *const PerCpu as u64, "GS base is not the record");
        Ok(())
    }
}

crate::selftest! {
    /// The double-fault, page-fault, NMI, machine-check and device-interrupt handlers have IST stacks of their own.
    fn ist_stacks_are_installed() {
        use cpu_rings::IstSlot;
        let tables = current().tables;
        let mut tops = [0u64; IstSlot::ALL.len()];
        for (i, slot) in IstSlot::ALL.into_iter().enumerate() {
            tops[i] = tables.ist_top(slot);
            crate::check!(tops[i] != 0, "IST slot {slot:?} has no stack");
        }
        for i in 1..tops.len() {
            crate::check!(!tops[..i].contains(&tops[i]), "two IST slots share one stack");
        }
        Ok(())
    }
}
