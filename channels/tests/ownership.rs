//! Owner records: every exchange allocation records its owner, sending a message moves its blocks (nested ones
//! too) to `IN_TRANSIT`, receiving moves them to the receiver, and a dead owner's blocks can be enumerated and
//! reclaimed. Runs with the host's owner-tracking heap installed (its own test binary, so its own platform).

use channels::host::{TrackingHeap, install_tracking, set_current_owner};
use channels::raw::pair;
use channels::{ExBox, ExString, ExVec, Owner};
use std::thread;

static HEAP: TrackingHeap = TrackingHeap::new();

fn setup() {
    // Every test installs; the first one wins, the others find it already there.
    let _ = install_tracking(&HEAP);
    assert!(std::ptr::eq(channels::platform::current().heap as *const _ as *const u8, &HEAP as *const _ as *const u8));
}

#[test]
fn allocation_records_the_current_owner() {
    setup();
    set_current_owner(Owner(11));
    let boxed = ExBox::new(5u64);
    assert_eq!(HEAP.owner_of(boxed.block()), Some(Owner(11)));
    let block = boxed.block();
    drop(boxed);
    assert_eq!(HEAP.owner_of(block), None, "freed blocks leave no record");
}

#[test]
fn sending_moves_every_nested_block_to_the_receiver() {
    setup();
    set_current_owner(Owner(21));
    let (mut sender, mut receiver) = pair::<ExVec<ExBox<u32>>, ()>(1, 1);
    let mut message: ExVec<ExBox<u32>> = ExVec::new();
    for i in 0..3 {
        message.push(ExBox::new(i));
    }
    let outer = message.block().expect("a non-empty vector holds a block");
    let inner: Vec<_> = message.iter().map(|b| b.block()).collect();
    assert_eq!(HEAP.blocks_of(Owner(21)).len(), 4);

    sender.send(message).expect("receiver alive");
    assert_eq!(HEAP.owner_of(outer), Some(Owner::IN_TRANSIT), "queued messages belong to no process");
    assert!(inner.iter().all(|&b| HEAP.owner_of(b) == Some(Owner::IN_TRANSIT)));
    assert!(HEAP.blocks_of(Owner(21)).is_empty(), "the sender owns nothing any more");

    let received = thread::spawn(move || {
        set_current_owner(Owner(22));
        receiver.recv().expect("message queued")
    })
    .join()
    .expect("receiver thread");
    assert_eq!(HEAP.owner_of(outer), Some(Owner(22)));
    assert!(inner.iter().all(|&b| HEAP.owner_of(b) == Some(Owner(22))));
    assert_eq!(received.iter().map(|b| **b).collect::<Vec<_>>(), [0, 1, 2]);
}

#[test]
fn a_message_that_was_never_received_is_freed_with_the_channel() {
    setup();
    set_current_owner(Owner(31));
    let (mut sender, receiver) = pair::<ExString, ()>(2, 1);
    let text = ExString::from("unread");
    let block = text.as_bytes().block().expect("non-empty");
    sender.send(text).expect("receiver alive");
    drop(receiver);
    assert_eq!(HEAP.owner_of(block), Some(Owner::IN_TRANSIT));
    drop(sender);
    assert_eq!(HEAP.owner_of(block), None, "the last endpoint's drop freed the queued message");
}

#[test]
fn a_dead_owners_blocks_are_enumerated_and_reclaimed() {
    setup();
    set_current_owner(Owner(41));
    // The owner "dies" without running destructors (as a SIP does without unwinding).
    std::mem::forget(ExBox::new([7u8; 64]));
    std::mem::forget(ExString::from("leaked"));
    set_current_owner(Owner(42));
    let survivor = ExBox::new(1u32);
    assert_eq!(HEAP.blocks_of(Owner(41)).len(), 2);
    assert_eq!(HEAP.reclaim(Owner(41)), 2);
    assert!(HEAP.blocks_of(Owner(41)).is_empty());
    assert_eq!(HEAP.owner_of(survivor.block()), Some(Owner(42)), "other owners are untouched");
}

