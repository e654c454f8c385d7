//! Ring-3 SIPs: starting a program in ring 3 (in its core's shared space or a space of its own), its thread, its
//! calls, and giving its memory back.
//!
//! Each core has a set of ring-3 slots (`memory::layout::USER_SLOT_SIZE` each) and one address space that its
//! `ring3` SIPs share ([`CoreSpaces`], in the core's process table); a `ring3-own` SIP gets a space of its own,
//! with its slot in it. A slot holds the program's image from its start (read and execute) and its stack at its
//! top (read and write, never execute), with the guard below the stack never mapped. A space is used on one core
//! only (a SIP's threads all run on its core), so unmapping never needs another core's TLB flushed.
//!
//! A ring-3 SIP's thread is a scheduler thread with a kernel stack of [`KERNEL_STACK`] bytes, on which
//! `cpu_rings::run_user` enters ring 3 and every call, interrupt and exception from ring 3 arrives. Its first
//! thread runs on the stack at the slot's top; each thread it starts (`THREAD_START`) on a stack of its own in a
//! region below, given back when that thread ends (docs/protection.md, "Threads in ring 3"). Its calls
//! are the numbers of `sip_runtime::ring3_calls`: the null call and exit are the `ring3` layer's, the rest
//! ([`calls`]) enter the kernel's account, check every argument against the caller's own space and answer
//! plain numbers. An exception in ring-3 code ends that SIP alone (`interrupts`), through the same ending as a
//! ring-0 SIP's fault.
//!
//! What runs in ring 3 today: programs given to [`spawn`] as flat images (the self-tests' hand-assembled fault
//! programs). Services in ring 3 (`spawn NAME --protection`) come with the ring-3 build of the services and its
//! ELF loader. A program is not verified code, so [`spawn`] refuses `Protection::Type`.
//!
//! Invariant: the kernel never follows a ring-3 address: it copies through `cpu_rings::AddressSpace::copy_in`,
//! which checks the caller's own page tables.

use super::{EndReason, Sip, SipMemory, table};
use crate::exec::{self, Account, KernelAccount};
use crate::ipc::exchange_heap::acting_for;
use crate::memory::frames;
use crate::memory::layout::{
    USER_HEAP_OFFSET, USER_SLOT_SIZE, USER_SLOTS, USER_THREADS, user_slot_start, user_stack_guard, user_stack_top,
    user_thread_stack_guard, user_thread_stack_region, user_thread_stack_top,
};
use crate::memory::user_spaces::{self, UserSpace};
use crate::{percpu, sched};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use channels::proxy::HandleTable;
use channels::wire::Endpoints;
use core::sync::atomic::{AtomicU64, Ordering};
use cpu_rings::syscall::{Next, SyscallFrame};
use sip_runtime::ring3_calls as calls;
use sip_runtime::{ExitStatus, LogLevel, MAX_LOG_LINE, Manifest, Protection, SipId, SpawnError, Startup};
use x86_64::VirtAddr;
use x86_64::registers::rflags::RFlags;
use x86_64::structures::paging::PageTableFlags as Flags;

/// Bytes of a ring-3 thread's kernel stack: the kernel code of its calls and traps runs there.
pub const KERNEL_STACK: u64 = 16 * 1024;

/// A ring-3 program that is not a service, with the manifest the kernel's policy judges it by.
pub struct Program {
    /// Its name, limits and capabilities (its `entry` is never called: the program is ring-3 code).
    pub manifest: Manifest,
    /// Its code.
    pub code: Code,
}

