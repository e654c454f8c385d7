//! The exchange-heap types on the default heap: values move in and out intact, vectors grow, strings stay
//! UTF-8, destructors run exactly once, and zero-sized values allocate nothing.

use channels::__private::Sealed;
use channels::{ExBox, ExString, ExVec, Exchangeable};
use std::sync::atomic::{AtomicUsize, Ordering};

static DROPS: AtomicUsize = AtomicUsize::new(0);

/// Counts its drops (implements the sealed trait by hand, as only tests may).
struct Counted(u32);
impl Drop for Counted {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}
impl Sealed for Counted {}
impl Exchangeable for Counted {}

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
fn destructors_run_exactly_once() {
    let before = DROPS.load(Ordering::SeqCst);
    {
        let mut vec = ExVec::new();
        for i in 0..10 {
            vec.push(Counted(i));
        }
        let last = vec.pop().expect("ten elements");
        assert_eq!(last.0, 9);
        drop(last);
        let boxed = ExBox::new(Counted(100));
        let inner = boxed.into_inner();
        assert_eq!(inner.0, 100);
    }
    // 9 in the vector, 1 popped, 1 moved out of the box (dropped once, at scope end).
    assert_eq!(DROPS.load(Ordering::SeqCst) - before, 11);
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
    assert_eq!(units.block(), None);
}
