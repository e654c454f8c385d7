//! Messages between the kernel instances of different cores: bounded queues per ordered pair of cores (made when
//! the pair first talks), an IPI that makes a halted core look at its queues, and multicasts to every core. This
//! is the only way one core asks another to do something; no core changes another core's scheduler, process
//! table or replicas.
//!
//! Two lanes per ordered pair (crossbeam `ArrayQueue`s, lock-free):
//! - **wakes**: a thread id to make ready (a channel wake-up whose thread lives on the receiving core). Drained
//!   in the IPI handler itself, so a cross-core wake-up costs one push, one IPI and one local wake.
//! - **requests**: everything else, as [`Request`] trait objects: what a request means is defined by the layer
//!   that sends it (spawn here, kill: `sip::remote`), and its [`Request::handle`] runs on the receiving core;
//!   answers come back the same way ([`ReplyCell`]). Drained by the receiving core's monitor thread (`smp`), in
//!   thread context, in order per sending core.
//!
//! A [`multicast`] (replica updates) reaches every other core along one fixed tree ([`Scheme::Tree`], or one by
//! one for comparison): one sender's messages reach each core in the order sent, and the core whose request is
//! being handled when one is sent gets it first, directly, in the lane its answer then takes (so the asking core
//! has applied a SIP's `Added` before its caller sees the reply to the spawn).
//!
//! This layer is transport only: it never names what travels in it, and the monitor loop that drains it lives
//! above it (`smp`).
//!
//! Invariants: only thread context sends requests; a send never waits (a full lane spills into the sending
//! core's ordered backlog, which its monitor drains) and a monitor never waits for a reply, so two cores can
//! never wait on each other; an IPI is sent only when the receiving core has no IPI pending
//! (`Mesh::ipi_pending`, cleared by the handler before it drains), so no message is left unseen; a pair's lanes
//! are made only by their sending core, with interrupts off.

use crate::arch::apic;
use crate::arch::vectors::CALL_VECTOR;
use crate::percpu;
use crate::sched::{self, ThreadId};
use crate::sync::IrqMutex;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use crossbeam_queue::ArrayQueue;

/// Wake-ups in flight from one core to another before a sender has to wait (drains in the receiver's IPI
/// handler, so a few suffice; a lane's memory counts for every pair of cores that talk, up to 255 x 254).
const WAKE_LANE: usize = 32;
/// Requests in flight from one core to another before more wait in the sending core's backlog (which keeps
/// their order, so a short lane only moves waiting requests into the sender's memory).
const REQUEST_LANE: usize = 16;

/// A request from one kernel instance to another, defined by the layer that sends it.
pub trait Request: Send + 'static {
    /// Does what was asked, on the receiving core's monitor thread. Must not wait for another core.
    fn handle(self: Box<Self>);
}

/// Where the answer to one request lands; the asking thread parks until it is filled.
pub struct ReplyCell<T> {
    value: spin::Mutex<Option<T>>,
    /// The asking core.
    core: u32,
    /// The asking thread (on the asking core).
    waiter: ThreadId,
}

impl<T: Send + 'static> ReplyCell<T> {
    /// A cell for the calling thread.
    fn for_current() -> Arc<Self> {
        let waiter = sched::current_id().unwrap_or(ThreadId(0));
        Arc::new(Self { value: spin::Mutex::new(None), core: percpu::current_index(), waiter })
    }

    /// Sends the answer back to the asking core.
    pub fn answer(self: Arc<Self>, value: T) {
        let core = self.core;
        let answer = Box::new(Answer { cell: self, value });
        if core == percpu::current_index() {
            answer.handle();
        } else {
            send(core, answer);
        }
    }
}

/// An answer on its way back to the core that asked.
struct Answer<T> {
    cell: Arc<ReplyCell<T>>,
    value: T,
}

impl<T: Send + 'static> Request for Answer<T> {
    /// Puts the answer in its cell and wakes the waiting thread (on the asking core).
    fn handle(self: Box<Self>) {
        *self.cell.value.lock() = Some(self.value);
        sched::wake(self.cell.waiter);
    }
}