/// Where a ring-3 program's code comes from.
#[derive(Debug, Clone, Copy)]
pub enum Code {
    /// Machine code loaded at the slot's start and entered at its first byte, with one number (the argument
    /// string read as a decimal or `0x` hexadecimal number, else 0) at `[rsp]` (the self-tests' programs).
    Flat(&'static [u8]),
    /// The program or service of this name in the ring-3 image, entered at the image's `_start` with the
    /// startup block (the SIP's id, the name's and the arguments' lengths, then their bytes) at `rsp`
    /// (`ring3-image`'s `start`).
    Image(&'static str),
}

/// The programs of the ring-3 image the kernel starts (`spawn NAME --protection ring3|ring3-own`): their
/// manifests are the kernel's (the image is not a service crate, and asks for nothing but a stack).
pub static IMAGE_PROGRAMS: [Program; 7] = [
    Program { manifest: program_manifest("channel-attacks"), code: Code::Image("channel-attacks") },
    Program { manifest: program_manifest("kernel-requests"), code: Code::Image("kernel-requests") },
    Program { manifest: program_manifest("hello"), code: Code::Image("hello") },
    Program { manifest: program_manifest("bench-ring3"), code: Code::Image("bench-ring3") },
    Program { manifest: program_manifest("alloc"), code: Code::Image("alloc") },
    Program { manifest: program_manifest("unsafe-test"), code: Code::Image("unsafe-test") },
    Program { manifest: program_manifest("soundness"), code: Code::Image("soundness") },
];

/// The manifest of a program of the ring-3 image: the default policy's limits, a 16 KiB stack, two threads, no
/// capability.
const fn program_manifest(name: &'static str) -> Manifest {
    /// Never called: a ring-3 program's code is in its image.
    fn ring3_code(_: sip_runtime::SipContext) {}
    Manifest {
        name,
        entry: sip_runtime::Entry::Thread(ring3_code),
        exports: &[],
        imports: &[],
        heap_quota: 64 * 1024,
        stack_size: 16 * 1024,
        restart: sip_runtime::RestartPolicy::Never,
        capabilities: &[],
        crate_name: "ring3-image",
        exchange_quota: 64 * 1024,
        threads: 2,
        // Not verified code: a plain `spawn NAME` is refused (only `--protection ring3|ring3-own` starts it).
        protection: Protection::Type,
    }
}

/// The program of the ring-3 image named `name`.
pub fn image_program(name: &str) -> Option<&'static Program> {
    IMAGE_PROGRAMS.iter().find(|p| p.manifest.name == name)
}

/// Bytes of a startup block's name and arguments the kernel writes at most (the image refuses more).
const MAX_STARTUP: usize = 2048;

/// A core's ring-3 slots and the space its `ring3` SIPs share.
pub struct CoreSpaces {
    shared: Option<UserSpace>,
    free_slots: Vec<u64>,
    next_slot: u64,
}

impl CoreSpaces {
    /// No slot used, no shared space yet.
    pub const fn new() -> Self {
        Self { shared: None, free_slots: Vec::new(), next_slot: 0 }
    }

    fn take_slot(&mut self) -> Option<u64> {
        self.free_slots.pop().or_else(|| {
            let slot = self.next_slot;
            (slot < USER_SLOTS).then(|| {
                self.next_slot += 1;
                slot
            })
        })
    }
}

/// A ring-3 SIP's memory: its slot, and its own space (`ring3-own`) or none (it is in the core's shared one).
pub struct UserMemory {
    slot: u64,
    own: Option<UserSpace>,
    /// Bytes of heap mapped (`GROW`), at most its quota.
    heap: u64,
    /// A `GROW` was refused for the quota (a panic after it is reported as the quota's).
    quota_hit: bool,
    /// The endpoints the kernel holds for it, by handle. Boxed: its calls reach it through the core's cache
    /// ([`channel_calls`]), so it must not move while the SIP lives.
    handles: Box<HandleTable>,
    /// Which thread stack regions are in use (bit `i`: `layout::user_thread_stack_top(slot, i)`): the first
    /// thread's always, the others' from `THREAD_START` to the thread's end.
    thread_stacks: u64,
}

impl UserMemory {
    /// Where its image starts (the start of its slot).
    pub fn image_start(&self) -> u64 {
        user_slot_start(self.slot)
    }

    /// Bytes of heap mapped for it.
    pub fn heap(&self) -> u64 {
        self.heap
    }

    /// Whether it asked for more heap than its quota.
    pub fn quota_hit(&self) -> bool {
        self.quota_hit
    }

