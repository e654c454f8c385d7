//! One direction of a channel: a bounded single-producer single-consumer ring, its two close flags and the
//! wake protocol that lets a consumer block without ever missing a message or a close.
//!
//! Not here: who the producer and consumer are (the raw endpoints own that), how a thread blocks (a `park`
//! closure from the platform's `Blocking` hook) and message typing.
//!
//! Invariants:
//! - exactly one producer calls [`Ring::push`] and exactly one consumer calls [`Ring::pop`] (callers promise it);
//! - message number `n` (counting from 0) goes into slot `n % len`, and that slot's stamp says where it is:
//!   `2n` while the slot is free for it, `2n + 1` once it holds it; the consumer then stamps it `2(n + len)`, free
//!   for the message `len` later. So at most `len` (the capacity) messages are ever in flight, and a slot holds
//!   an initialised message exactly when its stamp is odd. (With `n` and `n + 1`, as in Vyukov's queue, a
//!   one-slot ring could not tell "full with message 0" from "free for message 1": loom found it);
//! - only the producer writes `tail` and a slot's contents, only the consumer writes `head`; each keeps its own
//!   position in the slot array privately;
//! - after `push` or `close_producer` the producer calls [`WaitCell::notify`], after which a consumer that
//!   registered in the cell is woken or sees the new state before it parks (proved for all interleavings by
//!   the loom test, which includes this very file).
//!
//! Why stamps in the slots (the design of Vyukov's bounded queue and of FastForward, rather than Lamport's ring
//! that rtrb and most SPSC crates use): a consumer of a Lamport ring polls the producer's `tail`, and when it
//! moves, fetches the message from its slot, a second cache line; a producer whose ring looks full (every time,
//! for the one-slot rings of a request/reply contract) first fetches the consumer's `head`. Each is a line that
//! must come from the other core, one after the other, on every message. Here the consumer polls the slot itself,
//! and the line that tells it a message is there is the line that holds it; the producer learns that the slot is
//! free from the slot it is about to write anyway. `head` and `tail` remain, each in its writer's own line, for
//! counting (`len`, `consumed`); the fast paths never read the other side's, and readiness is judged by the
//! stamp, as a receive does.
//!
//! Wake protocol (the [`WaitCell`]): every change of the cell's state is a read-modify-write on that one
//! atomic, so the producer's "I pushed" (a swap to `NOTIFIED` after publishing the message) and the consumer's
//! "I am about to park" (a swap to `WAITING` after storing its wake token, followed by a last look at the ring)
//! are totally ordered by the state's modification order: whichever comes second sees the other. A cheaper
//! producer (a plain load of the state, swapping only when it reads `WAITING`) loses wake-ups: on x86 the load
//! may be satisfied while the message's stores still sit in the store buffer, so producer and consumer each
//! miss the other's write; the benchmark hung within seconds when tried. Making it sound needs a full fence on
//! the producer's side anyway (Dekker), which costs what the swap costs, and loom models `SeqCst` fences only as
//! acquire-release, so it could not prove that version.
//!
//! Who to wake is a plain number, the consumer's *wake token* (the platform's name for a thread), not a
//! `Waker`: a ring lives in memory that two processes share, and whoever wakes the consumer (the producer, or
//! the kernel closing a dead producer's side) must never call a function pointer found there. A token is
//! data; the platform checks it before it acts on it, and a stale one (a thread that is gone) wakes nobody.
//! It also needs no lock: the consumer stores it before it announces `WAITING`, and the producer reads it only
//! after it saw `WAITING`.
//!
//! Rings never drop their messages: a ring's memory is part of its channel's block, and a channel is freed by
//! the platform's ownership records (everything a queued message holds is recorded as held by the ring), never
//! by running a message type's drop code (which could be anyone's).
//!
//! The file names its atomics through `super::sync`, so the loom test can substitute loom's.

use super::sync::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, UnsafeCell};
use core::alloc::Layout;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

/// Keeps what one side writes off the cache lines the other side reads (no false sharing).
#[repr(C, align(64))]
struct CachePadded<T>(T);