/// "Answer at once": a one-by-one probe ([`probe_all`]), answered to the probing core with a [`ProbeAck`].
struct Probe {
    prober: u32,
    acks: Arc<Acks>,
}

/// The answers a one-by-one probe still waits for, and who waits.
struct Acks {
    left: core::sync::atomic::AtomicUsize,
    waiter: ThreadId,
}

/// One core's answer to a one-by-one probe, taken by the probing core's monitor, which wakes the prober at the
/// last: so the prober is woken once, as along the tree, and the comparison is of the messages alone.
struct ProbeAck(Arc<Acks>);

impl Request for Probe {
    fn handle(self: Box<Self>) {
        send(self.prober, Box::new(ProbeAck(self.acks)));
    }
}

impl Request for ProbeAck {
    fn handle(self: Box<Self>) {
        if self.0.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            sched::wake(self.0.waiter);
        }
    }
}

/// Why a request was not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// No such core, or it is not running.
    NotOnline,
}

/// Sends the request `make` builds to core `to` (this core too: its monitor answers) and parks until the answer
/// arrives. Thread context only; never from a monitor thread (module invariant).
pub fn call<T: Send + 'static, R: Request>(to: u32, make: impl FnOnce(Arc<ReplyCell<T>>) -> R) -> Result<T, CallError> {
    if !crate::cores::is_online(to) {
        return Err(CallError::NotOnline);
    }
    let cell = ReplyCell::for_current();
    send(to, Box::new(make(cell.clone())));
    loop {
        if let Some(value) = cell.value.lock().take() {
            return Ok(value);
        }
        // A delivery between the check and the park is not lost: the wake is remembered (token semantics).
        sched::block_current();
    }
}

/// What one probe of every core cost ([`probe_all`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeCost {
    /// Cycles from the first send to the last answer, on the probing core.
    pub cycles: u64,
    /// Inter-core messages sent, by all cores together.
    pub messages: u64,
    /// Most messages one core sent and took: the serial work of the busiest core, which bounds the latency on
    /// hardware whose cores run in parallel (under TCG they do not: see docs/multikernel.md).
    pub busiest: u64,
}

/// Per core: inter-core messages it sent, and messages it took (counted before they are handled, so that every
/// count of a probe is in before its last answer arrives).
static SENT: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];
static TAKEN: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];

/// Each core's (sent, taken) counts.
fn message_counts() -> Vec<(u64, u64)> {
    let cores = MESH.get().map_or(0, |mesh| mesh.cores);
    (0..cores).map(|c| (SENT[c].load(Ordering::Relaxed), TAKEN[c].load(Ordering::Relaxed))).collect()
}

/// Sends a probe to every other running core by `scheme` and waits until every one has answered; returns what
/// it cost (what one replica update costs to reach every core and be confirmed), or `None` on a single core.
/// One by one, this core sends each a probe and collects every answer itself; along the tree, each core passes
/// the probe on and answers its sender once its own subtree has answered (the acknowledgements are aggregated
/// on the way back: this core hears from its tree neighbours only). The message counts include any other
/// inter-core traffic meanwhile (none while a benchmark runs alone).
pub fn probe_all(scheme: Scheme) -> Option<ProbeCost> {
    let me = percpu::current_index();
    if !crate::cores::online_cores().any(|c| c != me) {
        return None;
    }
    let before = message_counts();
    let start = crate::arch::cpu::rdtsc();
    match scheme {
        Scheme::OneByOne => {
            let others: Vec<u32> = crate::cores::online_cores().filter(|c| *c != me).collect();
            let waiter = sched::current_id().unwrap_or(ThreadId(0));
            let acks = Arc::new(Acks { left: core::sync::atomic::AtomicUsize::new(others.len()), waiter });
            for core in others {
                send(core, Box::new(Probe { prober: me, acks: acks.clone() }));
            }
            // A wake between the look and the park is not lost (token semantics).
            while acks.left.load(Ordering::Acquire) != 0 {
                sched::block_current();
            }
        }
        Scheme::Tree => {
            let cell = ReplyCell::for_current();
            let id = NEXT_PROBE.fetch_add(1, Ordering::Relaxed);
            probe_below(me, None, Owed::Cell(cell.clone()), id);
            while cell.value.lock().is_none() {
                sched::block_current();
            }
        }
    }
    let cycles = crate::arch::cpu::rdtsc() - start;
    let deltas = message_counts().into_iter().zip(before).map(|((s, t), (s0, t0))| (s - s0, t - t0));
    let (messages, busiest) = deltas.fold((0, 0), |(all, most), (sent, taken)| (all + sent, most.max(sent + taken)));
    Some(ProbeCost { cycles, messages, busiest })
}

