//! One direction of a channel: a bounded single-producer single-consumer ring, its two close flags and the
//! wake protocol that lets a consumer block without ever missing a message or a close.
//!
//! Not here: who the producer and consumer are (the raw endpoints own that), how a thread blocks (a `park`
//! closure from the platform's `Blocking` hook) and message typing.
//!
//! Invariants:
//! - exactly one producer calls [`Ring::push`] and exactly one consumer calls [`Ring::pop`] (callers promise it);
//! - `tail - head` never exceeds `capacity`; slots in `head..tail` are initialised, all others are not;
//! - `cached_head` is the producer's private, possibly stale copy of `head` (never ahead of it), `cached_tail` the
//!   consumer's of `tail`: stale copies only make the ring look fuller or emptier, never the reverse;
//! - after `push` or `close_producer` the producer calls [`WaitCell::notify`], after which a consumer that
//!   registered in the cell is woken or sees the new state before it parks (proved for all interleavings by
//!   the loom test, which includes this very file).
//!
//! The file names its atomics through `super::sync`, so the loom test can substitute loom's.

use super::sync::{AtomicBool, AtomicU8, AtomicUsize, Ordering, UnsafeCell, spin_hint};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::mem::MaybeUninit;
use core::task::Waker;

/// Keeps the producer's and the consumer's index on separate cache lines (no false sharing).
#[repr(align(64))]
struct CachePadded<T>(T);

/// A bounded SPSC ring of `T`.
///
/// Layout: what the producer writes, what the consumer writes and the wait cell each sit on their own cache line,
/// and the read-mostly rest on another, so a message costs one transfer of the `tail` line and one of the `head`
/// line, not a bounce of everything.
pub(crate) struct Ring<T> {
    /// The consumer's line.
    consumer: CachePadded<ConsumerSide>,
    /// The producer's line.
    producer: CachePadded<ProducerSide>,
    /// Where a blocked consumer waits (written by the producer on every push: kept off the other lines).
    wait: CachePadded<WaitCell>,
    /// A power-of-two number of slots, at least `capacity`.
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    /// The most messages the ring holds at once (the contract's bound for this direction).
    capacity: usize,
    /// The producer's endpoint is gone: after draining, the consumer sees `Closed`.
    producer_closed: AtomicBool,
    /// The consumer's endpoint is gone: sends fail and return their message.
    consumer_closed: AtomicBool,
}

/// Written by the consumer only.
struct ConsumerSide {
    /// Index of the next slot to read.
    head: AtomicUsize,
    /// The consumer's last look at `tail`: it re-reads the producer's line only when this says "empty".
    cached_tail: UnsafeCell<usize>,
}

/// Written by the producer only.
struct ProducerSide {
    /// Index of the next slot to write.
    tail: AtomicUsize,
    /// The producer's last look at `head`: it re-reads the consumer's line only when this says "full".
    cached_head: UnsafeCell<usize>,
}

// SAFETY: the ring moves `T`s from the producer's thread to the consumer's, so `T: Send` suffices; every shared
// field is an atomic or is accessed under the SPSC discipline that `push`/`pop` callers promise.
unsafe impl<T: Send> Sync for Ring<T> {}
// SAFETY: as above: owning the ring only owns `T`s, which may move between threads.
unsafe impl<T: Send> Send for Ring<T> {}

