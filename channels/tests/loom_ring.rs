//! Model-checks the ring and its close/wake protocol with loom, under every interleaving loom explores (with a
//! bounded number of preemptions, so the suite stays fast). The ring's own source is included, with its `sync`
//! shim pointed at loom's atomics and cell: what is checked is the code that ships. It runs with the normal
//! suite, no `--cfg loom` needed (`cargo test -p channels --test loom_ring --release` for just this file). It
//! has teeth: a producer that only loads the wait cell's state instead of swapping it (the cheaper notify the
//! ring's module docs reject) fails four of these tests with a deadlock, i.e. a lost wake-up. It caught two bugs
//! of the stamped ring's first version: stamps of `n` and `n + 1` (Vyukov's) fail the one-slot test, because a
//! one-slot ring then cannot tell "holds message 0" from "free for message 1"; and readiness judged by `len`
//! (from `tail`) instead of by the stamp livelocks the first test, because a consumer can see a message's stamp
//! before the producer's `tail` counts it. The order test of the short-message slot beside the ring
//! (`ring::Direct`) fails if the producer fills the slot while the ring holds a message, or if the consumer looks
//! at the slot before the ring (that one needs five preemptions to show, hence its bound).

extern crate alloc;

#[path = "../src/ring.rs"]
#[allow(dead_code)]
mod ring;

/// loom's versions of what `ring.rs` imports from `super::sync`.
mod sync {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
}

use loom::sync::Arc;
use ring::{Readiness, Ring, Slot, Waiting, wait_any};
use std::alloc::Layout;
use std::ptr::NonNull;

/// The consumer's wake token in every model (the model's main thread is every ring's consumer).
const CONSUMER: u64 = 7;

/// A ring with its own slot array (in the kernel, both live in a channel block).
struct TestRing {
    ring: Ring<u32>,
    slots: NonNull<Slot<u32>>,
    layout: Layout,
}

// SAFETY: the slot array is owned by the ring, whose own `Send`/`Sync` rules apply.
unsafe impl Send for TestRing {}
// SAFETY: as above.
unsafe impl Sync for TestRing {}

impl TestRing {
    fn new(capacity: usize) -> Arc<Self> {
        let layout = Ring::<u32>::slots_layout(Ring::<u32>::slot_count(capacity)).expect("small");
        // SAFETY: the layout is non-zero-sized.
        let slots = NonNull::new(unsafe { std::alloc::alloc(layout) }).expect("memory").cast::<Slot<u32>>();
        // SAFETY: a fresh array of the right layout, used by this ring alone.
        let ring = unsafe { Ring::new(slots, capacity) };
        Arc::new(Self { ring, slots, layout })
    }
}

impl std::ops::Deref for TestRing {
    type Target = Ring<u32>;

    fn deref(&self) -> &Ring<u32> {
        &self.ring
    }
}

impl Drop for TestRing {
    fn drop(&mut self) {
        // SAFETY: the array came from `alloc` with this layout; the ring (and its `u32`s, which need no drop)
        // go with it.
        unsafe { std::alloc::dealloc(self.slots.as_ptr().cast(), self.layout) };
    }
}

/// Wakes the consumer (the model's main thread, whose token is `CONSUMER`; `unpark` has token semantics, as
/// the `Blocking` hook requires).
fn waker() -> impl Fn(u64) + Clone {
    let consumer = loom::thread::current();
    move |token| {
        assert_eq!(token, CONSUMER, "the producer read the consumer's token");
        consumer.unpark();
    }
}

/// No polling phase under loom: straight to the register-and-park protocol, which is what is being checked.
fn wait(sources: &[&dyn Readiness]) {
    let how = Waiting { spins: 0, relax: &|_| loom::thread::yield_now(), token: CONSUMER, park: &loom::thread::park };
    wait_any(sources, &how);
}

fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(f);
}

