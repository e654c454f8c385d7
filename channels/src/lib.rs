//! Plurality's channel transport: the exchange heap, the typestate-endpoint runtime that `contract!` builds on,
//! one single-producer single-consumer ring per direction, blocking hooks and `select`.
//!
//! What is here: [`ExBox`], [`ExVec`], [`ExString`], the type-erased [`ExAny`] and the [`Exchangeable`] marker
//! (message data lives in the exchange heap and moves between processes by ownership transfer); [`raw`]
//! endpoints (a pair of rings in one block sized at creation, with close flags and a wake protocol); the
//! [`Receive`] trait, [`recv`], [`try_recv`] and [`select2`]/[`select3`]/[`select_vec`]/[`select_with_vec`]
//! that typed endpoints use, and their transport [`tracked::Tracked`] (a raw endpoint that knows its contract
//! state and reports a drop mid-protocol); the [`ContractInfo`] description with its Graphviz rendering; the [`platform`]
//! hooks a kernel plugs in ([`Exchange`], [`Blocking`]); the [`ledger`] of who holds and who pays for what,
//! which platforms keep behind a lock; what only the [`trusted`] base may do; and, for ring-3 SIPs (which never
//! see the exchange heap), the byte form of messages ([`wire`]), the kernel's side of their endpoints
//! ([`proxy`]: a handle table and the operations of the channel calls) and, with the `ring3` feature (the ring-3
//! image's build), `raw` endpoints that are handles used through calls (docs/protection.md, "How a message
//! crosses").
//! What is not here: contract declarations and the `contract!` macro (crate `contracts`), and any scheduler or
//! allocator of the kernel's own (they come in through the hooks).
//!
//! Invariants: `unsafe` is confined to the ring (module `ring`), the raw endpoint's channel block (and
//! `trusted::close_side`, which closes one by name), the walk, the exchange-heap pointer types and the host platform
//! (`host`), each block with a `// SAFETY:` comment; one ring has exactly one producer and one consumer (the two
//! endpoints, which are `Send` but not `Sync`); a ring never holds more messages than its capacity; a closed peer is
//! always observable, so no receive or select waits on a dead peer. Against a hostile caller (a service in safe Rust,
//! DESIGN.md invariant 5): every item a process can name is safe to use in any order with any arguments; nothing hands
//! out an exchange-heap address; every ownership change is checked by the platform's records; `Exchangeable` and
//! `Receive` (`unsafe` traits) are implemented only by this crate and the trusted macros of `contracts`
//! (`#[derive(Exchangeable)]`, `contract!`); and no operation runs code a process supplied (a `Drop`, a function
//! pointer in shared memory) on another process's or the kernel's behalf (an `ExAny`'s encoder is a function this
//! crate wrote, in memory only ring-0 code can reach). Bytes from ring 3 are untrusted: decoding checks every tag,
//! length and handle, bounded in depth and size (`wire`). docs/security.md has the threat model.
//!
//! Dependencies: `spin` (`spin::Once`, to hold the installed hooks without std; in the `ring3` build also a mutex
//! for the reused message buffers) and `linkme` (the registries of what may cross between rings, filled by
//! `contract!`). With the `std` feature the crate also provides the host platform in `host`.
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
pub mod ledger;
pub mod platform;
#[cfg(not(feature = "ring3"))]
pub mod proxy;
#[cfg(not(feature = "ring3"))]
pub mod raw;
#[cfg(feature = "ring3")]
#[path = "raw_ring3.rs"]
pub mod raw;
mod raw_shared;
#[cfg(not(feature = "ring3"))]
mod ring;
mod select;
#[cfg(not(feature = "ring3"))]
mod sync;
#[cfg(not(feature = "ring3"))]
pub mod tasks;
pub mod tracked;
pub mod trusted;
mod walk;
pub mod wire;

pub use describe::{ContractInfo, Direction, MessageInfo, StateInfo, TransitionInfo};
pub use endpoint::{
    CallFailed, Closed, Contract, ContractPair, Internal, PeerClosed, Receive, RecvTyped, TryRecv, contract_pair, recv,
    recv_async, send_then_recv, try_contract_pair, try_recv,
};
pub use exany::ExAny;
pub use exbox::ExBox;
pub use exchangeable::Exchangeable;
pub use exstring::ExString;
pub use exvec::ExVec;
#[doc(hidden)]
pub use linkme as __linkme;
pub use platform::{AllocError, Blocking, Exchange, Owner};
pub use select::{
    Select2, Select3, SelectWithVec, SelectWithVecAsync, select_vec, select_with_vec, select_with_vec_async, select2,
    select3,
};
pub use tracked::State;
#[doc(hidden)]
pub use walk::Walk;