/// A bounded SPSC ring of `T`.
///
/// Layout (`repr(C)`, the same for every `T`: the slots are behind a pointer): the consumer's line, the
/// producer's line (with the wait cell) and a read-mostly rest, each a cache line of its own; the slots in a
/// block of whole lines of their own, which the channel allocates with the rings. On the fast path each side
/// writes only its own line and the slots (see the module docs for why the slots carry the handshake). Because
/// the layout does not depend on `T`, code that only closes or wakes (the platform reclaiming a dead process's
/// endpoints) sees any ring as a `Ring<()>` and touches only its flags and wait cell, never a slot.
#[repr(C)]
pub(crate) struct Ring<T> {
    /// The consumer's line.
    consumer: CachePadded<ConsumerSide>,
    /// The producer's line, and the wait cell.
    producer: CachePadded<ProducerSide>,
    /// `len` slots, laid out by [`Ring::slots_layout`]: the array starts on a cache line of its own and fills
    /// whole lines, so a one-slot ring's message and stamp share one line and no slot shares its line with
    /// unrelated data.
    slots: NonNull<Slot<T>>,
    /// Number of slots: the capacity, or one for a ring of capacity 0 (whose slot is stamped never to match).
    len: usize,
    /// The most messages the ring holds at once (the contract's bound for this direction).
    capacity: usize,
    /// The producer's endpoint is gone: after draining, the consumer sees `Closed`.
    producer_closed: AtomicBool,
    /// The consumer's endpoint is gone: sends fail and return their message.
    consumer_closed: AtomicBool,
    /// A short message beside the slots, for a consumer held for a ring-3 SIP ([`Direct`]).
    direct: Direct,
}

/// A message's place in the ring, and the stamp that says whose turn it is (module docs).
pub(crate) struct Slot<T> {
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// Written by the consumer only.
struct ConsumerSide {
    /// Messages taken so far: the number of the next message to take.
    head: AtomicUsize,
    /// Its slot (`head % len`, kept rather than divided for).
    position: UnsafeCell<usize>,
}

/// Written by the producer only, except for the wait cell.
struct ProducerSide {
    /// Messages pushed so far: the number of the next message to push.
    tail: AtomicUsize,
    /// Its slot (`tail % len`).
    position: UnsafeCell<usize>,
    /// Where a blocked consumer waits.
    wait: WaitCell,
}

/// The stamp of a slot free for message `n`.
#[inline]
fn free_for(n: usize) -> usize {
    n.wrapping_mul(2)
}

/// The stamp of a slot that holds message `n`.
#[inline]
fn full_with(n: usize) -> usize {
    n.wrapping_mul(2) | 1
}

/// A stamp no message number reaches (odd, so never "free"; "full" only for message `usize::MAX / 2`): the slot
/// of a ring of capacity 0 is neither free nor full.
const NEVER: usize = usize::MAX;

// SAFETY: the ring moves `T`s from the producer's thread to the consumer's, so `T: Send` suffices; every shared
// field is an atomic or is accessed under the SPSC discipline that `push`/`pop` callers promise, with each
// slot's contents handed over by its stamp (release on write, acquire on read).
unsafe impl<T: Send> Sync for Ring<T> {}
// SAFETY: as above: owning the ring only owns `T`s, which may move between threads.
unsafe impl<T: Send> Send for Ring<T> {}

impl<T> Ring<T> {
    /// How many slots a ring of `capacity` has (at least one).
    pub(crate) fn slot_count(capacity: usize) -> usize {
        capacity.max(1)
    }

    /// Where `len` slots live: whole cache lines (at least one, so never a zero-sized block); `None` if that
    /// much does not fit in the address space.
    pub(crate) fn slots_layout(len: usize) -> Option<Layout> {
        Layout::array::<Slot<T>>(len)
            .and_then(|layout| layout.align_to(64))
            .and_then(|layout| Layout::from_size_align(layout.size().max(1), layout.align()))
            .map(|layout| layout.pad_to_align())
            .ok()
    }

