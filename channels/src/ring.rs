//! One direction of a channel: a bounded single-producer single-consumer ring, its two close flags and the
//! wake protocol that lets a consumer block without ever missing a message or a close.
//!
//! Not here: who the producer and consumer are (the raw endpoints own that), how a thread blocks (a `park`
//! closure from the platform's `Blocking` hook) and message typing.
//!
//! Invariants:
//! - exactly one producer calls [`Ring::push`] and exactly one consumer calls [`Ring::pop`] (callers promise it);
//! - `tail - head` never exceeds `capacity`; slots in `head..tail` are initialised, all others are not;
//! - only the consumer writes `head` and only the producer writes `tail`; each keeps an exact private copy of
//!   the index it writes, so it never loads its own index back from the shared line;
//! - `cached_head` is the producer's private, possibly stale copy of `head` (never ahead of it), `cached_tail` the
//!   consumer's of `tail`: stale copies only make the ring look fuller or emptier, never the reverse;
//! - after `push` or `close_producer` the producer calls [`WaitCell::notify`], after which a consumer that
//!   registered in the cell is woken or sees the new state before it parks (proved for all interleavings by
//!   the loom test, which includes this very file).
//!
//! Wake protocol (the [`WaitCell`]): every change of the cell's state is a read-modify-write on that one
//! atomic, so the producer's "I pushed" (a swap to `NOTIFIED` after publishing `tail`) and the consumer's "I am
//! about to park" (a swap to `WAITING` after registering its waker, followed by a last look at the ring) are
//! totally ordered by the state's modification order: whichever comes second sees the other. A cheaper producer
//! (a plain load of the state, swapping only when it reads `WAITING`) loses wake-ups: on x86 the load may be
//! satisfied while the `tail` store still sits in the store buffer, so producer and consumer each miss the
//! other's write; the benchmark hung within seconds when tried. Making it sound needs a full fence on the
//! producer's side anyway (Dekker), which costs what the swap costs, and loom models `SeqCst` fences only as
//! acquire-release, so it could not prove that version. Measured, the swap is worth at most a few nanoseconds
//! of a 90 ns round trip; the cache-line layout (see [`Ring`]) was worth half of it.
//!
//! The file names its atomics through `super::sync`, so the loom test can substitute loom's.

use super::sync::{AtomicBool, AtomicU8, AtomicUsize, Ordering, UnsafeCell, spin_hint};
use core::alloc::Layout;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::task::Waker;

/// Keeps what one side writes off the cache lines the other side reads (no false sharing).
#[repr(align(64))]
struct CachePadded<T>(T);

/// A bounded SPSC ring of `T`.
///
/// Layout: four cache lines with a single writer each on the fast path, and the read-mostly rest on a fifth.
///
/// - `head` and `tail` are the only lines that cross between the cores: the consumer publishes `head` (which
///   the producer reads only when the ring looks full), the producer publishes `tail` (which the consumer polls
///   when the ring looks empty).
/// - Each side keeps its own copy of the index it publishes and its cached view of the other's in a line of
///   its own (`consumer`, `producer`), so it loads from a shared line only to learn something new. In an
///   earlier layout each side kept its cached view next to the index it published, rewrote it on every poll
///   and read its own index back from the shared line: any of those accesses may have to wait for the line to
///   come back from the other core, and a two-thread ping-pong took twice as long as rtrb's (~190 ns against
///   ~90 ns, spinning on both sides; rtrb keeps these copies in its endpoint structs). With this layout the two
///   match.
/// - The wait cell lives in the producer's line: the producer reads and writes it on every notify, the
///   consumer only to register before parking (the slow path).
pub(crate) struct Ring<T> {
    /// Index of the next slot to read. Written by the consumer only (a copy of `consumer.head`).
    head: CachePadded<AtomicUsize>,
    /// Index of the next slot to write. Written by the producer only (a copy of `producer.tail`).
    tail: CachePadded<AtomicUsize>,
    /// The consumer's private line.
    consumer: CachePadded<ConsumerSide>,
    /// The producer's private line, and the wait cell.
    producer: CachePadded<ProducerSide>,
    /// `mask + 1` slots (a power of two, at least `capacity`), allocated by [`Ring::slots_layout`]: the array
    /// starts on a cache line of its own and fills whole lines, so a message that fits in a line never
    /// straddles two and no slot shares its line with unrelated data (with the allocator's usual 16-byte
    /// alignment a 32-byte message could straddle two lines, and the one-slot rings of a request/reply
    /// contract shared a line with whatever was allocated next to them).
    slots: NonNull<UnsafeCell<MaybeUninit<T>>>,
    /// Slot count minus one: `index & mask` is the slot of `index`.
    mask: usize,
    /// The most messages the ring holds at once (the contract's bound for this direction).
    capacity: usize,
    /// The producer's endpoint is gone: after draining, the consumer sees `Closed`.
    producer_closed: AtomicBool,
    /// The consumer's endpoint is gone: sends fail and return their message.
    consumer_closed: AtomicBool,
}