    /// Forgets the endpoints the kernel held for it (it is dead: the records close their sides).
    pub fn abandon_handles(&mut self) {
        core::mem::replace(&mut *self.handles, HandleTable::new(0)).abandon();
    }
}

/// SIP `id` is leaving its core's table: its handle table must no longer be reached through the cache.
pub(super) fn forget_handles(id: u64) {
    channel_calls::forget(id);
}

/// The space SIP memory `user` lives in: its own, or the core's shared one.
fn space_of<'a>(user: &'a UserMemory, spaces: &'a CoreSpaces) -> Option<&'a UserSpace> {
    user.own.as_ref().or(spaces.shared.as_ref())
}

/// Maps `bytes` (zero-filled to whole pages, `pages` at least) at `start` of `space` with `flags`; returns the
/// pages mapped. On failure what was mapped stays, for the caller's cleanup of the whole slot.
fn map_pages(space: &mut UserSpace, start: u64, bytes: &[u8], pages: u64, flags: Flags) -> Result<u64, SpawnError> {
    let pages = pages.max((bytes.len() as u64).div_ceil(4096));
    for i in 0..pages {
        let from = ((i * 4096) as usize).min(bytes.len());
        let to = (from + 4096).min(bytes.len());
        let frame = user_spaces::fresh_user_frame(&bytes[from..to]).ok_or(SpawnError::OutOfMemory)?;
        if space.map(VirtAddr::new(start + i * 4096), frame, flags).is_err() {
            let _ = frames::deallocate(frame);
            return Err(SpawnError::OutOfMemory);
        }
    }
    Ok(pages)
}

/// Bytes of a ring-3 SIP's stack: its manifest's, in whole pages.
fn stack_bytes(manifest: &Manifest) -> u64 {
    (manifest.stack_size as u64).div_ceil(4096).max(1) * 4096
}

/// Lays out SIP `id` in `slot` of `space`: its code at the start, the stack at the top with the startup data on
/// it; returns the entry point and the initial stack pointer.
fn load(
    space: &mut UserSpace,
    slot: u64,
    id: u64,
    (manifest, code): (&Manifest, Code),
    args: &str,
) -> Result<(u64, u64), SpawnError> {
    let stack_pages = stack_bytes(manifest) / 4096;
    let top = user_stack_top(slot);
    let start = user_slot_start(slot);
    let entry = match code {
        Code::Flat(bytes) => map_pages(space, start, bytes, 1, Flags::empty()).map(|_| start)?,
        Code::Image(_) => image::load(space, start).map_err(|e| match e {
            image::ImageError::OutOfMemory => SpawnError::OutOfMemory,
            image::ImageError::Missing | image::ImageError::Invalid(_) => SpawnError::NoRing3Build,
        })?,
    };
    map_pages(space, top - stack_pages * 4096, &[], stack_pages, Flags::WRITABLE | Flags::NO_EXECUTE)?;
    let mut startup = Vec::new();
    match code {
        Code::Flat(_) => {
            let number = match args.trim().strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => args.trim().parse().ok(),
            };
            startup.extend_from_slice(&number.unwrap_or(0).to_le_bytes());
        }
        Code::Image(name) => {
            startup.extend_from_slice(&id.to_le_bytes());
            startup.extend_from_slice(&(name.len() as u64).to_le_bytes());
            startup.extend_from_slice(&(args.len() as u64).to_le_bytes());
            startup.extend_from_slice(name.as_bytes());
            startup.extend_from_slice(args.as_bytes());
        }
    }
    if startup.len() > MAX_STARTUP || startup.len() as u64 + 16 > stack_pages * 4096 {
        return Err(SpawnError::ArgumentsTooLong);
    }
    // The program finds the startup data at its initial stack pointer, 16-byte aligned, as a process finds argc.
    let rsp = (top - 16 - startup.len() as u64) & !15;
    space.copy_out(rsp, &startup).map_err(|_| SpawnError::OutOfMemory)?;
    Ok((entry, rsp))
}