impl<T> Ring<T> {
    /// A ring that holds at most `capacity` messages (a zero capacity ring refuses every push).
    pub(crate) fn new(capacity: usize) -> Self {
        let len = capacity.max(1).next_power_of_two();
        let slots: Vec<UnsafeCell<MaybeUninit<T>>> = (0..len).map(|_| UnsafeCell::new(MaybeUninit::uninit())).collect();
        Self {
            consumer: CachePadded(ConsumerSide { head: AtomicUsize::new(0), cached_tail: UnsafeCell::new(0) }),
            producer: CachePadded(ProducerSide { tail: AtomicUsize::new(0), cached_head: UnsafeCell::new(0) }),
            wait: CachePadded(WaitCell::new()),
            slots: slots.into_boxed_slice(),
            mask: len - 1,
            capacity,
            producer_closed: AtomicBool::new(false),
            consumer_closed: AtomicBool::new(false),
        }
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
    pub(crate) unsafe fn push(&self, value: T) -> Result<(), T> {
        let producer = &self.producer.0;
        // Only the producer writes `tail`, so a relaxed load sees our own last store.
        let tail = producer.tail.load(Ordering::Relaxed);
        // SAFETY: `cached_head` is touched only by the producer, and the caller is the only producer.
        let mut head = producer.cached_head.with(|p| unsafe { *p });
        if tail.wrapping_sub(head) >= self.capacity {
            // Looks full: look at the consumer's real progress. Acquire: its reads of the slots before `head`
            // happen before we overwrite them.
            head = self.consumer.0.head.load(Ordering::Acquire);
            // SAFETY: as above, producer-only.
            producer.cached_head.with_mut(|p| unsafe { *p = head });
            if tail.wrapping_sub(head) >= self.capacity {
                return Err(value);
            }
        }
        let slot = &self.slots[tail & self.mask];
        slot.with_mut(|p| {
            // SAFETY: `tail - head < capacity <= slots.len()`, so this slot is outside `head..tail`: the consumer
            // does not read it until we publish `tail + 1`, and we are the only producer.
            unsafe { p.write(MaybeUninit::new(value)) }
        });
        // Release: publishes the slot's contents together with the new tail.
        producer.tail.store(tail.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Removes the oldest message, if any.
    ///
    /// # Safety
    /// The caller is the ring's only consumer (same rule as `push`, for `pop`).
    pub(crate) unsafe fn pop(&self) -> Option<T> {
        let consumer = &self.consumer.0;
        let head = consumer.head.load(Ordering::Relaxed);
        // SAFETY: `cached_tail` is touched only by the consumer, and the caller is the only consumer.
        let mut tail = consumer.cached_tail.with(|p| unsafe { *p });
        if head == tail {
            // Looks empty: look at the producer's real progress. Acquire: pairs with the producer's release of
            // `tail`, making the slots' contents visible.
            tail = self.producer.0.tail.load(Ordering::Acquire);
            // SAFETY: as above, consumer-only.
            consumer.cached_tail.with_mut(|p| unsafe { *p = tail });
            if head == tail {
                return None;
            }
        }
        let slot = &self.slots[head & self.mask];
        let value = slot.with(|p| {
            // SAFETY: `head != tail`, so the slot is in `head..tail` and initialised; the producer does not touch
            // it until we publish `head + 1`; reading moves the value out and the slot counts as empty after.
            unsafe { p.read().assume_init() }
        });
        // Release: our read of the slot happens before the producer may reuse it.
        consumer.head.store(head.wrapping_add(1), Ordering::Release);
        Some(value)
    }

    /// Messages currently queued (exact when called by the producer or the consumer with the other side idle).
    pub(crate) fn len(&self) -> usize {
        let head = self.consumer.0.head.load(Ordering::Acquire);
        let tail = self.producer.0.tail.load(Ordering::Acquire);
        tail.wrapping_sub(head)
    }

    /// Messages consumed so far (wrapping); `select` uses it to rotate its polling order.
    pub(crate) fn consumed(&self) -> usize {
        self.consumer.0.head.load(Ordering::Relaxed)
    }

    /// Marks the producer gone and wakes the consumer, which drains what is queued and then sees `Closed`.
    pub(crate) fn close_producer(&self) {
        self.producer_closed.store(true, Ordering::Release);
        self.wait.0.notify();
    }

    /// Marks the consumer gone: later sends give their message back.
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

    /// Tells a waiting consumer that something changed (called by the producer after each push).
    pub(crate) fn notify(&self) {
        self.wait.0.notify();
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // `&mut self`: no producer or consumer is left, so we may act as the consumer and drop what is queued.
        // SAFETY: exclusive access makes us the only consumer.
        while let Some(value) = unsafe { self.pop() } {
            drop(value);
        }
    }
}

/// Something a consumer can wait on: a ring, seen without its message type (so `select` can mix rings).
pub(crate) trait Readiness {
    /// A message is queued or the producer is gone: a receive would not block.
    fn is_ready(&self) -> bool;
    /// The cell a waiting consumer registers in.
    fn wait_cell(&self) -> &WaitCell;
}

impl<T> Readiness for Ring<T> {
    fn is_ready(&self) -> bool {
        self.len() != 0 || self.is_producer_closed()
    }

    fn wait_cell(&self) -> &WaitCell {
        &self.wait.0
    }
}

/// The consumer is not waiting.
const IDLE: u8 = 0;
/// The consumer registered its waker and may be parked.
const WAITING: u8 = 1;
/// The producer pushed or closed since the consumer last looked.
const NOTIFIED: u8 = 2;

/// A consumer's waker slot and a three-state flag. Every transition of the flag is a read-modify-write, so the
/// producer's "I pushed" and the consumer's "I am about to park" are totally ordered: either the producer sees
/// `WAITING` and wakes the consumer, or the consumer sees `NOTIFIED` (and, by acquire, the push) and does not park.
pub(crate) struct WaitCell {
    state: AtomicU8,
    /// Guards `waker`: the consumer replaces it while a late producer may still be cloning the old one.
    lock: AtomicBool,
    waker: UnsafeCell<Option<Waker>>,
}

impl WaitCell {
    fn new() -> Self {
        Self { state: AtomicU8::new(IDLE), lock: AtomicBool::new(false), waker: UnsafeCell::new(None) }
    }

    /// Runs `f` on the waker slot under the cell's spin lock (held for a clone or a store only).
    fn with_waker<R>(&self, f: impl FnOnce(&mut Option<Waker>) -> R) -> R {
        while self.lock.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            spin_hint();
        }
        let result = self.waker.with_mut(|p| {
            // SAFETY: we hold `lock`, so no other reference to the slot exists while `f` runs.
            f(unsafe { &mut *p })
        });
        self.lock.store(false, Ordering::Release);
        result
    }

    /// Registers `waker` and announces that the consumer may park. Returns `false` if a notification arrived
    /// since the last [`reset`](Self::reset): the consumer must not park but look again.
    pub(crate) fn prepare(&self, waker: &Waker) -> bool {
        self.with_waker(|slot| match slot {
            Some(current) if current.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        });
        self.state.swap(WAITING, Ordering::AcqRel) != NOTIFIED
    }

    /// Ends a wait (after parking or after deciding not to park).
    pub(crate) fn reset(&self) {
        // A swap, not a store: reading a `NOTIFIED` here acquires the push that caused it.
        self.state.swap(IDLE, Ordering::AcqRel);
    }

    /// Wakes the consumer if it is waiting; otherwise leaves a note that it must not park.
    #[inline]
    pub(crate) fn notify(&self) {
        if self.state.swap(NOTIFIED, Ordering::AcqRel) == WAITING
            && let Some(waker) = self.with_waker(|slot| slot.clone())
        {
            waker.wake();
        }
    }
}

/// How a consumer waits: polls first, then parks.
pub(crate) struct Waiting<'a> {
    /// Polls before parking.
    pub(crate) spins: u32,
    /// Called between polls with the poll's number (spin, or yield the CPU to the peer).
    pub(crate) relax: &'a dyn Fn(u32),
    /// A waker for the calling thread.
    pub(crate) make_waker: &'a dyn Fn() -> Waker,
    /// Blocks until the waker is woken (token semantics; may return spuriously).
    pub(crate) park: &'a dyn Fn(),
}

/// Blocks the calling consumer until one of `sources` is ready (possibly returning early: callers re-check).
///
/// `how.spins` polls come first (cheap when the peer answers quickly); then the consumer registers a waker in
/// every source, re-checks, and parks — `park` may return spuriously, but must return after the waker was woken,
/// even if the wake happened before `park` was called (token semantics, as `std::thread::park`).
pub(crate) fn wait_any(sources: &[&dyn Readiness], how: &Waiting<'_>) {
    for round in 0..how.spins {
        if sources.iter().any(|s| s.is_ready()) {
            return;
        }
        (how.relax)(round);
    }
    let (make_waker, park) = (how.make_waker, how.park);
    let waker = make_waker();
    loop {
        let mut notified = false;
        for source in sources {
            // Register in every source even after one reported a notification, so `reset` below is uniform.
            if !source.wait_cell().prepare(&waker) {
                notified = true;
            }
        }
        let ready = notified || sources.iter().any(|s| s.is_ready());
        if !ready {
            park();
        }
        for source in sources {
            source.wait_cell().reset();
        }
        if ready || sources.iter().any(|s| s.is_ready()) {
            return;
        }
    }
}
