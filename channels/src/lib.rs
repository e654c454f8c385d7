//! Plurality's channel transport: the exchange heap, the typestate-endpoint runtime that `contract!` builds on,
//! one single-producer single-consumer ring per direction, blocking hooks and `select`.
//!
//! What is here: [`ExBox`], [`ExVec`], [`ExString`], the type-erased [`ExAny`] and the sealed [`Exchangeable`]
//! marker (message data lives in the exchange heap and moves between processes by ownership transfer); [`raw`]
//! endpoints (a pair of rings sized at creation, with close flags and a wake protocol); the [`Receive`] trait,
//! [`recv`], [`try_recv`] and [`select2`]/[`select3`]/[`select_vec`]/[`select_with_vec`] that typed endpoints
//! use; the [`ContractInfo`] description with its Graphviz rendering; the [`platform`] hooks the kernel plugs in
//! ([`ExchangeHeap`], [`Blocking`]); and [`raw::reclaim_dead_endpoints`], with which the kernel closes a dead
//! owner's endpoints.
//! What is not here: contract declarations and the `contract!` macro (crate `contracts`), and any scheduler or
//! allocator of the kernel's own (they come in through the hooks).
//!
//! Invariants: `unsafe` is confined to the ring (module `ring`), the raw endpoint's shared core and the
//! exchange-heap pointer types, each block with a `// SAFETY:` comment; one ring has exactly one producer and
//! one consumer (the two endpoints, which are `Send` but not `Sync`); a ring never holds more messages than its
//! capacity; a closed peer is always observable, so no receive or select waits on a dead peer.
//!
//! Dependencies: `spin` (only `spin::Once`, to hold the installed hooks without std). With the `std` feature the
//! crate also provides host hooks in `host`.
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod describe;
mod endpoint;
mod exany;
mod exbox;
mod exchangeable;
mod exstring;
mod exvec;
#[cfg(feature = "std")]
pub mod host;
pub mod platform;
pub mod raw;
mod ring;
mod select;
mod sync;

pub use describe::{ContractInfo, Direction, MessageInfo, StateInfo, TransitionInfo};
pub use endpoint::{Closed, Contract, ContractPair, PeerClosed, Receive, TryRecv, contract_pair, recv, try_recv};
pub use exany::ExAny;
pub use exbox::ExBox;
pub use exchangeable::Exchangeable;
pub use exstring::ExString;
pub use exvec::ExVec;
pub use platform::{AllocError, Blocking, ExchangeHeap, Owner};
pub use select::{Select2, Select3, SelectWithVec, select_vec, select_with_vec, select2, select3};

/// Implementation details that generated code (`contract!`, `#[derive(Exchangeable)]`) must name.
/// Not part of the API: the isolation audit may reject services that name it.
#[doc(hidden)]
pub mod __private {
    pub use crate::exchangeable::Sealed;
}