/// Starts `program` as a SIP in ring 3 on this core, protected as `protection` says, with `args` (see [`Code`]).
/// Refuses `Protection::Type`: a program is not verified code. Nothing is left behind on failure.
pub fn spawn(program: &'static Program, protection: Protection, args: &str) -> Result<SipId, SpawnError> {
    spawn_code(&program.manifest, program.code, protection, args, &mut None, channels::Owner::KERNEL, 0)
}

/// Starts the program of the ring-3 image or the service named `name` (linked into the kernel and into the
/// image alike) in ring 3 on this core, handing it `startup` (held by `holder` until then, and again if the
/// spawn fails: it comes back); `restarts` counts the instances before it (its restart policy's budget). A service the image does not have is refused with `SpawnError::NoRing3Build`.
pub fn spawn_named(
    name: &str,
    args: &str,
    protection: Protection,
    startup: Option<Startup>,
    holder: channels::Owner,
    restarts: u32,
) -> Result<SipId, (SpawnError, Option<Startup>)> {
    let (manifest, code) = match image_program(name) {
        Some(program) => (&program.manifest, program.code),
        None => match super::manifest(name) {
            Some(manifest) if image::has_service(manifest.name) => (manifest, Code::Image(manifest.name)),
            Some(_) => return Err((SpawnError::NoRing3Build, startup)),
            None => return Err((SpawnError::NoSuchService, startup)),
        },
    };
    let mut startup = startup;
    spawn_code(manifest, code, protection, args, &mut startup, holder, restarts).map_err(|error| (error, startup))
}

/// The handle table of new SIP `id`, holding `startup` (moved from `holder` to the SIP) as its startup endpoint.
fn handles_with(startup: Option<Startup>, holder: channels::Owner, id: u64) -> Box<HandleTable> {
    let mut handles = Box::new(HandleTable::new(calls::MAX_HANDLES));
    if let Some(startup) = startup {
        let owner = channels::Owner::sip(id);
        super::give_startup(&startup, holder, owner);
        // A table that cannot grow drops the end: the SIP's, so it is closed as the SIP's.
        acting_for(id, || {
            let _ = handles.put_startup(channels::proxy::hold(startup.into_end()));
        });
    }
    handles
}

/// The startup endpoint of SIP `id` (which never ran), back to `holder`.
fn startup_back(id: u64, holder: channels::Owner) -> Option<Startup> {
    let expected = core::any::TypeId::of::<channels::raw::RawEndpoint<(), channels::ExAny>>();
    let held = match table().lock().sip_mut(id)? {
        Sip { memory: SipMemory::User(user), .. } => user.handles.take_as(HandleTable::STARTUP, expected).ok()?,
        _ => return None,
    };
    let end = *held.into_any().downcast::<channels::raw::RawEndpoint<(), channels::ExAny>>().ok()?;
    let startup = Startup::from_end(end);
    super::give_startup(&startup, channels::Owner::sip(id), holder);
    Some(startup)
}