/// Tree probes get ids from this (unique in the boot).
static NEXT_PROBE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

/// Who a core answers when its part of a tree probe is done.
enum Owed {
    /// The core that passed the probe to this one (a [`ProbeDone`]).
    Core(u32),
    /// The thread that started the probe, on this core.
    Cell(Arc<ReplyCell<()>>),
}

/// A tree probe this core passed on and waits to hear back about: its id, who to answer, answers still to come.
struct Pending {
    id: u64,
    owed: Owed,
    left: usize,
}

/// Per core: its pending tree probes (touched by its monitor, and by the thread that starts a probe).
static PENDING: [IrqMutex<Vec<Pending>>; percpu::MAX_CPUS] = [const { IrqMutex::new(Vec::new()) }; percpu::MAX_CPUS];

/// A tree probe arriving from tree node `from`, sent by core `answer_to`.
struct TreeProbe {
    id: u64,
    from: u32,
    answer_to: u32,
}

impl Request for TreeProbe {
    fn handle(self: Box<Self>) {
        probe_below(percpu::current_index(), Some(self.from), Owed::Core(self.answer_to), self.id);
    }
}

/// "The subtree I passed probe `id` to has answered."
struct ProbeDone(u64);

impl Request for ProbeDone {
    fn handle(self: Box<Self>) {
        let me = percpu::current_index() as usize;
        let done = {
            let mut pending = PENDING[me].lock();
            let Some(at) = pending.iter().position(|p| p.id == self.0) else { return };
            pending[at].left -= 1;
            (pending[at].left == 0).then(|| pending.swap_remove(at))
        };
        if let Some(done) = done {
            answer(done.owed, done.id);
        }
    }
}

/// Passes probe `id` from this core on to its tree neighbours but `from`, and answers `owed` once they all
/// have (at once if there are none). The pending entry is in place before the first send, so no answer can
/// come back before it.
fn probe_below(me: u32, from: Option<u32>, owed: Owed, id: u64) {
    let Some(mesh) = MESH.get() else { return };
    let mut targets = Vec::new();
    probe_targets(me, from, mesh.cores as u32, &mut targets);
    if targets.is_empty() {
        return answer(owed, id);
    }
    PENDING[me as usize].lock().push(Pending { id, owed, left: targets.len() });
    for (target, node) in targets {
        send(target, Box::new(TreeProbe { id, from: node, answer_to: me }));
    }
}

/// The running cores a probe passed on from tree node `node` (arrived from `from`) goes to, each with the tree
/// node it comes from (a core that is not running is passed over, as in [`pass_on`]).
fn probe_targets(node: u32, from: Option<u32>, cores: u32, out: &mut Vec<(u32, u32)>) {
    for next in neighbours(node, cores).filter(|n| Some(*n) != from) {
        if crate::cores::is_online(next) {
            out.push((next, node));
        } else {
            probe_targets(next, Some(node), cores, out);
        }
    }
}

/// Tells `owed` that probe `id` is done here.
fn answer(owed: Owed, id: u64) {
    match owed {
        Owed::Core(core) => send(core, Box::new(ProbeDone(id))),
        Owed::Cell(cell) => cell.answer(()),
    }
}

/// The two lanes from one core to another, and the sender's backlog for them.
struct Lanes {
    wakes: ArrayQueue<u64>,
    requests: ArrayQueue<Box<dyn Request>>,
    /// Requests waiting for room in `requests`, in order; once one waits, every later request to the same core
    /// queues behind it. Only the sending core touches it.
    backlog: IrqMutex<VecDeque<Box<dyn Request>>>,
}

