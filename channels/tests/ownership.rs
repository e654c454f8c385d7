//! Ownership records on the host platform (the kernel's rules, same ledger): every exchange allocation is held
//! by its owner, sending a message moves everything it holds (nested blocks, endpoints) into the ring,
//! receiving moves it to the receiver, a dead owner's blocks and endpoints are reclaimed from the records alone,
//! endpoints inside dropped values are closed, and a receive beyond the receiver's quota is refused. (Deep
//! structures, which need `#[derive(Exchangeable)]`, are in `contracts/tests/hostile_data.rs`.)
//!
//! Each test acts for owners of its own (tests run in parallel in one process, sharing the host exchange), so
//! it can count what they hold without seeing the other tests' blocks.

use channels::host::{EXCHANGE, set_current_owner};
use channels::raw::{TrySendError, pair};
use channels::{Closed, ExAny, ExBox, ExString, ExVec, Owner};
use std::thread;

/// Blocks `owner` holds.
fn held(owner: Owner) -> usize {
    EXCHANGE.ledger().held_by(owner).0
}

/// Channel sides `owner` holds.
fn sides(owner: Owner) -> usize {
    EXCHANGE.ledger().sides_held_by(owner)
}

#[test]
fn allocation_records_the_current_owner() {
    let me = Owner::sip(11);
    set_current_owner(me);
    let boxed = ExBox::new(5u64);
    assert_eq!(held(me), 1);
    assert!(EXCHANGE.ledger().charged(me).1 >= 8, "the block is charged to its owner");
    drop(boxed);
    assert_eq!(held(me), 0, "freed blocks leave no record");
    assert_eq!(EXCHANGE.ledger().charged(me), (0, 0), "nor a charge");
}

#[test]
fn sending_moves_every_nested_block_to_the_receiver() {
    let (sender_owner, receiver_owner) = (Owner::sip(21), Owner::sip(22));
    set_current_owner(sender_owner);
    let (mut sender, receiver) = pair::<ExVec<ExBox<u32>>, ()>(1, 1);
    let mut message: ExVec<ExBox<u32>> = ExVec::new();
    for i in 0..3 {
        message.push(ExBox::new(i));
    }
    assert_eq!(held(sender_owner), 4, "the buffer and three boxes");
    sender.send(message).expect("receiver alive");
    assert_eq!(held(sender_owner), 0, "queued messages belong to the ring, not the sender");

    // The receiving end goes to another owner by a trusted hand-over, as the kernel does at a spawn.
    // SAFETY: the test harness is the host's trusted base.
    let trusted = unsafe { channels::trusted::Trusted::new() };
    channels::trusted::give(&trusted, &receiver, sender_owner, receiver_owner);
    let mut receiver = receiver;
    let received = thread::spawn(move || {
        set_current_owner(receiver_owner);
        let got = receiver.recv().expect("message queued");
        (got.iter().map(|b| **b).collect::<Vec<_>>(), held(receiver_owner))
    })
    .join()
    .expect("receiver thread");
    assert_eq!(received, (vec![0, 1, 2], 4));
    assert_eq!(held(receiver_owner), 0, "the receiver dropped them");
}

#[test]
fn a_message_that_was_never_received_is_freed_with_the_channel() {
    let me = Owner::sip(31);
    set_current_owner(me);
    let (mut sender, receiver) = pair::<ExString, ()>(2, 1);
    sender.send(ExString::from("unread")).expect("receiver alive");
    drop(receiver);
    drop(sender);
    assert_eq!(held(me), 0);
    assert_eq!(EXCHANGE.ledger().charged(me), (0, 0), "the channel and the message are freed");
}