/// [`spawn`] of `code` with `manifest`.
fn spawn_code(
    manifest: &'static Manifest,
    code: Code,
    protection: Protection,
    args: &str,
    startup: &mut Option<Startup>,
    holder: channels::Owner,
    restarts: u32,
) -> Result<SipId, SpawnError> {
    let _kernel = KernelAccount::enter();
    if !protection.is_ring3() {
        return Err(SpawnError::NeedsHardwareProtection);
    }
    if args.len() > sip_runtime::MAX_ARGS_LEN {
        return Err(SpawnError::ArgumentsTooLong);
    }
    manifest.check(&super::known_contracts()).map_err(SpawnError::BadManifest)?;
    let grant = super::policy::grant(manifest).map_err(SpawnError::BadManifest)?;
    let id = super::NEXT_SIP_ID.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    let mut own = match protection {
        Protection::Ring3Own => Some(user_spaces::new_space().map_err(|_| SpawnError::OutOfMemory)?),
        _ => None,
    };
    let mut guard = table().lock();
    let spaces = &mut guard.ring3;
    let slot = spaces.take_slot().ok_or(SpawnError::OutOfMemory)?;
    if own.is_none() && spaces.shared.is_none() {
        spaces.shared = user_spaces::new_space().ok();
    }
    let Some(space) = own.as_mut().or(spaces.shared.as_mut()) else {
        spaces.free_slots.push(slot);
        return Err(SpawnError::OutOfMemory);
    };
    let level_4 = space.level_4().start_address().as_u64();
    let (rip, rsp) = match load(space, slot, id, (manifest, code), args) {
        Ok(loaded) => loaded,
        Err(e) => {
            space.unmap_range(user_slot_start(slot), user_slot_start(slot) + USER_SLOT_SIZE);
            spaces.free_slots.push(slot);
            drop(guard);
            return Err(e);
        }
    };
    let record = Sip {
        id,
        manifest,
        protection,
        memory: SipMemory::User(UserMemory {
            slot,
            own,
            heap: 0,
            quota_hit: false,
            handles: handles_with(startup.take(), holder, id),
            thread_stacks: 1,
        }),
        threads: Vec::new(),
        restarts,
        waiters: Vec::new(),
        startup: None,
        ending: None,
        log: super::LogBudget::new(grant.log_lines_per_second),
    };
    guard.sips.insert(id, record);
    drop(guard);
    let entry = super::replica::Entry { core: percpu::current_index(), name: manifest.name };
    super::replica::publish(super::replica::Update::Added { id, entry });
    // Interrupts stay off from the thread's creation to its record, so it cannot run (and end) unrecorded.
    let spawned = x86_64::instructions::interrupts::without_interrupts(|| {
        let guard = user_stack_guard(slot, stack_bytes(manifest));
        let tid = sched::spawn_ring3(Account::Sip(id), KERNEL_STACK, level_4, guard, move || run(rip, rsp))?;
        if let Some(sip) = table().lock().sip_mut(id) {
            sip.threads.push(tid);
        }
        Ok(tid)
    });
    if let Err(sched::ThreadError::Stack(_)) = spawned {
        *startup = startup_back(id, holder);
        // Ended before it began: the ordinary ending reclaims the slot and the record.
        super::end(id, EndReason::Exited(ExitStatus::Failure(-1)));
        return Err(SpawnError::OutOfMemory);
    }
    Ok(SipId(id))
}

/// The body of a ring-3 SIP's thread: ring 3 from `rip` on the stack `rsp`, until the program exits.
fn run(rip: u64, rsp: u64) {
    x86_64::instructions::interrupts::disable();
    // SAFETY: interrupts are off; `syscall` is enabled on every core at boot and the scratch words name this
    // core's TSS; the scheduler loaded this thread's space when it switched here (and gives the thread back its
    // kernel stack on every switch), where `rip` and `rsp` are the program's mapped image and stack.
    let status = unsafe { cpu_rings::run_user(rip, rsp, RFlags::INTERRUPT_FLAG.bits() | 2, 0) };
    let status = match status as u32 {
        0 => ExitStatus::Success,
        code => ExitStatus::Failure(code as i32),
    };
    super::end_current(EndReason::Exited(status))
}

