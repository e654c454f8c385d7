//! A receive as a future (`channels::tasks`) on the host platform: woken through the task's token as a blocking
//! receive is (a parked executor thread is unparked by the send or the close: a lost wake-up fails the watchdog),
//! polled again at once under a waker that carries no token, and leaving the ring usable when dropped while it
//! waits (its token is taken out; one left behind would only wake its task once, spuriously).

use channels::Closed;
use channels::host::current_token;
use channels::raw::pair;
use channels::tasks::task_waker;
use channels::trusted::Trusted;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

/// Longer than it takes the executor to park.
const PAUSE: Duration = Duration::from_millis(20);

/// The waker of the calling thread's task: its host token.
fn my_waker() -> Waker {
    // SAFETY: a test is trusted code: it makes wakers for its own thread's token only.
    let trusted = unsafe { Trusted::new() };
    task_waker(&trusted, current_token())
}

/// Polls `future` on this thread, parking between polls (only a wake through the task's token unparks it), as a
/// one-task runner does; its output and how often it was polled.
fn run<F: Future>(future: F) -> (F::Output, u32) {
    let waker = my_waker();
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return (output, polls);
        }
        thread::park();
    }
}

/// Runs `work` on a thread of its own and fails if it has not finished within 10 s (a task never woken).
fn within(what: &str, work: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let worker = thread::spawn(move || {
        work();
        let _ = done.send(());
    });
    match finished.recv_timeout(Duration::from_secs(10)) {
        Ok(()) => worker.join().expect("worker"),
        Err(_) => panic!("{what}: not finished after 10 s; the task missed its wake-up"),
    }
}

#[test]
fn a_future_receive_sleeps_until_the_send_wakes_its_task() {
    within("a future receive woken by a send and a close", || {
        let (mut client, mut server) = pair::<u64, u64>(1, 1);
        let sender = thread::spawn(move || {
            thread::sleep(PAUSE);
            client.send(7).expect("peer alive");
            thread::sleep(PAUSE);
            drop(client);
        });
        let (first, polls) = run(server.recv_async());
        assert_eq!(first, Ok(7));
        // Pending once (or twice, for a stale notice), then woken by the send: not polled in a loop.
        assert!(polls <= 3, "polled {polls} times for one message");
        let (closed, _) = run(server.recv_async());
        assert_eq!(closed, Err(Closed), "the close wakes the task too");
        sender.join().expect("sender");
    });
}

#[test]
fn a_message_already_there_is_taken_at_the_first_poll() {
    let (mut client, mut server) = pair::<u32, u32>(2, 2);
    client.send(1).expect("peer alive");
    client.send(2).expect("peer alive");
    assert_eq!(run(server.recv_async()), (Ok(1), 1));
    assert_eq!(run(server.recv_async()), (Ok(2), 1));
    drop(client);
    assert_eq!(run(server.recv_async()), (Err(Closed), 1));
}

/// Counts its wakes.
struct Counting(AtomicU32);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_waker_without_a_token_is_asked_to_poll_again() {
    let (mut client, mut server) = pair::<u8, u8>(1, 1);
    let counting = Arc::new(Counting(AtomicU32::new(0)));
    let waker = Waker::from(counting.clone());
    let mut cx = Context::from_waker(&waker);
    {
        let mut future = pin!(server.recv_async());
        assert!(future.as_mut().poll(&mut cx).is_pending());
        assert_eq!(counting.0.load(Ordering::Relaxed), 1, "no token to leave: poll again at once");
        client.send(3).expect("peer alive");
        assert_eq!(future.as_mut().poll(&mut cx), Poll::Ready(Ok(3)));
    }
}

#[test]
fn a_future_dropped_while_it_waits_leaves_the_ring_usable() {
    let (mut client, mut server) = pair::<u8, u8>(1, 1);
    let waker = my_waker();
    let mut cx = Context::from_waker(&waker);
    {
        let mut future = pin!(server.recv_async());
        assert!(future.as_mut().poll(&mut cx).is_pending(), "nothing sent yet");
    }
    // The ring's wait cell is free again: a blocking receive registers its own token and is woken by the send.
    let sender = thread::spawn(move || {
        thread::sleep(PAUSE);
        client.send(9).expect("peer alive");
    });
    assert_eq!(server.recv(), Ok(9));
    sender.join().expect("sender");
}