#[test]
fn a_dead_owners_blocks_and_endpoints_are_reclaimed_from_the_records() {
    let (dying, survivor_owner) = (Owner::sip(41), Owner::sip(42));
    set_current_owner(dying);
    // The owner "dies" without running destructors (as a SIP does without unwinding).
    std::mem::forget(ExBox::new([7u8; 64]));
    std::mem::forget(ExString::from("leaked"));
    let (dead_end, survivor) = pair::<u32, u32>(1, 1);
    // SAFETY: the test harness is the host's trusted base.
    let trusted = unsafe { channels::trusted::Trusted::new() };
    channels::trusted::give(&trusted, &survivor, dying, survivor_owner);
    std::mem::forget(dead_end);
    assert_eq!((held(dying), sides(dying)), (2, 1), "two blocks and one side (the channel block is nobody's)");

    let peer = thread::spawn(move || {
        set_current_owner(survivor_owner);
        let mut survivor = survivor;
        // Blocks until the dying side is reclaimed: then the receive must end with Closed, not hang.
        let result = survivor.recv();
        (result, survivor.send(5))
    });
    thread::sleep(std::time::Duration::from_millis(20));
    EXCHANGE.reclaim(dying);
    let (received, sent) = peer.join().expect("peer thread");
    assert_eq!(received, Err(Closed));
    assert_eq!(sent, Err(5), "a send to the reclaimed side gives the message back");
    assert_eq!((held(dying), sides(dying)), (0, 0));
    assert_eq!(EXCHANGE.ledger().charged(dying), (0, 0), "the survivor's drop freed the channel");
    EXCHANGE.reclaim(dying);
}

#[test]
fn a_failed_send_leaves_the_message_with_the_sender() {
    let me = Owner::sip(51);
    set_current_owner(me);
    let (mut sender, receiver) = pair::<ExBox<u64>, ()>(1, 1);
    drop(receiver);
    let back = sender.send(ExBox::new(9u64)).expect_err("receiver is gone");
    assert_eq!(held(me), 1, "the check comes before the records move");
    assert_eq!(*back, 9);
}

#[test]
fn a_full_ring_gives_a_tracked_message_back_unmoved() {
    let me = Owner::sip(52);
    set_current_owner(me);
    let (mut sender, _receiver) = pair::<ExBox<u64>, ()>(1, 1);
    sender.try_send(ExBox::new(1)).expect("room for one");
    let Err(TrySendError::Full(back)) = sender.try_send(ExBox::new(2)) else { panic!("a full ring took a message") };
    assert_eq!(*back, 2);
    assert_eq!(held(me), 1, "the refused box is still the sender's; the queued one is the ring's");
}

#[test]
fn endpoints_inside_dropped_values_are_closed() {
    let me = Owner::sip(71);
    set_current_owner(me);
    let (near, far) = pair::<u8, u8>(1, 1);
    let boxed = ExBox::new(ExVec::from_iter([ExAny::new(far).expect("room")]));
    assert!(!near.is_peer_closed());
    drop(boxed);
    assert!(near.is_peer_closed(), "dropping the box closed the endpoint inside it");
    drop(near);
    assert_eq!(EXCHANGE.ledger().charged(me), (0, 0));
}

#[test]
fn a_receive_beyond_the_receivers_quota_is_refused_and_breaks_the_channel() {
    let (sender_owner, receiver_owner) = (Owner::sip(81), Owner::sip(82));
    EXCHANGE.ledger().set_quota(receiver_owner, 4096);
    set_current_owner(sender_owner);
    let (mut tx, rx) = pair::<ExVec<u8>, ()>(2, 1);
    // SAFETY: the test harness is the host's trusted base.
    let trusted = unsafe { channels::trusted::Trusted::new() };
    channels::trusted::give(&trusted, &rx, sender_owner, receiver_owner);
    tx.send(ExVec::from_slice(&[1; 64])).expect("alive");
    tx.send(ExVec::from_slice(&[2; 64 * 1024])).expect("alive");
    let outcome = thread::spawn(move || {
        set_current_owner(receiver_owner);
        let mut rx = rx;
        let small = rx.recv().map(|v| v.len());
        let big = rx.recv().map(|v| v.len());
        (small, big, held(receiver_owner))
    })
    .join()
    .expect("receiver");
    assert_eq!(outcome, (Ok(64), Err(Closed), 0), "the big message was freed, not delivered");
    assert!(tx.is_peer_closed(), "the sender sees the channel closed");
    assert_eq!(tx.send(ExVec::new()).map_err(|v: ExVec<u8>| v.len()), Err(0));
}
