//! Safe Rust that writes memory it does not own, through a soundness bug of the compiler.
//!
//! rust-lang/rust#25860 (implied bounds on nested references) still compiles with the pinned nightly: a
//! function whose signature implies `'b: 'a` through an unused `&'a &'b ()` argument can be coerced to a
//! higher-ranked function pointer type that forgets the bound, which turns any borrow into a `'static` one
//! ([`extend`]). With that,
//! a reference into an enum outlives the variant it pointed at, and writing a number over the variant turns the
//! reference's target into a pointer of the program's choice (docs/security.md). No `unsafe` anywhere: this
//! module forbids it. In ring 0 (`type`) this writes anywhere; in ring 3 the MMU decides (docs/protection.md).
#![forbid(unsafe_code)]

use super::{SURVIVED, number};
use core::cell::Cell;

/// The helper of the bug: returns `value` with the shorter lifetime `'a`, which the signature allows because
/// the first argument implies `'b: 'a`.
fn helper<'a, 'b, T>(_: &'a &'b (), value: &'b T) -> &'a T {
    value
}

/// Any shared borrow, made `'static` (the bug; `&mut` is invariant and does not coerce this way, so the write
/// goes through a `Cell`). The pointer type is higher-ranked over the result's lifetime and forgets that the
/// first argument ties it to `'a`; called with a `&'static &'static ()`, it returns a `&'static T`. (The issue's
/// first form, `fn(_, &'a T) -> &'static T`, is refused by the pinned compiler; this one is not.)
fn extend<'a, T>(value: &'a T) -> &'static T {
    let forget: for<'x> fn(&'x &'a (), &'a T) -> &'x T = helper;
    forget(&&(), value)
}

/// A slot that holds a pointer or a number in the same place.
enum Slot {
    Pointer(&'static Cell<u8>),
    Number(#[allow(dead_code, reason = "never read as a number: its bytes are what the stale reference reads")] u64),
}

/// Writes 0x55 to the address in `args` and returns [`SURVIVED`] if nothing stopped it.
pub fn write_anywhere(args: &str) -> u32 {
    let address = number(args.trim()).unwrap_or(0);
    let byte = Cell::new(0u8);
    let mut slot = Slot::Pointer(extend(&byte));
    let pointer: &'static &'static Cell<u8> = match &slot {
        Slot::Pointer(pointer) => extend(pointer),
        Slot::Number(_) => return 2,
    };
    // The pointer's storage now holds the address: `pointer` still believes it points at a `&Cell<u8>`.
    slot = Slot::Number(core::hint::black_box(address));
    core::hint::black_box(&slot);
    core::hint::black_box(pointer).set(0x55);
    SURVIVED
}