struct Mesh {
    cores: usize,
    /// `lanes[from * cores + to]`, made by the sending core when it first sends there: a pair of cores that
    /// never talk costs a pointer, not two queues (about 7 KiB, which for every pair of 255 cores would be more
    /// memory than the machine has).
    lanes: Vec<spin::Once<Box<Lanes>>>,
    /// Per receiving core: an IPI was sent and its handler has not started draining yet.
    ipi_pending: Vec<AtomicBool>,
    /// Per receiving core: which cores have made lanes to it, so that a receiver looks at the few lanes that
    /// exist (a tree node's five, say) rather than one per core of the machine: at 255 cores, scanning them all
    /// doubled the cost of taking a message. Set by the sender once the lanes are made; never cleared (lanes
    /// stay).
    senders: Vec<CoreSet>,
    /// Per sending core: which cores it has made lanes to (for its backlogs), likewise.
    receivers: Vec<CoreSet>,
}

/// A set of cores, one bit each; bits are only ever added.
struct CoreSet([AtomicU64; percpu::MAX_CPUS / 64]);

impl CoreSet {
    fn new() -> Self {
        Self([const { AtomicU64::new(0) }; percpu::MAX_CPUS / 64])
    }

    fn insert(&self, core: usize) {
        self.0[core / 64].fetch_or(1 << (core % 64), Ordering::Release);
    }

    /// The cores in the set, from `start` up, then from 0 up to `start`.
    fn starting_at(&self, start: u32) -> impl Iterator<Item = u32> + '_ {
        let words: [u64; percpu::MAX_CPUS / 64] = core::array::from_fn(|i| self.0[i].load(Ordering::Acquire));
        let all = (0..words.len()).flat_map(move |w| {
            let mut bits = words[w];
            core::iter::from_fn(move || {
                let bit = (bits != 0).then(|| bits.trailing_zeros())?;
                bits &= bits - 1;
                Some(w as u32 * 64 + bit)
            })
        });
        all.clone().filter(move |c| *c >= start).chain(all.filter(move |c| *c < start))
    }
}

static MESH: spin::Once<Mesh> = spin::Once::new();

/// Builds the lanes between `cores` cores. Call once on the boot core, before any other core starts.
pub fn init(cores: usize) {
    MESH.call_once(|| Mesh {
        cores,
        lanes: (0..cores * cores).map(|_| spin::Once::new()).collect(),
        ipi_pending: (0..cores).map(|_| AtomicBool::new(false)).collect(),
        senders: (0..cores).map(|_| CoreSet::new()).collect(),
        receivers: (0..cores).map(|_| CoreSet::new()).collect(),
    });
}

/// The lanes from `from` to `to`, if `from` ever sent there (for the receiving side).
fn lanes(from: u32, to: u32) -> Option<&'static Lanes> {
    let mesh = MESH.get()?;
    let (from, to) = (from as usize, to as usize);
    (from < mesh.cores && to < mesh.cores).then(|| mesh.lanes[from * mesh.cores + to].get()).flatten().map(|b| &**b)
}

/// The lanes from this core to `to`, made on first use (only this core makes them: it is their only sender).
fn lanes_to(to: u32) -> Option<&'static Lanes> {
    let mesh = MESH.get()?;
    let (from, to) = (percpu::current_index() as usize, to as usize);
    (from < mesh.cores && to < mesh.cores).then(|| {
        // With interrupts off: a handler on this core that sent to `to` meanwhile would wait on this `call_once`
        // forever. In kernel mode: a SIP's thread sends wakes too, and the lanes are the kernel's memory, not its.
        &**x86_64::instructions::interrupts::without_interrupts(|| {
            mesh.lanes[from * mesh.cores + to].call_once(|| {
                let _kernel = crate::exec::KernelAccount::enter();
                let lanes = Box::new(Lanes {
                    wakes: ArrayQueue::new(WAKE_LANE),
                    requests: ArrayQueue::new(REQUEST_LANE),
                    backlog: IrqMutex::new(VecDeque::new()),
                });
                // Before anything is pushed into them: the receiver finds them by this bit once it looks.
                mesh.senders[to].insert(from);
                mesh.receivers[from].insert(to);
                lanes
            })
        })
    })
}

