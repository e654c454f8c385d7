//! The exchange-heap types on the host platform: values move in and out intact, vectors grow, strings stay
//! UTF-8, dropping frees every nested block exactly once (by a walk, never by running code of the element
//! type: exchangeable types have no `Drop` of their own), and zero-sized values allocate nothing.

use channels::host::{EXCHANGE, set_current_owner};
use channels::{ExBox, ExString, ExVec, Owner};

#[test]
fn exbox_moves_values_in_and_out() {
    let mut boxed = ExBox::new([1u32, 2, 3]);
    boxed[1] = 20;
    assert_eq!(*boxed, [1, 20, 3]);
    assert_eq!(boxed.clone().into_inner(), [1, 20, 3]);
    let unit = ExBox::new(());
    assert_eq!(unit.into_inner(), ());
}

#[test]
fn exvec_grows_and_keeps_order() {
    let mut vec = ExVec::new();
    assert_eq!(vec.capacity(), 0);
    for i in 0..1000u32 {
        vec.push(i);
    }
    assert_eq!(vec.len(), 1000);
    assert!(vec.iter().copied().eq(0..1000));
    assert_eq!(vec.pop(), Some(999));
    let copy = vec.clone();
    assert_eq!(copy, vec);
    let collected: ExVec<u32> = (0..5).collect();
    assert_eq!(collected.as_slice(), &[0, 1, 2, 3, 4]);
    assert_eq!(ExVec::from_slice(&[1u8, 2]).to_vec(), vec![1, 2]);
}

#[test]
fn dropping_frees_every_nested_block_once() {
    let me = Owner::sip(1001);
    set_current_owner(me);
    {
        let mut vec = ExVec::new();
        for i in 0..10u32 {
            vec.push(ExBox::new(i));
        }
        assert_eq!(EXCHANGE.ledger().held_by(me).0, 11, "the buffer and ten boxes");
        let last = vec.pop().expect("ten elements");
        assert_eq!(*last, 9);
        drop(last);
        let boxed = ExBox::new(ExBox::new(100u32));
        let inner = boxed.into_inner();
        assert_eq!(*inner, 100);
        assert_eq!(EXCHANGE.ledger().held_by(me).0, 11, "9 boxes + buffer + the inner box");
    }
    assert_eq!(EXCHANGE.ledger().charged(me), (0, 0), "everything freed, nothing twice (the ledger would panic)");
}

#[test]
fn exstring_is_text() {
    let mut s = ExString::from("héllo");
    s.push(' ');
    s.push_str("wörld");
    assert_eq!(s, "héllo wörld");
    assert_eq!(s.len(), "héllo wörld".len());
    assert_eq!(format!("{s}"), "héllo wörld");
    let (a, b) = (ExString::from("a"), ExString::from("b"));
    assert!(a < b);
    assert!(ExString::new().is_empty());
}

#[test]
fn zero_sized_vectors_never_allocate() {
    let mut units: ExVec<()> = ExVec::new();
    for _ in 0..100 {
        units.push(());
    }
    assert_eq!(units.len(), 100);
    assert_eq!(units.capacity(), usize::MAX, "zero-sized elements need no buffer");
}
