//! Per-CPU data, reached through the GS base register from the first line of the kernel on: each core's
//! identity, the per-core words the layers above keep, and one slot for each higher layer's per-core state.
//!
//! This layer knows nothing of the layers above it. They keep their per-core state here in two ways: plain
//! atomic words, declared in [`PerCpu`] and documented with the layer that keeps them (the account and stack
//! limit of `exec`, the running thread of `sched`, the tick count of `time`), and typed slots ([`CoreLocal`])
//! for state of a type this layer cannot name (a core's scheduler, its process table). A slot is storage inline
//! in the record, so reaching it costs nothing more than a field; its value is made by the owning layer's
//! constructor, which boot hands to [`init_bsp`] and which runs for every record before the record can be
//! reached.
//!
//! Every core gets one [`PerCpu`] that only it writes; other cores may read its counters. The GS base of a core
//! points at its record, whose first word points at itself, so `current()` is one `mov` from `gs:0`. The boot
//! core's record is static (it is needed before the heap exists); each application processor gets one built on
//! the heap by the boot core ([`new_ap`], leaked: a core never goes away) before the AP starts, so the AP's
//! trampoline can point GS at it before the first line of Rust runs.
//!
//! Every record is also listed by its dense index ([`by_index`]) so that reports (`cpus`) and shutdown can reach
//! all cores. Another core may read a record's atomics and briefly take the locks in its slots for a report;
//! only the owning core changes its scheduler's queues.

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
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
    /// `cpu_rings::syscall`'s scratch words (the kernel stack of an entry from ring 3, the ring-3 stack pointer
    /// of a `syscall`, the address of this core's TSS `RSP0`, the count of entries from ring 3), at the offset its
    /// entry stubs read through GS;
    /// written by those stubs, `cpu_rings::run_user` and the switch to a ring-3 thread
    /// ([`PerCpu::set_ring3_kernel_stack`]).
    ring_scratch: [AtomicU64; 4],
    /// Dense core number: 0 is the boot core.
    pub index: u32,
    /// Local APIC ID of this core.
    pub apic_id: u32,
    /// This core's GDT/TSS, loaded by `cpu-rings`.
    pub tables: &'static CpuTables,
    /// The slots of [`CoreLocal`] values, by [`LocalName`]; every one initialised before the record is reachable.
    locals: [LocalStorage; LOCALS],
    /// `time`: local APIC timer interrupts taken on this core.
    pub timer_ticks: AtomicU64,
    /// `exec`: who the running thread works for, as `exec::Account::word` (0 = kernel, SIP id + 1 otherwise).
    pub current_owner: AtomicU64,
    /// `exec`: the running thread's kernel-mode nesting depth; saved per thread on every switch.
    pub kernel_depth: AtomicU32,
    /// `exec`: address of the running thread's SIP arena (0 for kernel threads); the allocator routes by it.
    pub current_arena: AtomicUsize,
    /// `exec`: the running thread's stack limit: for a SIP thread the upper end of its kernel reserve (stack bottom +
    /// `memory::stacks::KERNEL_RESERVE`), below which its own code must not go; 0 for kernel threads. Kept by the
    /// switch; read on every kernel entry (`exec`), by the allocator in SIP mode and by the timer tick.
    pub stack_limit: AtomicU64,
    /// `sched`: id of the thread running on this core (0 before the scheduler starts); kept by the switch.
    pub current_thread: AtomicU64,
    /// `sched`: exited threads waiting to be freed by the next thread to run (a hint read without the scheduler
    /// lock).
    pub dead_threads: AtomicUsize,
    /// `exec`: the running thread is doomed (`sched::doom`); kept by the switch, read when it leaves kernel mode.
    pub current_doomed: AtomicBool,
    /// `ipc::tasks`: the id of this core's active task runner while it polls a task (0 otherwise): a timer tick
    /// that finds it set while other tasks wait hands them to another runner (`sched::install_runner_handover`).
    pub polling_runner: AtomicU64,
    /// `ipc::tasks`: whether tasks of this core are ready to be polled (read by the timer tick, as above).
    pub tasks_ready: AtomicBool,
    /// `ipc::tasks`: the number of the task the active runner polls (0 otherwise), with `tasks::POLLED_WOKEN`
    /// once a wake for it came during the poll: a task's wake of itself (a yield) costs one compare-and-swap.
    pub polled_task: AtomicU64,
    /// `ring3`: CR3 writes on this core.
    pub cr3_writes: AtomicU64,
    /// `ring3` and `sip`: explicit whole-TLB flushes on this core (besides CR3 writes).
    pub tlb_flushes: AtomicU64,
    /// `interrupts`: page faults taken on this core.
    pub page_faults: AtomicU64,
    /// `sched`: the level-4 table CR3 holds (physical address; 0: the kernel's own, loaded at boot). A switch to
    /// a ring-3 thread of another address space changes it; kernel threads and ring-0 SIPs run in whatever is
    /// loaded, as the kernel half is the same in all.
    pub loaded_space: AtomicU64,
    /// `ipc::exchange_heap`: the ring-3 SIP (id + 1) whose channel call the kernel is performing, with interrupts
    /// off, so the exchange acts for it; 0 otherwise.
    pub acting_for: AtomicU64,
    /// `sip`: where the handle tables of some of this core's ring-3 SIPs are, so that their channel calls reach
    /// them without the core's SIP table (its lock and a search): SIP `id`'s entry, if any, is at `id %
    /// HANDLE_CACHE` (several, so that SIPs that take turns, as a client and its server do, keep theirs).
    pub handles: [HandleCacheEntry; HANDLE_CACHE],
    /// `sched`: the thread (id) whose record already holds the kernel stack for entries from ring 3 that
    /// [`PerCpu::ring3_noted_stack`] names, so that noting it again costs no lock.
    pub ring3_noted_thread: AtomicU64,
    /// `sched`: that stack.
    pub ring3_noted_stack: AtomicU64,
}