/// The consumer side of `RawEndpoint::recv`: pop, else closed, else block. `None` means closed.
fn recv(ring: &TestRing) -> Option<u32> {
    loop {
        // SAFETY: the calling thread is the model's only consumer.
        if let Some(value) = unsafe { ring.pop() } {
            return Some(value);
        }
        if ring.is_producer_closed() {
            // SAFETY: as above.
            return unsafe { ring.pop() };
        }
        wait(&[&**ring as &dyn Readiness]);
    }
}

#[test]
fn messages_arrive_in_order_then_close_and_the_consumer_never_sleeps_through_them() {
    model(3, || {
        let ring = TestRing::new(2);
        let producer = {
            let (ring, wake) = (ring.clone(), waker());
            loom::thread::spawn(move || {
                for value in [1, 2] {
                    // SAFETY: this thread is the only producer.
                    assert!(unsafe { ring.push(value) }.is_ok(), "capacity 2 holds two messages");
                    ring.notify(&wake);
                }
                ring.close_producer(&wake);
            })
        };
        assert_eq!(recv(&ring), Some(1));
        assert_eq!(recv(&ring), Some(2));
        assert_eq!(recv(&ring), None, "after the messages, the close");
        producer.join().expect("producer");
    });
}

#[test]
fn a_full_ring_is_refilled_only_after_the_consumer_read_the_slot() {
    // Capacity 1: every second push reuses the slot just read, which loom's cell tracking checks for races.
    model(3, || {
        let ring = TestRing::new(1);
        let producer = {
            let (ring, wake) = (ring.clone(), waker());
            loom::thread::spawn(move || {
                for value in [10, 20, 30] {
                    let mut pending = value;
                    loop {
                        // SAFETY: this thread is the only producer.
                        match unsafe { ring.push(pending) } {
                            Ok(()) => break,
                            Err(back) => {
                                pending = back;
                                loom::thread::yield_now();
                            }
                        }
                    }
                    ring.notify(&wake);
                }
                ring.close_producer(&wake);
            })
        };
        let mut got = Vec::new();
        while let Some(value) = recv(&ring) {
            assert!(ring.len() <= 1, "never more than the capacity");
            got.push(value);
        }
        assert_eq!(got, [10, 20, 30]);
        producer.join().expect("producer");
    });
}

#[test]
fn a_blocked_consumer_wakes_on_close_without_messages() {
    model(5, || {
        let ring = TestRing::new(1);
        let producer = {
            let (ring, wake) = (ring.clone(), waker());
            loom::thread::spawn(move || ring.close_producer(&wake))
        };
        assert_eq!(recv(&ring), None);
        producer.join().expect("producer");
    });
}

#[test]
fn waiting_on_two_rings_wakes_for_either() {
    // `select`'s core: one consumer registered in two rings, each fed by its own producer.
    model(2, || {
        let a = TestRing::new(1);
        let b = TestRing::new(1);
        let pa = {
            let (a, wake) = (a.clone(), waker());
            loom::thread::spawn(move || {
                // SAFETY: this thread is `a`'s only producer.
                assert!(unsafe { a.push(1) }.is_ok());
                a.notify(&wake);
            })
        };
        let pb = {
            let (b, wake) = (b.clone(), waker());
            loom::thread::spawn(move || b.close_producer(&wake))
        };
        let (mut got_a, mut closed_b) = (false, false);
        while !(got_a && closed_b) {
            if !got_a {
                // SAFETY: the model's main thread is the only consumer of both rings.
                got_a = unsafe { a.pop() } == Some(1);
            }
            if !closed_b {
                closed_b = b.is_producer_closed();
            }
            let mut sources: Vec<&dyn Readiness> = Vec::new();
            if !got_a {
                sources.push(&**a);
            }
            if !closed_b {
                sources.push(&**b);
            }
            if !sources.is_empty() {
                wait(&sources);
            }
        }
        pa.join().expect("producer a");
        pb.join().expect("producer b");
    });
}

#[test]
fn the_producer_sees_the_consumer_close() {
    model(3, || {
        let ring = TestRing::new(1);
        let consumer = {
            let ring = ring.clone();
            loom::thread::spawn(move || ring.close_consumer())
        };
        consumer.join().expect("consumer");
        assert!(ring.is_consumer_closed(), "a close that happened before is always seen");
    });
}

