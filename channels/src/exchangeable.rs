//! The [`Exchangeable`] marker: the types a message may carry, and the visit through which a send, a receive
//! and a drop find every exchange-heap block and endpoint inside a message.
//!
//! Implemented here for plain data (integers, floats, `bool`, `char`, `()`), arrays, tuples, `Option`, `Result`
//! and the exchange-heap types; `#[derive(Exchangeable)]` and `contract!` (crate `contracts`) add user structs
//! and enums whose fields all are. Deliberately **not** implemented for references, `Box`, `Rc`, `Arc`, raw
//! pointers or interior-mutable types (`Cell`, `RefCell`, atomics, locks): those would share memory between
//! processes or point into a process's private heap.
//!
//! Why an `unsafe trait`: the runtime's ownership records are only as right as `__visit` (a block it failed
//! to report would stay recorded as its sender's and be freed under its receiver when the sender dies). So the
//! trait is implemented only by this crate and by the trusted macros of `contracts` (`#[derive(Exchangeable)]`,
//! and `contract!` for its messages, wire enums and endpoints): the compiler refuses a hand-written
//! `unsafe impl` in a service, which is `#![forbid(unsafe_code)]`, while a proc macro's expansion is accepted
//! there (measured: rustc does not apply `unsafe_code` to code a proc macro generates). The derive also refuses
//! a type with a `Drop` of its own, so dropping, sending or freeing a message never runs code its sender wrote.
//!
//! Every exchangeable type is `Send` by construction (every leaf type above is, and the derive and `contract!`
//! only combine exchangeable fields). `Send` is deliberately not a supertrait: a payload such as `Rc<T>` is then
//! reported once, as "not Exchangeable" at the payload's type, instead of as a cascade of `Send` errors.

use crate::walk::Walk;
use crate::wire::{Decoder, Encoder, Wire, WireError};

/// Data that may travel in a message: owned, tree-shaped, in the exchange heap or plain.
///
/// # Safety
/// `__visit` reports every exchange-heap block and endpoint reachable from `self` exactly once, through the
/// walk's methods (boxes' contents queued, not visited in place); `__TRACKED` is `false` only if the type can
/// hold neither; the type has no `Drop` implementation of its own, is `Send`, and holds no reference or pointer
/// outside the exchange heap. Implemented by this crate, `#[derive(Exchangeable)]` and `contract!` only.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot travel in a message: it is not `Exchangeable`",
    label = "not exchangeable",
    note = "messages carry owned, tree-shaped data: integers, bool, char, arrays, tuples, ExBox, ExVec, ExString, \
            endpoints and #[derive(Exchangeable)] types; not references, Box, Rc, Arc, raw pointers or cells"
)]
pub unsafe trait Exchangeable: 'static {
    /// Whether a value may hold something with an owner record (an exchange-heap block or an endpoint), which a
    /// send and a receive must re-record. `false` (plain data) lets them skip the walk: a message with no
    /// records cannot be lost between records and ring. The default is the safe answer; only plain leaves say
    /// `false`, and compound types combine their parts.
    #[doc(hidden)]
    const __TRACKED: bool = true;

    /// Whether this value holds anything with an owner record: [`Self::__TRACKED`] unless the type knows better
    /// per value (a contract's wire enum answers by variant, so its plain messages skip the walk).
    #[doc(hidden)]
    #[inline]
    fn __is_tracked(&self) -> bool {
        Self::__TRACKED
    }

    /// Reports every block and endpoint `self` holds to `walk` (which only this crate can make).
    #[doc(hidden)]
    fn __visit(&self, walk: &mut Walk<'_>);

    /// Writes the value's byte form ([`wire`](crate::wire)), consuming it: what it holds is freed as it is
    /// written, its endpoints move into the encoder's handle table.
    #[doc(hidden)]
    fn __encode(self, out: &mut Encoder<'_>) -> Result<(), WireError>
    where
        Self: Sized;

    /// Reads a value from its byte form, checking every tag, length and handle.
    #[doc(hidden)]
    fn __decode(input: &mut Decoder<'_>) -> Result<Self, WireError>
    where
        Self: Sized;
}

macro_rules! plain {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: plain data holds no block and no endpoint, has no `Drop`, and is `Send`.
            unsafe impl Exchangeable for $t {
                const __TRACKED: bool = false;

                #[inline]
                fn __visit(&self, _: &mut Walk<'_>) {}

                #[inline]
                fn __encode(self, out: &mut Encoder<'_>) -> Result<(), WireError> {
                    Wire::encode(self, out)
                }

                #[inline]
                fn __decode(input: &mut Decoder<'_>) -> Result<Self, WireError> {
                    Wire::decode(input)
                }
            }
        )*
    };
}

plain!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64, bool, char, ());