/// Entries of [`PerCpu::handles`].
pub const HANDLE_CACHE: usize = 8;

/// One entry of [`PerCpu::handles`].
pub struct HandleCacheEntry {
    /// The ring-3 SIP (id + 1; 0: none) whose handle table is at `at`; cleared when that SIP leaves the core's
    /// SIP table.
    pub of: AtomicU64,
    /// The address of its handle table.
    pub at: AtomicUsize,
}

// The syscall entry finds its scratch words through GS at a fixed offset.
const _: () = assert!(
    core::mem::offset_of!(PerCpu, ring_scratch) == cpu_rings::syscall::SCRATCH_OFFSET
        && size_of::<[AtomicU64; 4]>() == size_of::<cpu_rings::syscall::RingScratch>()
);

/// Most cores the kernel runs on; MADT entries beyond it are reported and left out.
pub const MAX_CPUS: usize = 256;

/// Every record by dense index (null: none yet).
static RECORDS: [AtomicPtr<PerCpu>; MAX_CPUS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

impl PerCpu {
    /// A fresh record for core `index` with its tables; its self pointer is set once it has its final address.
    fn new(index: u32, apic_id: u32, tables: &'static CpuTables) -> Self {
        Self {
            self_ptr: AtomicPtr::new(core::ptr::null_mut()),
            ring_scratch: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(tables.rsp0_slot()), AtomicU64::new(0)],
            index,
            apic_id,
            tables,
            locals: [const { LocalStorage(UnsafeCell::new(MaybeUninit::uninit())) }; LOCALS],
            timer_ticks: AtomicU64::new(0),
            current_owner: AtomicU64::new(0),
            kernel_depth: AtomicU32::new(0),
            current_arena: AtomicUsize::new(0),
            stack_limit: AtomicU64::new(0),
            current_thread: AtomicU64::new(0),
            dead_threads: AtomicUsize::new(0),
            current_doomed: AtomicBool::new(false),
            polling_runner: AtomicU64::new(0),
            tasks_ready: AtomicBool::new(false),
            polled_task: AtomicU64::new(0),
            loaded_space: AtomicU64::new(0),
            acting_for: AtomicU64::new(0),
            handles: [const { HandleCacheEntry { of: AtomicU64::new(0), at: AtomicUsize::new(0) } }; HANDLE_CACHE],
            ring3_noted_thread: AtomicU64::new(0),
            ring3_noted_stack: AtomicU64::new(0),
            cr3_writes: AtomicU64::new(0),
            tlb_flushes: AtomicU64::new(0),
            page_faults: AtomicU64::new(0),
        }
    }

    /// Entries into the kernel from ring 3 on this core (calls, interrupts, exceptions), counted by the entry
    /// stubs in the scratch words.
    pub fn ring3_entries(&self) -> u64 {
        self.ring_scratch[3].load(Ordering::Relaxed)
    }

    /// Counts one event in a counter of this record (this core's alone: a plain add, no locked instruction).
    #[inline(always)]
    pub fn count(counter: &AtomicU64) {
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// The kernel stack of the last entry from ring 3 on this core: where `cpu_rings::run_user` left its frame
    /// for the ring-3 thread that ran last.
    pub fn ring3_kernel_stack(&self) -> u64 {
        self.ring_scratch[0].load(Ordering::Relaxed)
    }

    /// Makes `top` the kernel stack of entries from ring 3 on this core: both the `syscall` stack and `RSP0`
    /// (the switch to a ring-3 thread gives it back its own).
    ///
    /// # Safety
    /// Call on this record's core with interrupts off; `top` is a stack that the thread about to run (and only
    /// it) enters ring 0 on, mapped while that thread lives.
    pub unsafe fn set_ring3_kernel_stack(&self, top: u64) {
        self.ring_scratch[0].store(top, Ordering::Relaxed);
        // SAFETY: the caller's contract is `set_kernel_stack`'s.
        unsafe { self.tables.set_kernel_stack(top) };
    }
}

/// The slots of [`PerCpu`] for state of higher layers: one name per layer that keeps a [`CoreLocal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalName {
    /// `sched`: the core's scheduler.
    Scheduler,
    /// `sip`: the core's process table.
    Processes,
}