/// Touched by the consumer only.
struct ConsumerSide {
    /// The consumer's own copy of `head` (always equal to it: only the consumer writes either).
    head: UnsafeCell<usize>,
    /// The consumer's last look at `tail`: it re-reads the producer's line only when this says "empty".
    cached_tail: UnsafeCell<usize>,
}

/// Touched by the producer only, except for the wait cell.
struct ProducerSide {
    /// The producer's own copy of `tail` (always equal to it: only the producer writes either).
    tail: UnsafeCell<usize>,
    /// The producer's last look at `head`: it re-reads the consumer's line only when this says "full".
    cached_head: UnsafeCell<usize>,
    /// Where a blocked consumer waits.
    wait: WaitCell,
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
        let layout = Self::slots_layout(len);
        // SAFETY: `slots_layout` never has size zero.
        let Some(slots) = NonNull::new(unsafe { alloc::alloc::alloc(layout) }.cast::<UnsafeCell<MaybeUninit<T>>>())
        else {
            alloc::alloc::handle_alloc_error(layout)
        };
        for index in 0..len {
            // SAFETY: the block holds `len` slots (`slots_layout`) and is ours alone; this initialises the cells
            // (the messages in them stay uninitialised).
            unsafe { slots.add(index).write(UnsafeCell::new(MaybeUninit::uninit())) };
        }
        Self {
            head: CachePadded(AtomicUsize::new(0)),
            tail: CachePadded(AtomicUsize::new(0)),
            consumer: CachePadded(ConsumerSide { head: UnsafeCell::new(0), cached_tail: UnsafeCell::new(0) }),
            producer: CachePadded(ProducerSide {
                tail: UnsafeCell::new(0),
                cached_head: UnsafeCell::new(0),
                wait: WaitCell::new(),
            }),
            slots,
            mask: len - 1,
            capacity,
            producer_closed: AtomicBool::new(false),
            consumer_closed: AtomicBool::new(false),
        }
    }

    /// Where `len` slots live: whole cache lines (at least one, so never a zero-sized allocation).
    fn slots_layout(len: usize) -> Layout {
        Layout::array::<UnsafeCell<MaybeUninit<T>>>(len)
            .and_then(|layout| layout.align_to(64))
            .and_then(|layout| Layout::from_size_align(layout.size().max(1), layout.align()))
            .map(|layout| layout.pad_to_align())
            .expect("ring capacity overflows the address space")
    }

    /// The slot of `index` (any index: it is masked).
    #[inline]
    fn slot(&self, index: usize) -> &UnsafeCell<MaybeUninit<T>> {
        // SAFETY: `index & mask < mask + 1`, the number of slots, all initialised as cells by `new` and alive
        // until `drop`.
        unsafe { &*self.slots.as_ptr().add(index & self.mask) }
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
        // SAFETY: the producer's private fields are touched only by the producer, and the caller is the only
        // producer (here and below).
        let tail = producer.tail.with(|p| unsafe { *p });
        // SAFETY: as above.
        let mut head = producer.cached_head.with(|p| unsafe { *p });
        if tail.wrapping_sub(head) >= self.capacity {
            // Looks full: look at the consumer's real progress. Acquire: its reads of the slots before `head`
            // happen before we overwrite them.
            head = self.head.0.load(Ordering::Acquire);
            // SAFETY: as above, producer-only.
            producer.cached_head.with_mut(|p| unsafe { *p = head });
            if tail.wrapping_sub(head) >= self.capacity {
                return Err(value);
            }
        }
        let slot = self.slot(tail);
        slot.with_mut(|p| {
            // SAFETY: `tail - head < capacity <= mask + 1`, so this slot is outside `head..tail`: the consumer
            // does not read it until we publish `tail + 1`, and we are the only producer.
            unsafe { p.write(MaybeUninit::new(value)) }
        });
        let tail = tail.wrapping_add(1);
        // SAFETY: producer-only, as above.
        producer.tail.with_mut(|p| unsafe { *p = tail });
        // Release: publishes the slot's contents together with the new tail.
        self.tail.0.store(tail, Ordering::Release);
        Ok(())
    }

    /// The index of the oldest message, if any (consumer only: refreshes the consumer's copy of `tail`). The
    /// index stays the oldest until [`Ring::take`] takes it.
    ///
    /// # Safety
    /// The caller is the ring's only consumer (same rule as `push`, for `pop`).
    #[inline]
    pub(crate) unsafe fn front(&self) -> Option<usize> {
        let consumer = &self.consumer.0;
        // SAFETY: the consumer's private fields are touched only by the consumer, and the caller is the only
        // consumer (here and below).
        let head = consumer.head.with(|p| unsafe { *p });
        // SAFETY: as above.
        let tail = consumer.cached_tail.with(|p| unsafe { *p });
        if head != tail {
            return Some(head);
        }
        // Looks empty: look at the producer's real progress. Acquire: pairs with the producer's release of
        // `tail`, making the slots' contents visible.
        let tail = self.tail.0.load(Ordering::Acquire);
        // SAFETY: as above, consumer-only.
        consumer.cached_tail.with_mut(|p| unsafe { *p = tail });
        (head != tail).then_some(head)
    }

    /// Looks at the oldest message, `head` from [`Ring::front`], without taking it.
    ///
    /// # Safety
    /// The caller is the ring's only consumer and `head` came from `front` with no `take` since.
    #[inline]
    pub(crate) unsafe fn peek_at<R>(&self, head: usize, f: impl FnOnce(&T) -> R) -> R {
        self.slot(head).with(|p| {
            // SAFETY: `front` saw `head != tail`, so the slot is in `head..tail` and initialised, and the
            // producer leaves it alone until we move `head`, which we do not do while `f` runs.
            f(unsafe { (*p).assume_init_ref() })
        })
    }

    /// Takes the oldest message, `head` from [`Ring::front`].
    ///
    /// # Safety
    /// As for [`Ring::peek_at`].
    #[inline]
    pub(crate) unsafe fn take(&self, head: usize) -> T {
        let value = self.slot(head).with(|p| {
            // SAFETY: as in `peek_at`, the slot is initialised and ours until we publish `head + 1`; reading
            // moves the value out and the slot counts as empty after.
            unsafe { p.read().assume_init() }
        });
        let head = head.wrapping_add(1);
        // SAFETY: the caller is the only consumer, and the consumer's private fields are its alone.
        self.consumer.0.head.with_mut(|p| unsafe { *p = head });
        // Release: our read of the slot happens before the producer may reuse it.
        self.head.0.store(head, Ordering::Release);
        value
    }

    /// Removes the oldest message, if any.
    ///
    /// # Safety
    /// The caller is the ring's only consumer (same rule as `push`, for `pop`).
    #[inline]
    pub(crate) unsafe fn pop(&self) -> Option<T> {
        // SAFETY: the caller is the only consumer, and `take` follows its own `front` directly.
        unsafe { self.front().map(|head| self.take(head)) }
    }

    /// Messages currently queued (exact when called by the producer or the consumer with the other side idle).
    pub(crate) fn len(&self) -> usize {
        let head = self.head.0.load(Ordering::Acquire);
        let tail = self.tail.0.load(Ordering::Acquire);
        tail.wrapping_sub(head)
    }

    /// Messages consumed so far (wrapping); `select` uses it to rotate its polling order.
    pub(crate) fn consumed(&self) -> usize {
        self.head.0.load(Ordering::Relaxed)
    }

    /// Marks the producer gone and wakes the consumer, which drains what is queued and then sees `Closed`.
    pub(crate) fn close_producer(&self, section: Section<'_>) {
        self.producer_closed.store(true, Ordering::Release);
        self.producer.0.wait.notify(section);
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
    #[inline]
    pub(crate) fn notify(&self, section: Section<'_>) {
        self.producer.0.wait.notify(section);
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // `&mut self`: no producer or consumer is left, so we may act as the consumer and drop what is queued.
        // SAFETY: exclusive access makes us the only consumer.
        while let Some(value) = unsafe { self.pop() } {
            drop(value);
        }
        let len = self.mask + 1;
        // SAFETY: the `len` cells were initialised by `new` and nothing refers to them any more; dropping a cell
        // does not drop a message (the ring is empty now, and `MaybeUninit` never drops its contents).
        unsafe { core::ptr::drop_in_place(core::ptr::slice_from_raw_parts_mut(self.slots.as_ptr(), len)) };
        // SAFETY: the block came from `alloc` with this very layout in `new`.
        unsafe { alloc::alloc::dealloc(self.slots.as_ptr().cast(), Self::slots_layout(len)) };
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
        &self.producer.0.wait
    }
}

/// Runs its argument inside the platform's uninterruptible section (`Blocking::uninterruptible_begin`): a
/// thread that may be ended from outside must never be ended while it holds a wait cell's lock, or the peer
/// would spin on it forever. Only the slow paths (a wake-up, registering to park) take the lock.
pub(crate) type Section<'a> = &'a dyn Fn(&mut dyn FnMut());

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

    /// Wakes the consumer if it is waiting; otherwise leaves a note that it must not park. Only the wake-up
    /// takes the cell's lock, inside `section`.
    #[inline]
    pub(crate) fn notify(&self, section: Section<'_>) {
        if self.state.swap(NOTIFIED, Ordering::AcqRel) == WAITING {
            section(&mut || {
                if let Some(waker) = self.with_waker(|slot| slot.clone()) {
                    waker.wake();
                }
            });
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
    /// Registering in the wait cells takes their locks: inside this section.
    pub(crate) uninterruptible: Section<'a>,
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
        (how.uninterruptible)(&mut || {
            for source in sources {
                // Register in every source even after one reported a notification, so `reset` below is uniform.
                if !source.wait_cell().prepare(&waker) {
                    notified = true;
                }
            }
        });
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