/// `THREAD_START` of SIP `id`: a thread of it in ring 3 at `rip` with `argument` (`sip_runtime::ring3_calls`
/// says what it answers). Runs with interrupts off (a call from ring 3), so the new thread cannot run, and end,
/// before it is recorded as the SIP's.
fn thread_start(id: u64, rip: u64, argument: u64) -> u64 {
    let (index, rsp, level_4, guard) = {
        let mut table = table().lock();
        let table = &mut *table;
        let Some(sip) = table.sips.get_mut(&id) else { return calls::NO_SUCH_CALL };
        let (threads, limit, manifest, ending) =
            (sip.threads.len(), sip.manifest.threads, sip.manifest, sip.ending.is_some());
        let SipMemory::User(user) = &mut sip.memory else { return calls::NO_SUCH_CALL };
        let image = user_slot_start(user.slot)..user_slot_start(user.slot) + USER_HEAP_OFFSET;
        if !image.contains(&rip) {
            return calls::BAD_ARGUMENT;
        }
        if ending || threads >= limit.min(USER_THREADS as usize) {
            return calls::OUT_OF_QUOTA;
        }
        let Some(index) = (1..USER_THREADS).find(|i| user.thread_stacks & (1 << i) == 0) else {
            return calls::OUT_OF_QUOTA;
        };
        let bytes = stack_bytes(manifest);
        let top = user_thread_stack_top(user.slot, index);
        let Some(space) = user.own.as_mut().or(table.ring3.shared.as_mut()) else { return calls::OUT_OF_MEMORY };
        if map_pages(space, top - bytes, &[], bytes / 4096, Flags::WRITABLE | Flags::NO_EXECUTE).is_err() {
            space.unmap_range(top - bytes, top);
            return calls::OUT_OF_MEMORY;
        }
        user.thread_stacks |= 1 << index;
        // From now on its waits mark their endpoints busy: another thread may use the table meanwhile.
        user.handles.mark_threaded();
        // The first frame as after a call: a return address (0: a return faults) below a 16-byte aligned top.
        let level_4 = space.level_4().start_address().as_u64();
        (index, top - 8, level_4, user_thread_stack_guard(user.slot, index, bytes))
    };
    let started = sched::spawn_ring3(Account::Sip(id), KERNEL_STACK, level_4, guard, move || {
        run_thread(rip, rsp, argument, index)
    });
    let mut table = table().lock();
    let table = &mut *table;
    let Some(sip) = table.sips.get_mut(&id) else { return calls::NO_SUCH_CALL };
    match started {
        Ok(tid) => {
            sip.threads.push(tid);
            tid.0
        }
        Err(_) => {
            if let SipMemory::User(user) = &mut sip.memory {
                release_thread_stack(user, &mut table.ring3, index);
            }
            calls::OUT_OF_MEMORY
        }
    }
}

/// The body of a thread a ring-3 SIP started (`THREAD_START`): ring 3 from `rip` on the stack `rsp` with
/// `argument`, until the thread's `EXIT` (whose status, a thread's, nobody reads); then its stack region goes
/// back and the thread ends, the SIP living on in its other threads.
fn run_thread(rip: u64, rsp: u64, argument: u64, index: u64) {
    x86_64::instructions::interrupts::disable();
    // SAFETY: as in `run`; `rsp` is the top of the stack `thread_start` mapped for this thread alone.
    let _ = unsafe { cpu_rings::run_user(rip, rsp, RFlags::INTERRUPT_FLAG.bits() | 2, argument) };
    {
        let _kernel = KernelAccount::enter();
        if let Some(id) = exec::current_sip() {
            let mut table = table().lock();
            let table = &mut *table;
            if let Some(Sip { memory: SipMemory::User(user), .. }) = table.sips.get_mut(&id) {
                release_thread_stack(user, &mut table.ring3, index);
            }
        }
    }
    super::end_thread()
}

/// Unmaps the stack region of thread `index` of the SIP whose memory is `user` (its space is loaded here or
/// nowhere: a SIP's threads all run on its core) and marks it free.
fn release_thread_stack(user: &mut UserMemory, spaces: &mut CoreSpaces, index: u64) {
    let region = user_thread_stack_region(user.slot, index);
    let cpu = percpu::current();
    if let Some(space) = user.own.as_mut().or(spaces.shared.as_mut()) {
        space.unmap_range(region.start, region.end);
        if cpu.loaded_space.load(Ordering::Relaxed) == space.level_4().start_address().as_u64() {
            x86_64::instructions::tlb::flush_all();
            crate::percpu::PerCpu::count(&cpu.tlb_flushes);
        }
    }
    user.thread_stacks &= !(1 << index);
}