/// How many [`LocalName`]s there are.
const LOCALS: usize = 2;

/// Bytes of one slot: room for the largest per-core value of a higher layer (a scheduler).
const LOCAL_BYTES: usize = 256;
/// Alignment of every slot.
const LOCAL_ALIGN: usize = 64;

/// One slot's storage: written once, by its constructor, before the record is reachable; read only as the `T`
/// of its [`CoreLocal`] from then on.
#[repr(C, align(64))]
struct LocalStorage(UnsafeCell<MaybeUninit<[u8; LOCAL_BYTES]>>);

// SAFETY: the bytes are written only while the record is being made (by one core, before anyone else can reach
// the record) and afterwards only reached as `&T` through a `CoreLocal<T>`, which requires `T: Sync`.
unsafe impl Sync for LocalStorage {}

/// A value of type `T` per core, kept by a higher layer in the slot `name` of every core's record: the layer's
/// typed handle on state this layer cannot name. Reaching it is a field access on the record.
pub struct CoreLocal<T: 'static> {
    name: LocalName,
    make: fn() -> T,
}

impl<T: Sync + 'static> CoreLocal<T> {
    /// The handle on slot `name`, whose value on each core `make` builds when the core's record is made.
    ///
    /// # Safety
    /// No other `CoreLocal` in the kernel uses `name`, so every value stored in that slot is a `T`.
    pub const unsafe fn new(name: LocalName, make: fn() -> T) -> Self {
        assert!(size_of::<T>() <= LOCAL_BYTES && align_of::<T>() <= LOCAL_ALIGN, "a per-core value outgrows its slot");
        Self { name, make }
    }

    /// The value of core `cpu`.
    ///
    /// A cast of references, not a dereference of a raw pointer: the alignment is a property of the storage's
    /// type, with nothing to check at run time (a raw-pointer dereference is checked on every call, and this is
    /// on every context switch).
    #[inline(always)]
    pub fn get(&self, cpu: &PerCpu) -> &T {
        let storage: &LocalStorage = &cpu.locals[self.name as usize];
        // Every slot of a reachable record holds the value its constructor made (`init_bsp` refuses a list that
        // does not cover every name once; `new_ap` uses the same list).
        // SAFETY: the slot's only `CoreLocal` is this one (`new`'s contract), so the value is a `T`; the storage
        // is 64-byte aligned and large enough (checked in `new`), and `T: Sync`.
        unsafe { core::mem::transmute::<&LocalStorage, &T>(storage) }
    }
}