    /// A ring that holds at most `capacity` messages (a zero capacity ring refuses every push), over the slot
    /// array at `slots`, which this initialises.
    ///
    /// # Safety
    /// `slots` is valid for writes of `slots_layout(slot_count(capacity))`, suitably aligned, and used by this
    /// ring alone for as long as the ring is.
    pub(crate) unsafe fn new(slots: NonNull<Slot<T>>, capacity: usize) -> Self {
        let len = Self::slot_count(capacity);
        for index in 0..len {
            let stamp = if capacity == 0 { NEVER } else { free_for(index) };
            // SAFETY: the caller gives us room for `len` slots; this initialises the stamps and cells (the
            // messages in them stay uninitialised).
            unsafe {
                slots
                    .add(index)
                    .write(Slot { stamp: AtomicUsize::new(stamp), value: UnsafeCell::new(MaybeUninit::uninit()) })
            };
        }
        Self {
            consumer: CachePadded(ConsumerSide { head: AtomicUsize::new(0), position: UnsafeCell::new(0) }),
            producer: CachePadded(ProducerSide {
                tail: AtomicUsize::new(0),
                position: UnsafeCell::new(0),
                wait: WaitCell::new(),
            }),
            slots,
            len,
            capacity,
            producer_closed: AtomicBool::new(false),
            consumer_closed: AtomicBool::new(false),
            direct: Direct::new(),
        }
    }

    /// This ring seen without its message type: for closing, which never touches a slot.
    #[inline]
    pub(crate) fn erased(&self) -> &Ring<()> {
        // SAFETY: `Ring<T>` is `repr(C)` and its only `T`-dependent field is a thin pointer, so `Ring<()>` has the
        // same layout; the erased view is only used for the flags and the wait cell.
        unsafe { &*(self as *const Self).cast::<Ring<()>>() }
    }

    /// The slot at `position`, a position kept by `push` or `take` (so below `len`: they start at 0 and advance
    /// by `next`).
    #[inline]
    fn slot(&self, position: usize) -> &Slot<T> {
        // SAFETY: `position < len`, the number of slots, all initialised by `new` and alive while the ring is.
        unsafe { &*self.slots.as_ptr().add(position) }
    }

    /// The position after `position`, wrapping at `len`.
    #[inline]
    fn next(&self, position: usize) -> usize {
        let next = position.wrapping_add(1);
        if next == self.len { 0 } else { next }
    }

    /// The most messages the ring holds at once.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends `value`, or gives it back if the ring is full.
    ///
    /// # Safety
    /// The caller is the ring's only producer: no other `push` runs concurrently or ever runs on another thread
    /// without a happens-before edge to this one.
    #[inline]
    pub(crate) unsafe fn push(&self, value: T) -> Result<(), T> {
        let producer = &self.producer.0;
        // Relaxed: only this thread writes `tail`.
        let tail = producer.tail.load(Ordering::Relaxed);
        // SAFETY: the producer's position is touched only by the producer, and the caller is the only producer
        // (here and below).
        let position = producer.position.with(|p| unsafe { *p });
        let slot = self.slot(position);
        // Acquire: the consumer's read of the message this slot held before happens before we overwrite it.
        if slot.stamp.load(Ordering::Acquire) != free_for(tail) {
            return Err(value);
        }
        slot.value.with_mut(|p| {
            // SAFETY: the stamp says the slot is free for message `tail`: the consumer is done with it and does
            // not read it until we stamp it full, and we are the only producer.
            unsafe { p.write(MaybeUninit::new(value)) }
        });
        // Release: publishes the message together with its stamp.
        slot.stamp.store(full_with(tail), Ordering::Release);
        // Release: `len` then counts the message.
        producer.tail.store(tail.wrapping_add(1), Ordering::Release);
        // SAFETY: as above, producer-only.
        producer.position.with_mut(|p| unsafe { *p = self.next(position) });
        Ok(())
    }