/// Gives back the memory of a ring-3 SIP that has ended (no thread of it left but, perhaps, the calling one,
/// which never returns to ring 3): its own space whole, or its slot of the shared one.
pub(super) fn release(user: UserMemory) {
    let cpu = percpu::current();
    let mut table = table().lock();
    let spaces = &mut table.ring3;
    let start = user_slot_start(user.slot);
    match user.own {
        Some(space) => {
            let level_4 = space.level_4().start_address().as_u64();
            sched::forget_space(level_4);
            crate::ring3::unload_space(cpu, level_4);
            drop(space);
        }
        None => {
            if let Some(shared) = spaces.shared.as_mut() {
                shared.unmap_range(start, start + USER_SLOT_SIZE);
                if cpu.loaded_space.load(Ordering::Relaxed) == shared.level_4().start_address().as_u64() {
                    x86_64::instructions::tlb::flush_all();
                    crate::percpu::PerCpu::count(&cpu.tlb_flushes);
                }
            }
        }
    }
    spaces.free_slots.push(user.slot);
}

/// Calls answered by [`calls`] since boot (all cores).
static CALLS_ANSWERED: AtomicU64 = AtomicU64::new(0);

/// Calls answered by [`calls`] since boot (all cores).
pub fn calls_answered() -> u64 {
    CALLS_ANSWERED.load(Ordering::Relaxed)
}

/// The calls of ring-3 SIPs beyond the null call and exit (see `sip_runtime::ring3_calls`), on the calling
/// thread's kernel stack. The message calls come first, on a path of their own (the same-core round trip between
/// two ring-3 SIPs is two of them: docs/protection.md, "The short path").
pub fn calls(frame: &mut SyscallFrame) -> Next {
    CALLS_ANSWERED.fetch_add(1, Ordering::Relaxed);
    let cpu = percpu::current();
    let _kernel = KernelAccount::enter_on(cpu);
    let Some(id) = exec::current_sip_on(cpu) else {
        frame.rax = calls::NO_SUCH_CALL;
        return Next::Resume;
    };
    // The message calls never switch the thread out but in a receive's wait, which notes the thread's kernel
    // stack itself (`channel_calls::receive`).
    frame.rax = match frame.rax {
        calls::CHANNEL_CALL => channel_calls::call(id, frame),
        calls::CHANNEL_RECV => channel_calls::recv(id, frame),
        calls::CHANNEL_SEND_SHORT => channel_calls::send_short(id, frame),
        number => other_call(id, number, frame),
    };
    Next::Resume
}

/// The calls of [`calls`] but the message calls.
#[inline(never)]
fn other_call(id: u64, number: u64, frame: &mut SyscallFrame) -> u64 {
    // A call that may switch the thread out (a yield, a sleep, a wait, a lock that waits) notes its kernel stack
    // first; the calls that never block do not pay for it.
    if !never_switches(number) {
        sched::note_ring3_stack();
    }
    match number {
        calls::YIELD => {
            sched::yield_now();
            0
        }
        calls::SLEEP => {
            sched::sleep(frame.rdi);
            0
        }
        calls::NOW => crate::time::uptime_nanos(),
        calls::CORE => u64::from(percpu::current_index()),
        calls::ICOUNT => u64::from(sip_runtime::KernelAbi::cycles_are_instructions(&super::abi::RING0)),
        calls::LOG => log(id, frame.rdi, frame.rsi, frame.rdx),
        calls::GROW => grow(id, frame.rdi),
        calls::CHANNEL_OPEN => channel_calls::open(id, frame.rdi, frame.rsi),
        calls::CHANNEL_SEND => channel_calls::send(id, frame.rdi, frame.rsi, frame.rdx),
        calls::CHANNEL_STATUS => channel_calls::status(id, frame.rdi, frame.rsi),
        calls::CHANNEL_PEERS => channel_calls::peers(id, frame.rdi, frame.rsi),
        calls::CHANNEL_WAIT => channel_calls::wait(id, frame.rdi, frame.rsi),
        calls::CHANNEL_CLOSE => channel_calls::close(id, frame.rdi),
        calls::NAMES_CONNECT => channel_calls::names_connect(id, frame.rdi, frame.rsi),
        calls::KERNEL => kernel_calls::answer(id, frame.rdi, frame.rsi, frame.rdx, frame.r10),
        calls::THREAD_START => thread_start(id, frame.rdi, frame.rsi),
        calls::PANIC => match text_of(id, frame.rdi, frame.rsi) {
            Ok((text, more)) => {
                let mut message = text;
                if more > 0 {
                    let _ = core::fmt::Write::write_fmt(&mut message, format_args!("... ({more} more bytes)"));
                }
                super::end_current(EndReason::Panicked(message))
            }
            Err(answer) => answer,
        },
        _ => calls::NO_SUCH_CALL,
    }
}

