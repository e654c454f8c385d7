//! The runtime side of typestate endpoints: the [`Contract`] trait, the [`Receive`] trait that `contract!`
//! implements for every endpoint in a receiving state, and the errors of sending and receiving.
//!
//! Not here: the endpoint types themselves (generated per contract, so each contract's states get their own
//! methods) and `select` ([`select`](crate::select2)).
//!
//! Invariants: a typed endpoint is a [`RawEndpoint`] plus a zero-sized state; every operation consumes it and
//! returns it in the next state, so the typestate costs nothing at run time. Its raw transport is reachable
//! only by this crate: [`Receive`]'s plumbing takes an [`Internal`] token that only this crate can make, and
//! `Receive` is an `unsafe trait` that only `contract!` implements (a hand-written impl in a service, which is
//! `#![forbid(unsafe_code)]`, does not compile), so no service can send out of turn or skip a protocol step.

use crate::describe::ContractInfo;
use crate::exchangeable::Exchangeable;
use crate::raw::{RawEndpoint, RecvWait, TryRecvError};
use core::fmt;

/// What `contract!` declares about a contract (implemented by its generated marker type).
pub trait Contract: 'static {
    /// Every message the client (importer) may send: Sing#'s `in` messages.
    type ToServer: Exchangeable;
    /// Every message the server (exporter) may send: Sing#'s `out` messages.
    type ToClient: Exchangeable;
    /// The most client-to-server messages in flight at once (computed from the state machine).
    const TO_SERVER_CAPACITY: usize;
    /// The most server-to-client messages in flight at once.
    const TO_CLIENT_CAPACITY: usize;
    /// The state machine.
    const INFO: &'static ContractInfo;
}

/// The raw transports of a contract channel: (client side, server side).
pub type ContractPair<C> = (
    RawEndpoint<<C as Contract>::ToServer, <C as Contract>::ToClient>,
    RawEndpoint<<C as Contract>::ToClient, <C as Contract>::ToServer>,
);

/// Creates the raw pair behind a contract channel, with rings sized by the contract.
pub fn contract_pair<C: Contract>() -> ContractPair<C> {
    crate::raw::pair(C::TO_SERVER_CAPACITY, C::TO_CLIENT_CAPACITY)
}

/// [`contract_pair`], or the error if the exchange heap (or the caller's quota) cannot hold the channel.
pub fn try_contract_pair<C: Contract>() -> Result<ContractPair<C>, crate::AllocError> {
    crate::raw::try_pair(C::TO_SERVER_CAPACITY, C::TO_CLIENT_CAPACITY)
}

/// The peer is gone: nothing will arrive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("peer endpoint closed")
    }
}

/// A send found the peer gone; the message comes back.
#[derive(PartialEq, Eq)]
pub struct PeerClosed<M>(pub M);

impl<M> PeerClosed<M> {
    /// The message that was not delivered.
    pub fn into_inner(self) -> M {
        self.0
    }
}

impl<M> fmt::Debug for PeerClosed<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerClosed(..)")
    }
}

impl<M> fmt::Display for PeerClosed<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("peer endpoint closed; message returned")
    }
}

/// Why a send-then-receive (`send_<message>_and_recv`) returned no answer.
#[derive(PartialEq, Eq)]
pub enum CallFailed<M> {
    /// The peer was gone before the send: the message, back (its blocks and endpoints still the caller's).
    NotSent(M),
    /// The message was sent, and the peer is gone without an answer.
    Closed,
}

impl<M> CallFailed<M> {
    /// Whether the message went out before the peer left (a server's last answer, say, did).
    pub fn was_sent(&self) -> bool {
        matches!(self, CallFailed::Closed)
    }
}

impl<M> fmt::Debug for CallFailed<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallFailed::NotSent(_) => f.write_str("NotSent(..)"),
            CallFailed::Closed => f.write_str("Closed"),
        }
    }
}

impl<M> fmt::Display for CallFailed<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallFailed::NotSent(_) => f.write_str("peer endpoint closed; message returned"),
            CallFailed::Closed => f.write_str("peer endpoint closed before answering"),
        }
    }
}

/// The result of a non-blocking receive.
#[derive(Debug)]
pub enum TryRecv<M, E> {
    /// A message arrived (it carries the endpoint in its next state).
    Message(M),
    /// Nothing yet: here is the endpoint back, still in its state.
    Empty(E),
    /// The peer is gone.
    Closed,
}

/// A token only this crate can make: proof that a call of [`Receive`]'s plumbing comes from the runtime.
#[doc(hidden)]
pub struct Internal(());

impl Internal {
    pub(crate) const fn new() -> Self {
        Internal(())
    }
}

/// An endpoint in a state where it receives. Implemented by `contract!`; the methods are its plumbing.
///
/// # Safety
/// `__raw` and `__raw_ref` return the endpoint's own transport, and `__decode` accepts exactly the messages the
/// state allows (anything else is `Err(Closed)`). Implemented by `contract!` only.
pub unsafe trait Receive: Sized {
    /// What the endpoint sends (its raw transport's type).
    type Tx: Exchangeable;
    /// What the endpoint receives.
    type Rx: Exchangeable;
    /// The enum of messages allowed in this state, each with the endpoint in its next state.
    type Message;

    /// The transport.
    #[doc(hidden)]
    fn __raw(&mut self, token: Internal) -> &mut RawEndpoint<Self::Tx, Self::Rx>;