    /// Whether a `push` now would find room (the producer's own view; only the producer fills slots, so room
    /// it sees stays until its next push).
    ///
    /// # Safety
    /// The caller is the ring's only producer.
    #[inline]
    pub(crate) unsafe fn has_room(&self) -> bool {
        let producer = &self.producer.0;
        let tail = producer.tail.load(Ordering::Relaxed);
        // SAFETY: the producer's position is touched only by the producer, and the caller is the only producer.
        let position = producer.position.with(|p| unsafe { *p });
        self.slot(position).stamp.load(Ordering::Acquire) == free_for(tail)
    }

    /// The number of the oldest message, if any (consumer only). It stays the oldest until [`Ring::take`] takes
    /// it.
    ///
    /// # Safety
    /// The caller is the ring's only consumer (same rule as `push`, for `pop`).
    #[inline]
    pub(crate) unsafe fn front(&self) -> Option<usize> {
        let consumer = &self.consumer.0;
        // Relaxed: only this thread writes `head`.
        let head = consumer.head.load(Ordering::Relaxed);
        // SAFETY: the consumer's position is touched only by the consumer, and the caller is the only consumer.
        let position = consumer.position.with(|p| unsafe { *p });
        // Acquire: pairs with the producer's release of the stamp, making the message visible.
        (self.slot(position).stamp.load(Ordering::Acquire) == full_with(head)).then_some(head)
    }

    /// The consumer's slot: where the message `front` found lies.
    ///
    /// # Safety
    /// The caller is the ring's only consumer.
    #[inline]
    unsafe fn front_slot(&self) -> &Slot<T> {
        // SAFETY: the consumer's position is touched only by the consumer, and the caller is the only consumer.
        self.slot(self.consumer.0.position.with(|p| unsafe { *p }))
    }

    /// Looks at the oldest message without taking it.
    ///
    /// # Safety
    /// The caller is the ring's only consumer, and its last [`Ring::front`] found a message, not taken since.
    #[inline]
    pub(crate) unsafe fn peek<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        // SAFETY: the caller is the only consumer.
        unsafe { self.front_slot() }.value.with(|p| {
            // SAFETY: `front` saw the slot stamped full, so it holds an initialised message, and the producer
            // leaves it alone until we stamp it free, which we do not do while `f` runs.
            f(unsafe { (*p).assume_init_ref() })
        })
    }

    /// Takes the oldest message, `head` from [`Ring::front`].
    ///
    /// # Safety
    /// The caller is the ring's only consumer, and `head` came from its last `front`, with no `take` since.
    #[inline]
    pub(crate) unsafe fn take(&self, head: usize) -> T {
        // SAFETY: the caller is the only consumer.
        let slot = unsafe { self.front_slot() };
        let value = slot.value.with(|p| {
            // SAFETY: as in `peek`, the slot holds a message and is ours until we stamp it free; reading moves
            // the value out and the slot counts as empty after.
            unsafe { p.read().assume_init() }
        });
        // Release: our read of the message happens before the producer may reuse the slot.
        slot.stamp.store(free_for(head.wrapping_add(self.len)), Ordering::Release);
        let consumer = &self.consumer.0;
        consumer.head.store(head.wrapping_add(1), Ordering::Release);
        // SAFETY: the caller is the only consumer, and the consumer's position is its alone.
        consumer.position.with_mut(|p| unsafe { *p = self.next(*p) });
        value
    }

    /// Removes the oldest message, if any.
    ///
    /// # Safety
    /// The caller is the ring's only consumer (same rule as `push`, for `pop`).
    #[inline]
    #[allow(dead_code, reason = "the loom model's consumer; the endpoints take by index (`front`, `take`)")]
    pub(crate) unsafe fn pop(&self) -> Option<T> {
        // SAFETY: the caller is the only consumer, and `take` follows its own `front` directly.
        unsafe { self.front().map(|head| self.take(head)) }
    }

    /// Messages currently queued (exact when called by the producer or the consumer with the other side idle).
    pub(crate) fn len(&self) -> usize {
        let head = self.consumer.0.head.load(Ordering::Acquire);
        let tail = self.producer.0.tail.load(Ordering::Acquire);
        // The consumer learns of a message from its slot's stamp, before the producer's `tail` may reach it: a
        // consumer can have taken a message its view of `tail` does not count yet (head ahead of tail).
        usize::try_from(tail.wrapping_sub(head).cast_signed()).unwrap_or(0)
    }