#[test]
fn a_failed_send_gives_the_blocks_back_to_the_sender() {
    setup();
    set_current_owner(Owner(51));
    let (mut sender, receiver) = pair::<ExBox<u64>, ()>(1, 1);
    drop(receiver);
    let boxed = ExBox::new(9u64);
    let back = sender.send(boxed).expect_err("receiver is gone");
    assert_eq!(HEAP.owner_of(back.block()), Some(Owner(51)), "the check comes before the transfer");
    assert_eq!(*back, 9);
}

#[test]
fn a_dead_owners_endpoints_are_closed_for_their_peers() {
    use channels::raw::{RawEndpoint, reclaim_dead_endpoints};
    setup();
    set_current_owner(Owner(61));
    let (dying, survivor) = pair::<u32, u32>(1, 1);
    let core_block = HEAP
        .blocks_of(Owner::CHANNELS)
        .into_iter()
        .find(|&block| HEAP.owner_of(block) == Some(Owner::CHANNELS) && survivor_is_on(block, &survivor))
        .expect("the channel core is an exchange block of Owner::CHANNELS");

    // Hand the survivor to owner 62 through another channel: receiving re-records its side.
    let (mut courier_tx, mut courier_rx) = pair::<RawEndpoint<u32, u32>, ()>(1, 1);
    courier_tx.send(survivor).expect("courier alive");
    let peer = thread::spawn(move || {
        set_current_owner(Owner(62));
        let mut survivor = courier_rx.recv().expect("endpoint delivered");
        // Blocks until the dying side is reclaimed: then the receive must end with Closed, not hang.
        let result = survivor.recv();
        (result, survivor.send(5))
    });

    // Owner 61 dies without dropping its endpoint; the kernel reclaims by owner records.
    std::mem::forget(dying);
    thread::sleep(std::time::Duration::from_millis(20));
    // SAFETY: `core_block` is a live core of the installed heap, and owner 61's endpoint is never used again.
    assert_eq!(unsafe { reclaim_dead_endpoints(core_block, Owner(61)) }, 1, "only the dead owner's side");
    // SAFETY: as above; a second reclaim finds nothing left to close.
    assert_eq!(unsafe { reclaim_dead_endpoints(core_block, Owner(61)) }, 0);
    let (received, sent) = peer.join().expect("peer thread");
    assert_eq!(received, Err(channels::Closed));
    assert_eq!(sent, Err(5), "a send to the reclaimed side gives the message back");
    assert_eq!(HEAP.owner_of(core_block), None, "the survivor's drop freed the core");
}

#[test]
fn a_side_dropped_before_its_owner_dies_is_not_closed_twice() {
    use channels::raw::reclaim_dead_endpoints;
    setup();
    set_current_owner(Owner(71));
    let (dropped, survivor) = pair::<u32, u32>(1, 1);
    let core_block = survivor.core_block();
    // The survivor's side goes to owner 72 (what handing it over at a spawn or through a channel does).
    let boxed = channels::ExBox::new(survivor);
    boxed.transfer(Owner(72));
    let survivor = boxed.into_inner();
    // Owner 71 drops its endpoint properly (answering and ending cleanly), then dies: the kernel reclaims it.
    drop(dropped);
    // SAFETY: the core is live (the survivor holds it) and owner 71 never uses an endpoint again.
    assert_eq!(unsafe { reclaim_dead_endpoints(core_block, Owner(71)) }, 0, "the dropped side was closed again");
    assert_eq!(HEAP.owner_of(core_block), Some(Owner::CHANNELS), "the survivor's core was freed under it");
    drop(survivor);
    assert_eq!(HEAP.owner_of(core_block), None, "the survivor's drop frees the core");
}

/// Whether `block` is the core behind `endpoint`.
fn survivor_is_on(block: std::ptr::NonNull<u8>, endpoint: &channels::raw::RawEndpoint<u32, u32>) -> bool {
    endpoint.core_block() == block
}