/// The consumer side of a ring-3 receiver's receive (`RawEndpoint::try_recv_direct_first`, then a wait): the
/// slot beside the ring or the ring, in `next_direct_first`'s order. `None` means closed.
fn recv_direct_first(ring: &TestRing) -> Option<u32> {
    loop {
        // SAFETY: the calling thread is the model's only consumer (here and below).
        let next = match unsafe { ring.next_direct_first() } {
            Some(next) => Some(next),
            // SAFETY: as above.
            None if ring.is_producer_closed() => unsafe { ring.next_direct_first() },
            None => {
                wait(&[&**ring as &dyn Readiness]);
                continue;
            }
        };
        return match next? {
            ring::Next::Direct(words, len) => {
                assert_eq!(len, 4, "the length comes with the words");
                Some(words[0] as u32)
            }
            // SAFETY: as above; `head` is the front just found, with no take since.
            ring::Next::Front(head) => Some(unsafe { ring.take(head) }),
        };
    }
}

/// The producer side of a ring-3 sender's short send (`Proxied::send_short`): beside the ring if it can, else
/// into the ring (spinning while it is full, which the contract's peer never makes it do; here it makes the
/// producer push while the consumer takes).
fn send_direct_or_push(ring: &TestRing, value: u32, wake: &(impl Fn(u64) + Clone)) {
    // SAFETY: the calling thread is the model's only producer (here and below).
    if unsafe { ring.put_direct([u64::from(value), 0, 0, 0], 4, wake) } {
        return;
    }
    // SAFETY: as above.
    while unsafe { ring.push(value) }.is_err() {
        loom::thread::yield_now();
    }
    ring.notify(wake);
}

#[test]
fn short_messages_beside_the_ring_keep_their_order_with_the_rings() {
    // Capacity 1: messages go beside the ring whenever it is empty and into it otherwise, in every interleaving
    // of the consumer's takes; the consumer must still see 1, 2, 3 in order, then the close.
    model(5, || {
        let ring = TestRing::new(1);
        ring.direct().open();
        let producer = {
            let (ring, wake) = (ring.clone(), waker());
            loom::thread::spawn(move || {
                for value in [1, 2, 3] {
                    send_direct_or_push(&ring, value, &wake);
                }
                ring.close_producer(&wake);
            })
        };
        assert_eq!(recv_direct_first(&ring), Some(1));
        assert_eq!(recv_direct_first(&ring), Some(2));
        assert_eq!(recv_direct_first(&ring), Some(3));
        assert_eq!(recv_direct_first(&ring), None, "after the messages, the close");
        producer.join().expect("producer");
    });
}

#[test]
fn a_slot_with_a_message_does_not_close_and_a_closed_slot_takes_nothing() {
    model(3, || {
        let ring = TestRing::new(1);
        ring.direct().open();
        let producer = {
            let (ring, wake) = (ring.clone(), waker());
            loom::thread::spawn(move || {
                // SAFETY: this thread is the only producer.
                let direct = unsafe { ring.put_direct([7, 0, 0, 0], 4, &wake) };
                if !direct {
                    // SAFETY: as above.
                    assert!(unsafe { ring.push(7) }.is_ok(), "the ring is empty");
                    ring.notify(&wake);
                }
                direct
            })
        };
        // The consumer's holder lets the endpoint go: refused while the message waits beside the ring.
        let closed = ring.direct().close();
        let direct = producer.join().expect("producer");
        assert!(!(closed && direct), "a message went into a closed slot");
        if !closed {
            assert!(direct, "the slot refused to close with no message in it");
            assert_eq!(recv_direct_first(&ring), Some(7));
            assert!(ring.direct().close(), "an empty slot closes");
        } else {
            // SAFETY: the calling thread is the model's only consumer.
            assert_eq!(unsafe { ring.pop() }, Some(7), "the message went into the ring");
        }
    });
}