    /// Messages consumed so far (wrapping); `select` uses it to rotate its polling order.
    pub(crate) fn consumed(&self) -> usize {
        self.consumer.0.head.load(Ordering::Relaxed)
    }

    /// The short-message slot beside the ring ([`Direct`]).
    #[inline]
    pub(crate) fn direct(&self) -> &Direct {
        &self.direct
    }

    /// Hands `words` (a message of `len` bytes) to the consumer beside the ring, if the consumer takes messages
    /// that way ([`Direct::open`]), its slot is free and the ring is empty (everything pushed so far was taken,
    /// so this message is the oldest one queued); wakes the consumer if it waits. `false`: nothing was done.
    ///
    /// # Safety
    /// The caller is the ring's only producer.
    #[inline]
    pub(crate) unsafe fn put_direct(&self, words: [u64; DIRECT_WORDS], len: usize, wake: impl FnOnce(u64)) -> bool {
        // Acquire: the consumer's take of the last pushed message happens before this message overtakes nothing.
        let tail = self.producer.0.tail.load(Ordering::Relaxed);
        if self.consumer.0.head.load(Ordering::Acquire) != tail || !self.direct.put(words, len) {
            return false;
        }
        self.producer.0.wait.notify(wake);
        true
    }

    /// What the consumer takes next from a ring whose slot beside it is in use: the slot's message if there is
    /// one, else the ring's oldest ([`Direct`] has the order). The ring is looked at first: a message found there
    /// may have been sent after one that reached the slot meanwhile, which the second look then finds.
    ///
    /// # Safety
    /// The caller is the ring's only consumer.
    #[inline]
    pub(crate) unsafe fn next_direct_first(&self) -> Option<Next> {
        // SAFETY: the caller is the only consumer.
        let front = unsafe { self.front() };
        if let Some((words, len)) = self.direct.take() {
            return Some(Next::Direct(words, len));
        }
        front.map(Next::Front)
    }

    /// Marks the producer gone and wakes the consumer (through `wake`, with its token), which drains what is
    /// queued and then sees `Closed`. Idempotent.
    pub(crate) fn close_producer(&self, wake: impl FnOnce(u64)) {
        self.producer_closed.store(true, Ordering::Release);
        self.producer.0.wait.notify(wake);
    }

    /// Marks the consumer gone: later sends give their message back. Idempotent.
    pub(crate) fn close_consumer(&self) {
        self.consumer_closed.store(true, Ordering::Release);
    }

    /// Whether the producer is gone.
    pub(crate) fn is_producer_closed(&self) -> bool {
        self.producer_closed.load(Ordering::Acquire)
    }

    /// Whether the consumer is gone.
    pub(crate) fn is_consumer_closed(&self) -> bool {
        self.consumer_closed.load(Ordering::Acquire)
    }

    /// Tells a waiting consumer that something changed (called by the producer after each push); `wake` is
    /// called with the consumer's token if it waits.
    #[inline]
    pub(crate) fn notify(&self, wake: impl FnOnce(u64)) {
        self.producer.0.wait.notify(wake);
    }
}

/// Something a consumer can wait on: a ring, seen without its message type (so `select` can mix rings). Only
/// the ring's consumer may ask.
pub(crate) trait Readiness {
    /// A message is queued or the producer is gone: a receive would not block.
    fn is_ready(&self) -> bool;
    /// The cell a waiting consumer registers in.
    fn wait_cell(&self) -> &WaitCell;
}

impl<T> Readiness for Ring<T> {
    fn is_ready(&self) -> bool {
        // By the stamp, as a receive looks, not by `len`: `tail` may not count a message whose stamp the consumer
        // already sees, and the waiting consumer would then see "ready" and "empty" in turn forever.
        // SAFETY: readiness is asked by the ring's consumer only (`Readiness`), and a look at the front is all
        // this does.
        unsafe { self.front() }.is_some() || self.is_producer_closed() || self.direct.is_full()
    }