/// Whether call `number` needs no note of the kernel stack before it runs: it never switches the calling thread
/// out (it runs with interrupts off from start to end and nothing in it blocks).
fn never_switches(number: u64) -> bool {
    matches!(
        number,
        calls::CHANNEL_SEND
            | calls::CHANNEL_STATUS
            | calls::CHANNEL_PEERS
            | calls::CHANNEL_CLOSE
            | calls::NOW
            | calls::CORE
            | calls::ICOUNT
    )
}

/// The `LOG` call of SIP `id`: `len` bytes of text at `at` in its space.
fn log(id: u64, at: u64, len: u64, level: u64) -> u64 {
    let level = match level {
        0 => LogLevel::Error,
        1 => LogLevel::Warn,
        2 => LogLevel::Info,
        3 => LogLevel::Debug,
        _ => return calls::BAD_ARGUMENT,
    };
    match text_of(id, at, len) {
        Ok((text, more)) => {
            super::abi::log_for_caller(level, &text, more);
            0
        }
        Err(answer) => answer,
    }
}

/// At most `MAX_LOG_LINE` bytes of UTF-8 text at `at` (of `len`) in SIP `id`'s space, and how many more bytes there
/// were; the call's error answer if the range is not its memory or not UTF-8.
fn text_of(id: u64, at: u64, len: u64) -> Result<(alloc::string::String, usize), u64> {
    let taken = len.min(MAX_LOG_LINE as u64) as usize;
    let mut text = vec![0u8; taken];
    {
        let table = table().lock();
        let Some(Sip { memory: SipMemory::User(user), .. }) = table.sip(id) else {
            return Err(calls::NO_SUCH_CALL);
        };
        let Some(space) = space_of(user, &table.ring3) else { return Err(calls::BAD_ADDRESS) };
        space.copy_in(at, &mut text).map_err(|_| calls::BAD_ADDRESS)?;
    }
    // A cut may split a character: the text up to the last whole one is taken.
    let valid = match core::str::from_utf8(&text) {
        Ok(_) => text.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => return Err(calls::NOT_UTF8),
    };
    text.truncate(valid);
    let text = alloc::string::String::from_utf8(text).map_err(|_| calls::NOT_UTF8)?;
    let more = len as usize - text.len();
    Ok((text, more))
}

/// The `GROW` call of SIP `id`: `bytes` more heap (whole pages), within its quota.
fn grow(id: u64, bytes: u64) -> u64 {
    let pages = bytes.div_ceil(4096);
    let mut table = table().lock();
    let table = &mut *table;
    let Some(Sip { memory: SipMemory::User(user), manifest, .. }) = table.sips.get_mut(&id) else {
        return calls::NO_SUCH_CALL;
    };
    let quota = manifest.heap_quota as u64;
    if pages == 0 || pages > quota / 4096 || user.heap + pages * 4096 > quota {
        user.quota_hit = true;
        return calls::OUT_OF_QUOTA;
    }
    let start = user_slot_start(user.slot) + USER_HEAP_OFFSET + user.heap;
    let Some(space) = user.own.as_mut().or(table.ring3.shared.as_mut()) else { return calls::OUT_OF_MEMORY };
    match map_pages(space, start, &[], pages, Flags::WRITABLE | Flags::NO_EXECUTE) {
        Ok(_) => {
            user.heap += pages * 4096;
            start
        }
        Err(_) => {
            // Give back what was mapped of this growth: the heap ends where it ended.
            space.unmap_range(start, start + pages * 4096);
            calls::OUT_OF_MEMORY
        }
    }
}

mod channel_calls;
pub mod image;
mod kernel_calls;
mod selftests;