// SAFETY: an array holds what its elements hold; each is visited.
unsafe impl<T: Exchangeable, const N: usize> Exchangeable for [T; N] {
    const __TRACKED: bool = T::__TRACKED;

    fn __visit(&self, walk: &mut Walk<'_>) {
        if T::__TRACKED {
            for item in self {
                item.__visit(walk);
            }
        }
    }

    fn __encode(self, out: &mut Encoder<'_>) -> Result<(), WireError> {
        self.into_iter().try_for_each(|item| item.__encode(out))
    }

    fn __decode(input: &mut Decoder<'_>) -> Result<Self, WireError> {
        let mut items = alloc::vec::Vec::new();
        items.try_reserve_exact(N).map_err(|_| WireError::OutOfMemory)?;
        for _ in 0..N {
            items.push(T::__decode(input)?);
        }
        items.try_into().map_err(|_| WireError::BadValue)
    }
}

// SAFETY: an option holds what its value holds.
unsafe impl<T: Exchangeable> Exchangeable for Option<T> {
    const __TRACKED: bool = T::__TRACKED;

    fn __visit(&self, walk: &mut Walk<'_>) {
        if let Some(value) = self {
            value.__visit(walk);
        }
    }

    fn __encode(self, out: &mut Encoder<'_>) -> Result<(), WireError> {
        match self {
            None => out.put_bytes(&[0]),
            Some(value) => {
                out.put_bytes(&[1])?;
                value.__encode(out)
            }
        }
    }

    fn __decode(input: &mut Decoder<'_>) -> Result<Self, WireError> {
        match input.take_array::<1>()? {
            [0] => Ok(None),
            [1] => Ok(Some(T::__decode(input)?)),
            _ => Err(WireError::BadValue),
        }
    }
}

// SAFETY: a result holds what its one live variant holds.
unsafe impl<T: Exchangeable, E: Exchangeable> Exchangeable for Result<T, E> {
    const __TRACKED: bool = T::__TRACKED || E::__TRACKED;

    fn __visit(&self, walk: &mut Walk<'_>) {
        match self {
            Ok(value) => value.__visit(walk),
            Err(error) => error.__visit(walk),
        }
    }

    fn __encode(self, out: &mut Encoder<'_>) -> Result<(), WireError> {
        match self {
            Ok(value) => {
                out.put_bytes(&[0])?;
                value.__encode(out)
            }
            Err(error) => {
                out.put_bytes(&[1])?;
                error.__encode(out)
            }
        }
    }

    fn __decode(input: &mut Decoder<'_>) -> Result<Self, WireError> {
        match input.take_array::<1>()? {
            [0] => Ok(Ok(T::__decode(input)?)),
            [1] => Ok(Err(E::__decode(input)?)),
            _ => Err(WireError::BadValue),
        }
    }
}

macro_rules! tuple {
    ($($name:ident),+) => {
        // SAFETY: a tuple holds what its fields hold; each is visited.
        unsafe impl<$($name: Exchangeable),+> Exchangeable for ($($name,)+) {
            const __TRACKED: bool = false $(|| $name::__TRACKED)+;

            #[allow(non_snake_case)]
            fn __visit(&self, walk: &mut Walk<'_>) {
                let ($($name,)+) = self;
                $($name.__visit(walk);)+
            }

            #[allow(non_snake_case)]
            fn __encode(self, out: &mut Encoder<'_>) -> Result<(), WireError> {
                let ($($name,)+) = self;
                $($name.__encode(out)?;)+
                Ok(())
            }

            fn __decode(input: &mut Decoder<'_>) -> Result<Self, WireError> {
                Ok(($($name::__decode(input)?,)+))
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