/// Makes sure core `to` looks at its lanes soon: an IPI, unless one is already on its way.
fn kick(to: u32) {
    let Some(mesh) = MESH.get() else { return };
    if mesh.ipi_pending[to as usize].swap(true, Ordering::AcqRel) {
        return;
    }
    if let Some(core) = crate::cores::cores().get(to as usize)
        && let Err(e) = apic::send_ipi(core.apic_id, apic::Ipi::Fixed(CALL_VECTOR))
    {
        mesh.ipi_pending[to as usize].store(false, Ordering::Release);
        log::warn!("cannot send an IPI to cpu {to}: {e:?}");
    }
}

/// Makes thread `thread` (or the task of that number, `tasks`) of core `core` ready, whichever core the caller
/// runs on.
pub fn wake(core: u32, thread: ThreadId) {
    if core == percpu::current_index() {
        super::blocking::wake_local(thread);
    } else {
        send_wake(core, thread);
    }
}

/// Makes thread `thread` of core `to` (another core) ready. Wakes for a core that is not running are dropped.
fn send_wake(to: u32, thread: ThreadId) {
    let Some(lane) = lanes_to(to) else { return };
    let mut item = thread.0;
    while let Err(back) = lane.wakes.push(item) {
        // Full: the receiver drains in its IPI handler. Drain ours meanwhile, so two cores sending to each other
        // with interrupts off cannot wait on each other.
        item = back;
        kick(to);
        drain_wakes();
        core::hint::spin_loop();
    }
    kick(to);
}

/// Sends `request` to core `to` (in order after everything this core sent it before). Never waits: when the
/// lane is full the request joins this core's backlog for `to`, which the monitor thread moves into the lane as
/// room appears (so no two cores can ever wait on each other's full lanes).
pub fn send(to: u32, request: Box<dyn Request>) {
    let Some(lane) = lanes_to(to) else { return };
    SENT[percpu::current_index() as usize].fetch_add(1, Ordering::Relaxed);
    let mut backlog = lane.backlog.lock();
    let queued = if backlog.is_empty() {
        match lane.requests.push(request) {
            Ok(()) => false,
            Err(back) => {
                backlog.push_back(back);
                true
            }
        }
    } else {
        backlog.push_back(request);
        true
    };
    drop(backlog);
    kick(to);
    if queued {
        wake_monitor();
    }
}

/// Moves this core's backlogged requests into their lanes while there is room (the monitor thread's work);
/// returns whether some are still waiting.
pub fn flush_backlogs() -> bool {
    let Some(mesh) = MESH.get() else { return false };
    let me = percpu::current_index();
    let mut waiting = false;
    for to in mesh.receivers[me as usize].starting_at(0) {
        let Some(lane) = lanes(me, to) else { continue };
        let mut backlog = lane.backlog.lock();
        if backlog.is_empty() {
            continue;
        }
        while let Some(request) = backlog.pop_front() {
            if let Err(back) = lane.requests.push(request) {
                backlog.push_front(back);
                break;
            }
        }
        if backlog.is_empty() {
            // A burst's backlog gives its memory back: it is rare, and the kernel heap is everybody's.
            backlog.shrink_to_fit();
        }
        waiting |= !backlog.is_empty();
        drop(backlog);
        kick(to);
    }
    waiting
}

/// The IPI handler's work on this core: apply every wake-up sent here; returns whether requests wait for the
/// monitor thread.
pub fn drain_wakes() -> bool {
    let Some(mesh) = MESH.get() else { return false };
    let me = percpu::current_index();
    mesh.ipi_pending[me as usize].store(false, Ordering::Release);
    let mut requests = false;
    for from in mesh.senders[me as usize].starting_at(0) {
        let Some(lane) = lanes(from, me) else { continue };
        while let Some(thread) = lane.wakes.pop() {
            super::blocking::wake_local(ThreadId(thread));
        }
        requests |= !lane.requests.is_empty();
    }
    requests
}