    fn wait_cell(&self) -> &WaitCell {
        &self.producer.0.wait
    }
}

/// The consumer is not waiting.
const IDLE: u8 = 0;
/// The consumer stored its token and may be parked.
const WAITING: u8 = 1;
/// The producer pushed or closed since the consumer last looked.
const NOTIFIED: u8 = 2;

/// A consumer's wake token and a three-state flag. Every transition of the flag is a read-modify-write, so the
/// producer's "I pushed" and the consumer's "I am about to park" are totally ordered: either the producer sees
/// `WAITING` and wakes the consumer, or the consumer sees `NOTIFIED` (and, by acquire, the push) and does not park.
pub(crate) struct WaitCell {
    state: AtomicU8,
    /// The waiting consumer's wake token (module docs); written before `WAITING` is announced.
    token: AtomicU64,
}

impl WaitCell {
    fn new() -> Self {
        Self { state: AtomicU8::new(IDLE), token: AtomicU64::new(0) }
    }

    /// Stores `token` and announces that the consumer may park. Returns `false` if a notification arrived since
    /// the last [`reset`](Self::reset): the consumer must not park but look again.
    pub(crate) fn prepare(&self, token: u64) -> bool {
        // Relaxed: the swap below releases it, and a producer reads it only after acquiring `WAITING`.
        self.token.store(token, Ordering::Relaxed);
        self.state.swap(WAITING, Ordering::AcqRel) != NOTIFIED
    }

    /// Ends a wait (after parking or after deciding not to park).
    pub(crate) fn reset(&self) {
        // A swap, not a store: reading a `NOTIFIED` here acquires the push that caused it.
        self.state.swap(IDLE, Ordering::AcqRel);
    }

    /// Wakes the consumer (calls `wake` with its token) if it is waiting; otherwise leaves a note that it must
    /// not park.
    #[inline]
    pub(crate) fn notify(&self, wake: impl FnOnce(u64)) {
        if self.state.swap(NOTIFIED, Ordering::AcqRel) == WAITING {
            wake(self.token.load(Ordering::Relaxed));
        }
    }
}

/// What [`Ring::next_direct_first`] found.
pub(crate) enum Next {
    /// A short message beside the ring (taken): its words and its length in bytes.
    Direct([u64; DIRECT_WORDS], usize),
    /// The number of the ring's oldest message (not taken: [`Ring::take`] takes it).
    Front(usize),
}

/// Words in a [`Direct`] slot: a message of at most 32 bytes.
pub(crate) const DIRECT_WORDS: usize = 4;

/// The slot is not in use: the consumer takes messages from the ring only (a ring-0 receiver).
const DIRECT_CLOSED: u8 = 0;
/// The consumer takes direct messages, and none is there.
const DIRECT_EMPTY: u8 = 1;
/// A message is there: the state is this plus its length in bytes.
const DIRECT_FULL: u8 = 2;

/// A short message handed from producer to consumer beside the ring: the path of a message between two ring-3
/// SIPs (docs/protection.md, "The short path"). The kernel, sending for a ring-3 SIP, checks the message's
/// words and leaves them here instead of building a typed message in a slot; the kernel, receiving for the
/// other ring-3 SIP, hands them back as they are. Only plain data (no endpoint, no exchange block) comes here,
/// so a slot never owns anything: closing, breaking or freeing a channel ignores it.
///
/// Order: the producer uses the slot only while the ring is empty (every message pushed before was taken) and
/// the slot is free, so a message in the slot is older than every message in the ring; the consumer takes the
/// slot's message before the ring's. A consumer that found the slot empty and then a message in the ring looks
/// at the slot once more (the producer may have filled it before pushing that message, which the consumer's
/// acquire of the message's stamp then shows). The state moves only by read-modify-write or by its one writer
/// of the moment: `open` and `close` by the consumer's holder (closed <-> empty), `put` by the producer
/// (empty -> full), `take` by the consumer (full -> empty), so a consumer whose slot holds a message cannot
/// close it (its holder must take the message first).
pub(crate) struct Direct {
    state: AtomicU8,
    /// The message; written by the producer while the state is empty, read by the consumer while it is full.
    words: [AtomicU64; DIRECT_WORDS],
}

