//! The raw transport on its own: capacity is exact (zero included), close is seen from both sides, queued messages survive the
//! sender's drop, and a random single-threaded sequence of operations matches a queue model (proptest).

use channels::Closed;
use channels::raw::{TryRecvError, TrySendError, pair};
use proptest::prelude::*;
use std::collections::VecDeque;

#[test]
fn capacity_is_exact() {
    let (mut a, mut b) = pair::<u32, u32>(3, 1);
    assert_eq!((a.send_capacity(), a.recv_capacity()), (3, 1));
    for i in 0..3 {
        a.try_send(i).expect("room");
    }
    assert!(matches!(a.try_send(3), Err(TrySendError::Full(3))));
    assert_eq!(b.queued(), 3);
    assert_eq!(b.try_recv(), Ok(0));
    a.try_send(3).expect("room again");
    assert_eq!(a.in_flight(), 3);
    b.try_send(7).expect("room");
    assert!(matches!(b.try_send(8), Err(TrySendError::Full(8))));
}

#[test]
fn a_direction_of_capacity_zero_refuses_every_send() {
    // A contract direction that carries no message; its one slot is stamped neither free nor full.
    let (mut a, mut b) = pair::<u32, u32>(0, 1);
    assert!(matches!(a.try_send(1), Err(TrySendError::Full(1))));
    assert_eq!((a.in_flight(), b.queued()), (0, 0));
    assert_eq!(b.try_recv(), Err(TryRecvError::Empty));
    b.try_send(2).expect("the other direction has room");
    assert_eq!(a.try_recv(), Ok(2));
    drop(a);
    assert_eq!(b.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn close_is_seen_from_both_sides() {
    let (mut a, b) = pair::<u32, u32>(2, 2);
    a.try_send(1).expect("room");
    drop(b);
    assert!(a.is_peer_closed());
    assert!(matches!(a.try_send(2), Err(TrySendError::PeerClosed(2))));
    assert_eq!(a.send(3), Err(3));
    assert_eq!(a.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(a.recv(), Err(Closed));
}

#[test]
fn queued_messages_outlive_the_senders_drop() {
    let (mut a, mut b) = pair::<u32, u32>(2, 2);
    a.send(1).expect("alive");
    a.send(2).expect("alive");
    drop(a);
    assert_eq!(b.recv(), Ok(1));
    assert_eq!(b.try_recv(), Ok(2));
    assert_eq!(b.recv(), Err(Closed));
}

#[test]
fn endpoints_know_their_peer() {
    let (a, b) = pair::<u8, u8>(1, 1);
    let (c, _d) = pair::<u8, u8>(1, 1);
    assert!(a.is_peer_of(&b));
    assert!(b.is_peer_of(&a));
    assert!(!a.is_peer_of(&c));
    assert!(!a.is_peer_of(&a), "an endpoint is not its own peer");
    // Both ends find the same channel from their ring pointers, whichever side they are and whatever they carry.
    let (e, f) = pair::<u8, [u64; 5]>(1, 1);
    assert!(e.is_peer_of(&f) && f.is_peer_of(&e));
}

#[test]
fn an_endpoint_is_two_pointers() {
    // What lets a typed endpoint move from state to state in registers (docs/benchmarks.md, "Typestate cost").
    assert_eq!(size_of::<channels::raw::RawEndpoint<u8, [u64; 5]>>(), 2 * size_of::<usize>());
    assert_eq!(size_of::<Option<channels::raw::RawEndpoint<u8, u8>>>(), 2 * size_of::<usize>());
}

#[derive(Debug, Clone)]
enum Op {
    SendA(u16),
    SendB(u16),
    RecvA,
    RecvB,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![any::<u16>().prop_map(Op::SendA), any::<u16>().prop_map(Op::SendB), Just(Op::RecvA), Just(Op::RecvB),]
}

proptest! {
    // Under Miri (`cargo miri test`): fewer cases, and no failure file (Miri isolates the file system).
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 128 },
        failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
        ..ProptestConfig::default()
    })]

    #[test]
    fn operations_match_a_bounded_queue_model(cap_ab in 1usize..5, cap_ba in 1usize..5, ops in prop::collection::vec(op(), 0..200)) {
        let (mut a, mut b) = pair::<u16, u16>(cap_ab, cap_ba);
        let (mut ab, mut ba) = (VecDeque::new(), VecDeque::new());
        for op in ops {
            match op {
                Op::SendA(v) => match a.try_send(v) {
                    Ok(()) => ab.push_back(v),
                    Err(TrySendError::Full(back)) => { prop_assert_eq!(back, v); prop_assert_eq!(ab.len(), cap_ab); }
                    Err(TrySendError::PeerClosed(_)) => prop_assert!(false, "peer alive"),
                },
                Op::SendB(v) => match b.try_send(v) {
                    Ok(()) => ba.push_back(v),
                    Err(TrySendError::Full(back)) => { prop_assert_eq!(back, v); prop_assert_eq!(ba.len(), cap_ba); }
                    Err(TrySendError::PeerClosed(_)) => prop_assert!(false, "peer alive"),
                },
                Op::RecvA => prop_assert_eq!(a.try_recv().ok(), ba.pop_front()),
                Op::RecvB => prop_assert_eq!(b.try_recv().ok(), ab.pop_front()),
            }
            prop_assert!(ab.len() <= cap_ab && ba.len() <= cap_ba);
            prop_assert_eq!(b.queued(), ab.len());
            prop_assert_eq!(a.queued(), ba.len());
        }
    }
}

#[test]
fn a_typed_send_into_a_full_ring_breaks_the_channel_instead_of_waiting() {
    // A contract sizes its rings so that a peer that keeps the protocol never lets one fill up; a full ring
    // means the peer broke it (it never received). The honest sender must not wait on it forever.
    let (mut honest, mut peer) = pair::<u32, u32>(1, 1);
    assert_eq!(honest.send_mapped(1, 0, |m| m), Ok(()));
    assert_eq!(honest.send_mapped(2, 0, |m| m), Err(2), "the payload comes back");
    assert!(honest.is_peer_closed(), "the channel is closed for the sender");
    assert_eq!(peer.recv(), Ok(1), "what was sent before still arrives");
    assert_eq!(peer.recv(), Err(Closed), "then the peer sees the channel closed");
    assert!(matches!(peer.try_send(3), Err(TrySendError::PeerClosed(3))));
}
