//! The transport of a typed endpoint: a raw endpoint that knows its contract state, so that dropping it in the
//! middle of a conversation is visible ([`Exchange::dropped_mid_protocol`](crate::Exchange::dropped_mid_protocol)).
//!
//! Rust is affine, not linear: an endpoint may be dropped in any state, and the peer then sees `Closed`, which is
//! always safe. What a developer wants to know is *where* that happened. A [`Tracked`] endpoint is the raw one
//! plus its state as a type; its `Drop` asks the state (constants, so a terminal state's drop compiles to the raw
//! drop alone) and reports a drop outside a terminal state while the peer is still there. A peer that closed
//! first is not reported: the conversation ended on its side (that is also how a receive that sees `Closed`
//! drops its endpoint).
//!
//! Not here: the counting and the log (the platform's), the typed API (`contract!` generates it over this).
//!
//! Invariants: a `Tracked` owns its raw endpoint exactly once: [`Tracked::into_raw`] hands it over without the
//! state's drop, every other path drops it after the report. Moving between states costs nothing: `Tracked` is
//! the raw endpoint's two words.

use crate::raw::RawEndpoint;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;

/// A contract state, as `contract!` describes it to the runtime.
pub trait State: 'static {
    /// The contract's name.
    const CONTRACT: &'static str;
    /// The state's name.
    const NAME: &'static str;
    /// Whether the conversation may end here (`terminal state`).
    const TERMINAL: bool;
}

/// Which side of a contract an endpoint is (the client imports, the server exports).
pub const CLIENT: bool = false;
/// See [`CLIENT`].
pub const SERVER: bool = true;

/// A raw endpoint in contract state `S`, on the server side if `SIDE` is [`SERVER`].
pub struct Tracked<Tx, Rx, S: State, const SIDE: bool> {
    raw: ManuallyDrop<RawEndpoint<Tx, Rx>>,
    state: PhantomData<fn() -> S>,
}

impl<Tx, Rx, S: State, const SIDE: bool> Tracked<Tx, Rx, S, SIDE> {
    /// `raw`, now in state `S`.
    #[inline]
    pub fn new(raw: RawEndpoint<Tx, Rx>) -> Self {
        Self { raw: ManuallyDrop::new(raw), state: PhantomData }
    }

    /// The raw endpoint, leaving state `S` without a report (for a transition, or a hand-over in a message).
    #[inline]
    pub fn into_raw(self) -> RawEndpoint<Tx, Rx> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so its endpoint is taken exactly once, here.
        unsafe { ManuallyDrop::take(&mut this.raw) }
    }

    /// The raw endpoint, to look at.
    #[inline]
    pub fn raw(&self) -> &RawEndpoint<Tx, Rx> {
        &self.raw
    }

    /// The raw endpoint, to send or receive on.
    #[inline]
    pub fn raw_mut(&mut self) -> &mut RawEndpoint<Tx, Rx> {
        &mut self.raw
    }
}

impl<Tx, Rx, S: State, const SIDE: bool> Drop for Tracked<Tx, Rx, S, SIDE> {
    #[inline]
    fn drop(&mut self) {
        if !S::TERMINAL {
            report::<S, SIDE>(self.raw.is_peer_closed());
        }
        // SAFETY: dropped once, here; `into_raw` takes the endpoint only from a `Tracked` that is never dropped.
        unsafe { ManuallyDrop::drop(&mut self.raw) }
    }
}

/// Reports a drop in `S` unless the peer had closed. Out of line and cold: a receive whose peer closed drops its
/// endpoint here, and that path must not weigh on the inlining of the message path around it.
#[cold]
#[inline(never)]
fn report<S: State, const SIDE: bool>(peer_closed: bool) {
    if !peer_closed {
        let side = if SIDE == SERVER { "server" } else { "client" };
        crate::platform::current().exchange.dropped_mid_protocol(S::CONTRACT, S::NAME, side);
    }
}