impl Direct {
    fn new() -> Self {
        Self { state: AtomicU8::new(DIRECT_CLOSED), words: core::array::from_fn(|_| AtomicU64::new(0)) }
    }

    /// The consumer takes direct messages from now on (its endpoint is held for a ring-3 SIP).
    pub(crate) fn open(&self) {
        // Only from closed: a slot that is open already stays as it is.
        let _ = self.state.compare_exchange(DIRECT_CLOSED, DIRECT_EMPTY, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// The consumer no longer takes direct messages (its endpoint leaves a ring-3 SIP); `false`, and the slot
    /// stays open, if a message is there.
    pub(crate) fn close(&self) -> bool {
        match self.state.compare_exchange(DIRECT_EMPTY, DIRECT_CLOSED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(state) => state == DIRECT_CLOSED,
        }
    }

    /// Whether a message is there.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.state.load(Ordering::Acquire) >= DIRECT_FULL
    }

    /// Leaves a message (producer only); `false` if the slot is closed or holds one.
    #[inline]
    fn put(&self, words: [u64; DIRECT_WORDS], len: usize) -> bool {
        // Acquire: the consumer's reads of the last message's words happen before we overwrite them.
        if len > DIRECT_WORDS * 8 || self.state.load(Ordering::Acquire) != DIRECT_EMPTY {
            return false;
        }
        for (slot, word) in self.words.iter().zip(words) {
            slot.store(word, Ordering::Relaxed);
        }
        // Release: the words are visible to whoever acquires the full state. A slot closed meanwhile refuses.
        self.state.compare_exchange(DIRECT_EMPTY, DIRECT_FULL + len as u8, Ordering::Release, Ordering::Relaxed).is_ok()
    }

    /// Takes the message, if one is there (consumer only): its words and its length.
    #[inline]
    pub(crate) fn take(&self) -> Option<([u64; DIRECT_WORDS], usize)> {
        let state = self.state.load(Ordering::Acquire);
        if state < DIRECT_FULL {
            return None;
        }
        let words = self.words.each_ref().map(|word| word.load(Ordering::Relaxed));
        // Release: our reads of the words happen before the producer's next write of them.
        self.state.store(DIRECT_EMPTY, Ordering::Release);
        Some((words, usize::from(state - DIRECT_FULL)))
    }
}

/// How a consumer waits: polls first, then parks.
pub(crate) struct Waiting<'a> {
    /// Polls before parking.
    pub(crate) spins: u32,
    /// Called between polls with the poll's number (spin, or yield the CPU to the peer).
    pub(crate) relax: &'a dyn Fn(u32),
    /// The calling thread's wake token.
    pub(crate) token: u64,
    /// Blocks until the token is woken (token semantics; may return spuriously).
    pub(crate) park: &'a dyn Fn(),
}

/// Blocks the calling consumer until one of `sources` is ready (possibly returning early: callers re-check).
///
/// `how.spins` polls come first (cheap when the peer answers quickly); then the consumer stores its token in
/// every source, re-checks, and parks — `park` may return spuriously, but must return after the token was
/// woken, even if the wake happened before `park` was called (token semantics, as `std::thread::park`).
pub(crate) fn wait_any(sources: &[&dyn Readiness], how: &Waiting<'_>) {
    for round in 0..how.spins {
        if sources.iter().any(|s| s.is_ready()) {
            return;
        }
        (how.relax)(round);
    }
    loop {
        let mut notified = false;
        for source in sources {
            // Register in every source even after one reported a notification, so `reset` below is uniform.
            if !source.wait_cell().prepare(how.token) {
                notified = true;
            }
        }
        let ready = notified || sources.iter().any(|s| s.is_ready());
        if !ready {
            (how.park)();
        }
        for source in sources {
            source.wait_cell().reset();
        }
        if ready || sources.iter().any(|s| s.is_ready()) {
            return;
        }
    }
}