    /// The transport, shared.
    #[doc(hidden)]
    fn __raw_ref(&self, token: Internal) -> &RawEndpoint<Self::Tx, Self::Rx>;

    /// Types a received message by the state, moving the endpoint into its next state. A message the state does
    /// not allow (impossible through typed endpoints) is `Err(Closed)` and drops the endpoint.
    #[doc(hidden)]
    fn __decode(self, message: Self::Rx, token: Internal) -> Result<Self::Message, Closed>;
}

/// Waits for the next message (or the peer's close).
#[inline]
pub fn recv<E: Receive>(mut endpoint: E) -> Result<E::Message, Closed> {
    let message = endpoint.__raw(Internal::new()).recv()?;
    endpoint.__decode(message, Internal::new())
}

/// [`recv`] as a future: waits for the next message without a thread of its own (channels/src/tasks.rs).
#[inline]
pub fn recv_async<E: Receive>(endpoint: E) -> RecvTyped<E> {
    RecvTyped { endpoint: Some(endpoint), wait: RecvWait::Fresh }
}

/// The typed receive as a future ([`recv_async`]): polls the raw transport (`RawEndpoint::poll_recv`) and types
/// the message with the endpoint's state. Written out rather than an `async fn`: a generator around the raw
/// future cost an async round trip some 190 instructions (docs/thread-models.md). Polled again after it
/// completed, it answers `Closed`.
#[must_use = "a receive does nothing unless awaited"]
pub struct RecvTyped<E: Receive> {
    /// The endpoint, until the message comes (then it moves into the message's next state).
    endpoint: Option<E>,
    /// Where its wait stands (the task's token is in the ring's wait cell once `Registered`).
    wait: RecvWait,
}

// Nothing is ever pinned through a `RecvTyped`: the endpoint is moved out only when the receive is done.
impl<E: Receive> Unpin for RecvTyped<E> {}

impl<E: Receive> core::future::Future for RecvTyped<E> {
    type Output = Result<E::Message, Closed>;

    #[inline]
    fn poll(mut self: core::pin::Pin<&mut Self>, cx: &mut core::task::Context<'_>) -> core::task::Poll<Self::Output> {
        let this = &mut *self;
        let Some(endpoint) = this.endpoint.as_mut() else { return core::task::Poll::Ready(Err(Closed)) };
        let message = match endpoint.__raw(Internal::new()).poll_recv(cx, &mut this.wait) {
            core::task::Poll::Ready(message) => message,
            core::task::Poll::Pending => return core::task::Poll::Pending,
        };
        let Some(endpoint) = this.endpoint.take() else { return core::task::Poll::Ready(Err(Closed)) };
        core::task::Poll::Ready(message.and_then(|message| endpoint.__decode(message, Internal::new())))
    }
}

impl<E: Receive> Drop for RecvTyped<E> {
    fn drop(&mut self) {
        // Dropped while it waits: its token comes out of the ring (as `raw::RecvAsync`'s does).
        if self.wait == RecvWait::Registered
            && let Some(endpoint) = self.endpoint.as_mut()
        {
            endpoint.__raw(Internal::new()).forget_registration();
        }
    }
}

/// Takes the next message if one is there.
#[inline]
pub fn try_recv<E: Receive>(mut endpoint: E) -> TryRecv<E::Message, E> {
    match endpoint.__raw(Internal::new()).try_recv() {
        Ok(message) => match endpoint.__decode(message, Internal::new()) {
            Ok(typed) => TryRecv::Message(typed),
            Err(Closed) => TryRecv::Closed,
        },
        Err(TryRecvError::Empty) => TryRecv::Empty(endpoint),
        Err(TryRecvError::Closed) => TryRecv::Closed,
    }
}

/// A send of `payload` (as `wrap` makes it a `Tx`, variant `tag`) on `raw`, then a receive in the state the send
/// leads to, whose endpoint `next` makes of `raw`: what `send_<message>_and_recv` does. In ring 0 it is the two
/// operations; a ring-3 endpoint makes it one call to the kernel (`CHANNEL_CALL`).
///
/// Always inlined: a server's loop that answers and receives in one step (echo's) otherwise calls it and gets
/// the next request back through memory, which cost the ring-0 ping-pong 15 instructions a round trip.
#[inline(always)]
pub fn send_then_recv<E: Receive, P: Exchangeable>(
    mut raw: RawEndpoint<E::Tx, E::Rx>,
    payload: P,
    tag: u32,
    wrap: impl FnOnce(P) -> E::Tx,
    next: impl FnOnce(RawEndpoint<E::Tx, E::Rx>) -> E,
) -> Result<E::Message, CallFailed<P>> {
    // In ring 0 exactly the typed send and the typed receive, so that the message path compiles as it does
    // when a service writes the two (the ping-pong benchmark measures it).
    #[cfg(not(feature = "ring3"))]
    {
        raw.send_mapped(payload, tag, wrap).map_err(CallFailed::NotSent)?;
        recv(next(raw)).map_err(|Closed| CallFailed::Closed)
    }
    #[cfg(feature = "ring3")]
    {
        let message = raw.send_mapped_then_recv(payload, tag, wrap)?;
        next(raw).__decode(message, Internal::new()).map_err(|Closed| CallFailed::Closed)
    }
}
