//! Data shapes a hostile sender can build, handled without harm on the host platform (the kernel's rules):
//! a million-deep `ExBox` list is sent, received and dropped on a small stack (every walk over a message, and
//! every drop, is a loop, never a recursion over the data), and an endpoint hidden deep inside such a list is
//! still found and closed.

use channels::host::{EXCHANGE, set_current_owner};
use channels::raw::pair;
use channels::{ExBox, Owner};
use contracts::Exchangeable;
use std::thread;

/// A list as deep as its data makes it.
#[derive(Exchangeable)]
enum List {
    Nil,
    Cons(u64, ExBox<List>),
}

fn long_list(length: u64) -> List {
    (0..length).fold(List::Nil, |tail, n| List::Cons(n, ExBox::new(tail)))
}

/// A list whose last node carries an endpoint.
#[derive(Exchangeable)]
enum Hiding {
    End(channels::raw::RawEndpoint<u8, u8>),
    Node(ExBox<Hiding>),
}

/// Runs `f` on a thread with a 256 KiB stack (a recursion over a million nodes would need hundreds of MiB).
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    let joined = thread::Builder::new().stack_size(256 * 1024).spawn(f).expect("thread").join();
    assert!(joined.is_ok(), "the work failed on a small stack");
}

#[test]
fn a_million_deep_list_travels_and_is_freed_in_a_loop() {
    let (sender, receiver) = (Owner::sip(61), Owner::sip(62));
    on_small_stack(move || {
        set_current_owner(sender);
        let (mut tx, rx) = pair::<List, ()>(1, 1);
        assert!(tx.send(long_list(1_000_000)).is_ok(), "receiver alive");
        assert_eq!(EXCHANGE.ledger().held_by(sender).0, 0, "all of it travels in the ring");
        // SAFETY: the test harness is the host's trusted base.
        let trusted = unsafe { channels::trusted::Trusted::new() };
        channels::trusted::give(&trusted, &rx, sender, receiver);
        set_current_owner(receiver);
        let mut rx = rx;
        let Ok(list) = rx.recv() else { panic!("nothing queued") };
        assert_eq!(EXCHANGE.ledger().held_by(receiver).0, 1_000_000);
        drop(list);
        assert_eq!(EXCHANGE.ledger().held_by(receiver).0, 0);
        drop(rx);
        set_current_owner(sender);
        drop(tx);
    });
}

#[test]
fn an_unreceived_deep_list_is_freed_with_its_channel() {
    let owner = Owner::sip(63);
    on_small_stack(move || {
        set_current_owner(owner);
        let (mut tx, rx) = pair::<List, ()>(1, 1);
        assert!(tx.send(long_list(300_000)).is_ok(), "receiver alive");
        drop(rx);
        drop(tx);
        assert_eq!(EXCHANGE.ledger().charged(owner), (0, 0), "freed from the records, in a loop");
    });
}

#[test]
fn an_endpoint_at_the_bottom_of_a_deep_list_is_closed_when_the_list_is_dropped() {
    let owner = Owner::sip(64);
    on_small_stack(move || {
        set_current_owner(owner);
        let (near, far) = pair::<u8, u8>(1, 1);
        let mut list = Hiding::End(far);
        for _ in 0..200_000 {
            list = Hiding::Node(ExBox::new(list));
        }
        assert!(!near.is_peer_closed());
        drop(list);
        assert!(near.is_peer_closed());
        drop(near);
        assert_eq!(EXCHANGE.ledger().charged(owner), (0, 0));
    });
}
