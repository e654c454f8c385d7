//! What both builds of `raw` (ring 0's rings, ring 3's handles) share, so a program and the kernel see the same
//! types in every mode: the errors of a non-blocking send and receive, an endpoint's state, and where a future
//! receive stands in its wait.

use core::fmt;

/// Why a non-blocking send did not happen; the message comes back.
#[derive(PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The ring is full (never happens for contract channels: their rings are sized by the contract).
    Full(T),
    /// The peer is gone.
    PeerClosed(T),
}

impl<T> TrySendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(message) | TrySendError::PeerClosed(message) => message,
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::PeerClosed(_) => f.write_str("PeerClosed(..)"),
        }
    }
}

/// Why a non-blocking receive returned nothing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TryRecvError {
    /// Nothing queued; the peer is alive.
    Empty,
    /// Nothing queued and the peer is gone (or the channel broke: see the module docs): nothing will arrive.
    Closed,
}

/// An endpoint's state, as a ring-3 SIP asks the kernel for it (`proxy::Proxied::status`, the `CHANNEL_STATUS`
/// call).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Status {
    /// The peer is gone.
    pub peer_closed: bool,
    /// Messages waiting to be received.
    pub queued: usize,
    /// Messages sent and not yet received by the peer.
    pub in_flight: usize,
    /// The most messages in flight towards the peer.
    pub send_capacity: usize,
    /// The most messages in flight towards us.
    pub recv_capacity: usize,
}

/// Where a future receive stands in its wait (`RawEndpoint::poll_recv`; kept in the future between polls).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecvWait {
    /// It has not found the ring empty yet.
    #[default]
    Fresh,
    /// It found the ring empty and let the core's other tasks run once.
    Spun,
    /// Its task's token is in the ring's wait cell (to be taken out when the receive ends or is dropped).
    Registered,
}
