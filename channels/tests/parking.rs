//! The wake protocol under stress on real threads: receivers that park on nearly every message, closes that
//! come while the receiver is parked, and a stream whose producer and consumer take turns being slow. loom
//! checks the protocol's interleavings on a model (`loom_ring.rs`); this checks the real hooks (`thread::park`,
//! the wait cells' wakers) thousands of times. A lost wake-up leaves a receiver parked forever, which the
//! watchdog turns into a failure instead of a hang.

use channels::Closed;
use channels::raw::pair;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Longer than the host hook's polling (about 25 µs), so the receiver has parked by the time a message comes.
const PAUSE: Duration = Duration::from_micros(100);

/// Runs `work` on its own thread and fails if it has not finished within `limit` (a receiver that never woke).
fn within(limit: Duration, what: &str, work: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let worker = thread::spawn(move || {
        work();
        let _ = done.send(());
    });
    match finished.recv_timeout(limit) {
        Ok(()) => worker.join().expect("worker"),
        Err(_) => panic!("{what}: not finished after {limit:?}; a receiver missed its wake-up"),
    }
}

#[test]
fn receivers_that_park_on_every_message_are_always_woken() {
    within(Duration::from_secs(60), "ping-pong with parking on both sides", || {
        let (mut client, mut server) = pair::<u64, u64>(1, 1);
        let echo = thread::spawn(move || {
            let mut answered = 0u64;
            while let Ok(n) = server.recv() {
                // Every other answer comes late: the client has parked by then.
                if n % 2 == 0 {
                    thread::sleep(PAUSE);
                }
                if server.send(n + 1).is_err() {
                    break;
                }
                answered += 1;
            }
            answered
        });
        for n in 0..600u64 {
            // Every other request comes late: the server has parked by then.
            if n % 2 == 1 {
                thread::sleep(PAUSE);
            }
            client.send(n).expect("server alive");
            assert_eq!(client.recv(), Ok(n + 1), "answers arrive in order");
        }
        drop(client);
        assert_eq!(echo.join().expect("echo thread"), 600);
    });
}

#[test]
fn a_parked_receiver_wakes_for_a_close() {
    within(Duration::from_secs(60), "closes while the receiver parks", || {
        for _ in 0..100 {
            let (mut receiver, sender) = pair::<u64, u64>(1, 1);
            let closer = thread::spawn(move || {
                thread::sleep(PAUSE);
                drop(sender);
            });
            assert_eq!(receiver.recv(), Err(Closed));
            closer.join().expect("closer");
        }
    });
}

#[test]
fn a_stream_with_a_slow_consumer_and_a_slow_producer_in_turn_loses_nothing() {
    within(Duration::from_secs(60), "streaming with parking", || {
        let (mut producer, mut consumer) = pair::<u64, ()>(8, 1);
        let reader = thread::spawn(move || {
            let mut expected = 0u64;
            while let Ok(n) = consumer.recv() {
                assert_eq!(n, expected, "in order, nothing lost or repeated");
                expected += 1;
                // A slow consumer for a while (the producer fills the ring and waits), then a fast one.
                if (expected / 64) % 2 == 0 && expected % 8 == 0 {
                    thread::sleep(PAUSE);
                }
            }
            expected
        });
        for n in 0..2_000u64 {
            // A slow producer in the other phases (the consumer parks on an empty ring).
            if (n / 64) % 2 == 1 && n % 8 == 0 {
                thread::sleep(PAUSE);
            }
            producer.send(n).expect("reader alive");
        }
        drop(producer);
        assert_eq!(reader.join().expect("reader"), 2_000);
    });
}