/// The next request sent to this core, taking the sending cores in turn from `start`; for the monitor thread,
/// which handles it through [`serve`].
pub fn next_request(start: u32) -> Option<(u32, Box<dyn Request>)> {
    let mesh = MESH.get()?;
    let me = percpu::current_index();
    mesh.senders[me as usize].starting_at(start).find_map(|from| Some((from, lanes(from, me)?.requests.pop()?)))
}

/// Per core: the core whose request its monitor is handling now (`u32::MAX`: none).
static SERVING: [core::sync::atomic::AtomicU32; percpu::MAX_CPUS] =
    [const { core::sync::atomic::AtomicU32::new(u32::MAX) }; percpu::MAX_CPUS];

/// Handles `request`, sent by core `from`, on this core's monitor thread: a [`multicast`] it makes meanwhile
/// reaches `from` first and directly, in the lane its answer will take.
pub fn serve(from: u32, request: Box<dyn Request>) {
    let me = percpu::current_index() as usize;
    TAKEN[me].fetch_add(1, Ordering::Relaxed);
    SERVING[me].store(from, Ordering::Relaxed);
    request.handle();
    SERVING[me].store(u32::MAX, Ordering::Relaxed);
}

/// The core whose request this core's monitor is handling, if any.
fn requester() -> Option<u32> {
    let from = SERVING.get(percpu::current_index() as usize)?.load(Ordering::Relaxed);
    (from != u32::MAX).then_some(from)
}

/// How a message for every other core travels ([`multicast`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// From the sender to each core in turn (n - 1 sends by one core).
    OneByOne,
    /// Along one fixed tree of all cores ([`FANOUT`] children per core, core 0 at the root): the sender sends to
    /// its neighbours in the tree, and each core passes the message on to its other neighbours before it takes
    /// it itself. No core sends more than `FANOUT + 1` copies, a message crosses at most twice the tree's depth
    /// (log n to base `FANOUT`), and only the tree's edges carry multicasts (2 (n - 1) lanes, where messages
    /// from every core to every other would make n (n - 1)).
    Tree,
}

/// Children per core in the [`Scheme::Tree`]. Four: 255 cores are 4 levels deep (one-by-one is one level of 254
/// sends from one core, each an IPI it pays for), and a forwarder's work stays a few sends.
pub const FANOUT: u32 = 4;

/// The scheme in use (a `Scheme` as its index; `Tree` unless a test or a measurement chose otherwise).
static SCHEME: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(Scheme::Tree as u8);

/// The scheme [`multicast`] uses.
pub fn scheme() -> Scheme {
    if SCHEME.load(Ordering::Relaxed) == Scheme::OneByOne as u8 { Scheme::OneByOne } else { Scheme::Tree }
}

/// Makes [`multicast`] use `scheme` from now on. Both reach every core with every message, in the order each
/// sender sent them; switch only while no multicast is in flight (a message sent one way may be overtaken by
/// the next sent the other way).
pub fn set_scheme(scheme: Scheme) {
    SCHEME.store(scheme as u8, Ordering::Relaxed);
}

/// A message for every running core: what each does with it.
pub trait Multicast: Clone + Send + 'static {
    /// Takes the message on the receiving core (its monitor thread; must not wait for another core).
    fn deliver(self);
}

/// A multicast on its way along the tree: the tree node it came from (it is not sent back there), the core that
/// had it directly (it passes the tree's copy on without taking it again), and the message.
struct Relay<M: Multicast> {
    from: u32,
    direct: u32,
    message: M,
}

impl<M: Multicast> Request for Relay<M> {
    fn handle(self: Box<Self>) {
        let me = percpu::current_index();
        pass_on(me, Some(self.from), self.direct, &self.message);
        if me != self.direct {
            self.message.deliver();
        }
    }
}

/// A message of a one-by-one multicast (or a requester's direct copy): taken where it arrives.
struct Direct<M: Multicast>(M);

impl<M: Multicast> Request for Direct<M> {
    fn handle(self: Box<Self>) {
        self.0.deliver();
    }
}

