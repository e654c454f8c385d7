//! The sealed [`Exchangeable`] marker: the types a message may carry, and the walk that re-records the owner of
//! every exchange-heap block inside a message when it is sent or received.
//!
//! Implemented here for plain data (integers, floats, `bool`, `char`, `()`), arrays, tuples, `Option`, `Result`
//! and the exchange-heap types; `#[derive(Exchangeable)]` (crate `contracts`) adds user structs and enums whose
//! fields all are. Deliberately **not** implemented for references, `Box`, `Rc`, `Arc`, raw pointers or
//! interior-mutable types (`Cell`, `RefCell`, atomics, locks): those would share memory between processes or
//! point into a process's private heap.
//!
//! Sealing: the supertrait [`Sealed`] lives in a hidden module, and the orphan rule lets other crates implement
//! it only for their own types — which the derive does after checking every field.
//!
//! Every exchangeable type is `Send` by construction (every leaf type above is, and the derive and `contract!`
//! only combine exchangeable fields). `Send` is deliberately not a supertrait: a payload such as `Rc<T>` is then
//! reported once, as "not Exchangeable" at the payload's type, instead of as a cascade of `Send` errors.

use crate::platform::{ExchangeHeap, Owner};

/// Supertrait that keeps [`Exchangeable`] closed: only this crate and `#[derive(Exchangeable)]` implement it.
pub trait Sealed {}

/// Data that may travel in a message: owned, tree-shaped, in the exchange heap or plain.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot travel in a message: it is not `Exchangeable`",
    label = "not exchangeable",
    note = "messages carry owned, tree-shaped data: integers, bool, char, arrays, tuples, ExBox, ExVec, ExString, \
            endpoints and #[derive(Exchangeable)] types; not references, Box, Rc, Arc, raw pointers or cells"
)]
pub trait Exchangeable: Sealed + 'static {
    /// Whether a value may hold something with an owner record (an exchange-heap block or an endpoint), which a
    /// send and a receive must re-record. `false` (plain data) lets them skip the walk and the uninterruptible
    /// section around it: a message with no records cannot be lost between records and ring. The default is the
    /// safe answer; only plain leaves say `false`, and compound types combine their parts.
    #[doc(hidden)]
    const __TRACKED: bool = true;

    /// Whether this value holds anything with an owner record: [`Self::__TRACKED`] unless the type knows better
    /// per value (a contract's wire enum answers by variant, so its plain messages skip the walk).
    #[doc(hidden)]
    #[inline]
    fn __is_tracked(&self) -> bool {
        Self::__TRACKED
    }

    /// Re-records every exchange-heap block reachable from `self` as owned by `to`. Plain data has none.
    #[doc(hidden)]
    #[inline]
    fn __transfer(&self, heap: &dyn ExchangeHeap, to: Owner) {
        let _ = (heap, to);
    }
}

macro_rules! plain {
    ($($t:ty),* $(,)?) => {
        $(
            impl Sealed for $t {}
            impl Exchangeable for $t {
                const __TRACKED: bool = false;
            }
        )*
    };
}

plain!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64, bool, char, ());

impl<T: Exchangeable, const N: usize> Sealed for [T; N] {}
impl<T: Exchangeable, const N: usize> Exchangeable for [T; N] {
    const __TRACKED: bool = T::__TRACKED;

    fn __transfer(&self, heap: &dyn ExchangeHeap, to: Owner) {
        for item in self {
            item.__transfer(heap, to);
        }
    }
}

impl<T: Exchangeable> Sealed for Option<T> {}
impl<T: Exchangeable> Exchangeable for Option<T> {
    const __TRACKED: bool = T::__TRACKED;

    fn __transfer(&self, heap: &dyn ExchangeHeap, to: Owner) {
        if let Some(value) = self {
            value.__transfer(heap, to);
        }
    }
}

impl<T: Exchangeable, E: Exchangeable> Sealed for Result<T, E> {}
impl<T: Exchangeable, E: Exchangeable> Exchangeable for Result<T, E> {
    const __TRACKED: bool = T::__TRACKED || E::__TRACKED;

    fn __transfer(&self, heap: &dyn ExchangeHeap, to: Owner) {
        match self {
            Ok(value) => value.__transfer(heap, to),
            Err(error) => error.__transfer(heap, to),
        }
    }
}

macro_rules! tuple {
    ($($name:ident),+) => {
        impl<$($name: Exchangeable),+> Sealed for ($($name,)+) {}
        impl<$($name: Exchangeable),+> Exchangeable for ($($name,)+) {
            const __TRACKED: bool = false $(|| $name::__TRACKED)+;

            #[allow(non_snake_case)]
            fn __transfer(&self, heap: &dyn ExchangeHeap, to: Owner) {
                let ($($name,)+) = self;
                $($name.__transfer(heap, to);)+
            }
        }
    };
}

tuple!(A);
tuple!(A, B);
tuple!(A, B, C);
tuple!(A, B, C, D);
tuple!(A, B, C, D, E);
tuple!(A, B, C, D, E, F);
tuple!(A, B, C, D, E, F, G);
tuple!(A, B, C, D, E, F, G, H);