/// A [`CoreLocal`] with its type erased: what [`init_bsp`] is given.
pub trait LocalConstructor: Sync {
    /// The slot it fills.
    fn name(&self) -> LocalName;
    /// Writes the value of a new record's slot.
    ///
    /// # Safety
    /// `record` is being made: no one else can reach it, and its slot `name()` was not written yet.
    unsafe fn construct(&self, record: &PerCpu);
}

impl<T: Sync + 'static> LocalConstructor for CoreLocal<T> {
    fn name(&self) -> LocalName {
        self.name
    }

    unsafe fn construct(&self, record: &PerCpu) {
        let slot = record.locals[self.name as usize].0.get().cast::<T>();
        // SAFETY: per the caller, nobody else reaches the record, so the write is unique; the slot is large and
        // aligned enough for a `T` (checked in `new`).
        unsafe { slot.write((self.make)()) };
    }
}

/// The constructors of every slot, in [`LocalName`] order (set by [`init_bsp`]).
static CONSTRUCTORS: spin::Once<[&'static dyn LocalConstructor; LOCALS]> = spin::Once::new();

/// Fills every slot of `record`, which is being made (see [`LocalConstructor::construct`]).
fn construct_locals(record: &PerCpu) {
    let constructors = CONSTRUCTORS.get().unwrap_or_else(|| panic!("a per-CPU record made before percpu::init_bsp"));
    for constructor in constructors {
        // SAFETY: `record` is being made by the caller and is not reachable yet; each slot is written once.
        unsafe { constructor.construct(record) };
    }
}

static BSP_IST_STACKS: IstStacks = IstStacks::new();
static mut BSP_TABLES: CpuTables = CpuTables::empty();
static BSP: spin::Once<PerCpu> = spin::Once::new();
static BSP_READY: AtomicBool = AtomicBool::new(false);

/// Builds and loads the boot core's GDT/TSS and points GS at its per-CPU record, whose slots (and every later
/// record's) `locals` fill: one constructor for each [`LocalName`]. Call once, first thing.
pub fn init_bsp(locals: [&'static dyn LocalConstructor; LOCALS]) {
    assert!(!BSP_READY.load(Ordering::Relaxed), "percpu::init_bsp called twice");
    for (i, constructor) in locals.iter().enumerate() {
        assert!(
            constructor.name() as usize == i,
            "percpu::init_bsp: slot {i} is given {:?}'s constructor",
            constructor.name()
        );
    }
    CONSTRUCTORS.call_once(|| locals);
    // SAFETY: runs once on the boot core before anything else can reach BSP_TABLES (the assert above), so the
    // mutable reference is unique.
    let tables = unsafe { &mut *core::ptr::addr_of_mut!(BSP_TABLES) };
    let tables = tables.init(&BSP_IST_STACKS);
    x86_64::instructions::interrupts::disable();
    // SAFETY: first load of the boot core's tables, on the boot core, interrupts off; the IST stacks are the
    // boot core's own.
    unsafe { tables.load() };
    let record = BSP.call_once(|| {
        let record = PerCpu::new(0, crate::arch::cpu::apic_id_from_cpuid(), tables);
        construct_locals(&record);
        record
    });
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
    construct_locals(record);
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
#[inline(always)]
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
#[inline(always)]
pub fn current() -> &'static PerCpu {
    match try_current() {
        Some(cpu) => cpu,
        None => before_init(),
    }
}

#[cold]
#[inline(never)]
fn before_init() -> ! {
    panic!("per-CPU data used before percpu::init_bsp")
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