/// The neighbours of core `node` in the tree over `cores` cores: its parent (`(node - 1) / FANOUT`) and its
/// children (`FANOUT * node + 1 ..= FANOUT * node + FANOUT`). Every core computes the same tree, so the messages of
/// one sender reach each core along one path, in the order they were sent.
fn neighbours(node: u32, cores: u32) -> impl Iterator<Item = u32> {
    let parent = node.checked_sub(1).map(|n| n / FANOUT);
    let first = u64::from(node) * u64::from(FANOUT) + 1;
    let children = (first..first + u64::from(FANOUT)).take_while(move |c| *c < u64::from(cores)).map(|c| c as u32);
    parent.into_iter().chain(children)
}

/// Sends `message` from tree node `node` to its neighbours but `from`. A neighbour that is not running is passed
/// over: its own neighbours are served in its place, so a core that failed to start cuts nothing off.
fn pass_on<M: Multicast>(node: u32, from: Option<u32>, direct: u32, message: &M) {
    let Some(mesh) = MESH.get() else { return };
    for next in neighbours(node, mesh.cores as u32).filter(|n| Some(*n) != from) {
        if crate::cores::is_online(next) {
            send(next, Box::new(Relay { from: node, direct, message: message.clone() }));
        } else {
            pass_on(next, Some(node), direct, message);
        }
    }
}

/// Sends `message` to every other running core, which delivers it on its monitor thread, by the current
/// [`scheme`]; a sender's messages reach each core in the order sent. If this runs while the monitor handles a
/// request from core `A` ([`serve`]), `A` gets the message first and directly, in the lane its answer will then
/// take, so it has the message before it sees the answer (the users' updates about one key start with the one
/// that answers a request, so the direct copy never overtakes an earlier update of its key).
pub fn multicast<M: Multicast>(message: M) {
    let me = percpu::current_index();
    let direct = requester().filter(|from| *from != me && crate::cores::is_online(*from));
    if let Some(core) = direct {
        send(core, Box::new(Direct(message.clone())));
    }
    match scheme() {
        Scheme::OneByOne => {
            for core in crate::cores::online_cores().filter(|c| *c != me && Some(*c) != direct) {
                send(core, Box::new(Direct(message.clone())));
            }
        }
        Scheme::Tree => pass_on(me, None, direct.unwrap_or(u32::MAX), &message),
    }
}

/// Wakes this core's monitor thread (a request joined a backlog, or work was posted for it).
pub fn wake_monitor() {
    if let Some(id) = crate::cores::this_core().and_then(crate::cores::Core::monitor) {
        sched::wake(ThreadId(id));
    }
}

crate::selftest! {
    /// A probe of every core comes back by both schemes (on one core there is nobody to ask) with one message
    /// to each other core and one back; one by one, the probing core sends and takes them all, along the tree
    /// no core handles more than its neighbours' worth. A tree probe leaves nothing pending on any core: every
    /// core's part was answered once. (Counts are the least of three probes: another core's traffic, such as a
    /// SIP of an earlier test being reclaimed, may add to one.)
    fn probes_of_every_core_come_back_by_both_schemes() {
        let cores = crate::cores::online_cores().count() as u64;
        for scheme in [Scheme::OneByOne, Scheme::Tree] {
            let mut least = (u64::MAX, u64::MAX);
            for _ in 0..3 {
                let took = probe_all(scheme);
                crate::check!(took.is_some() == (cores > 1), "{scheme:?} probe answered {took:?} on {cores} core(s)");
                if let Some(cost) = took {
                    least = (least.0.min(cost.messages), least.1.min(cost.busiest));
                }
            }
            if cores > 1 {
                let busiest = match scheme {
                    Scheme::OneByOne => 2 * (cores - 1),
                    Scheme::Tree => 2 * (u64::from(FANOUT) + 1).min(cores - 1),
                };
                crate::check!(least.0 == 2 * (cores - 1), "{scheme:?}: {} messages for {cores} cores", least.0);
                crate::check!(least.1 <= busiest, "{scheme:?}: the busiest core handled {} messages (at most {busiest})", least.1);
            }
        }
        for core in crate::cores::online_cores() {
            let left = PENDING[core as usize].lock().len();
            crate::check!(left == 0, "cpu {core} still waits on {left} tree probe(s)");
        }
        Ok(())
    }
}
