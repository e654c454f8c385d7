//! The name service contracts: services bind a name to a provider endpoint; clients look a name up by handing
//! the name service the server end of a fresh channel, which it forwards to the provider (Singularity's
//! pattern). The name service never needs to know the service's contract: the end travels as an [`ExAny`], and
//! the provider takes it out with the one type it serves (anything else is refused and dropped, so the client
//! sees `Closed`).
//!
//! Three contracts: [`NameService`] (a SIP and the name service of its core), [`ServiceProvider`] (the name
//! service and a bound service: "here is a new client") and [`NameListener`] (the kernel and the name service:
//! "here is a new SIP's connection, from SIP n", which is how the name service knows who asks). Every core runs
//! a name service; a lookup of a name bound on another core is answered `Moved(core, end)`, and the client asks
//! that core's name service.

use crate::{Exchangeable, contract};
use channels::{ExAny, ExString};
use core::fmt;

/// Why a name-service request failed.
#[derive(Exchangeable, Clone, Copy, PartialEq, Eq, Debug)]
pub enum NameError {
    /// Another provider already has the name.
    AlreadyBound,
    /// Nobody has the name.
    NotFound,
    /// The provider refused the connection (it serves another contract) or is gone.
    Refused,
    /// The name is bound by another SIP: only the binder may unbind it.
    NotOwner,
    /// Names are 1-64 bytes of `a-z 0-9 - _ . /`.
    InvalidName,
    /// The name service is not running (or went away during the request).
    Unavailable,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameError::AlreadyBound => "name already bound",
            NameError::NotFound => "no such name",
            NameError::Refused => "the provider refused the connection",
            NameError::NotOwner => "name bound by another process",
            NameError::InvalidName => "invalid name (1-64 bytes of a-z 0-9 - _ . /)",
            NameError::Unavailable => "name service unavailable",
        })
    }
}

/// The longest name the service accepts.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` is acceptable as a bound name: 1-64 bytes of `a-z 0-9 - _ . /`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_./".contains(&b))
}

contract! {
    /// Between the name service (client) and one bound service (server): "here is a new client for you".
    pub contract ServiceProvider {
        /// Serve this new connection: the server end of a channel whose client end the looking-up SIP holds.
        in message Connect(ExAny);
        /// The connection is being served.
        out message Accepted;
        /// The service does not serve that contract; it dropped the end (the client sees `Closed`).
        out message Refused;

        /// Waiting for connections.
        initial state Ready { Connect -> Connecting }
        /// The service owes an answer.
        state Connecting { Accepted -> Ready, Refused -> Ready }
    }
}

contract! {
    /// The name service: bind names to providers, look names up to connect to them, unbind, list.
    pub contract NameService {
        /// Bind a name (first) to a provider speaking contract (second, for listings).
        in message Bind(ExString, ExString, service_provider::Client<service_provider::state::Ready>);
        /// Connect to the service bound to a name: hand it this server end.
        in message Lookup(ExString, ExAny);
        /// Remove a name this SIP bound.
        in message Unbind(ExString);
        /// Every binding, one per line: `NAME sip#ID CONTRACT cpu#CORE`.
        in message List;
        /// The client is done.
        in message Quit;
        /// The name is bound.
        out message Bound;
        /// The name could not be bound; the provider endpoint comes back.
        out message BindFailed(NameError, service_provider::Client<service_provider::state::Ready>);
        /// The provider accepted the connection.
        out message Found;
        /// The lookup failed (the server end was dropped).
        out message LookupFailed(NameError);
        /// The name is served by the name service of another core: ask there (the server end comes back).
        out message Moved(u32, ExAny);
        /// The name is gone.
        out message Unbound;
        /// The name was not removed.
        out message UnbindFailed(NameError);
        /// The listing.
        out message Names(ExString);

        /// Waiting for a request.
        initial state Ready { Bind -> Binding, Lookup -> LookingUp, Unbind -> Unbinding, List -> Listing, Quit -> Done }
        /// A bind is being answered.
        state Binding { Bound -> Ready, BindFailed -> Ready }
        /// A lookup is being answered.
        state LookingUp { Found -> Ready, LookupFailed -> Ready, Moved -> Ready }
        /// An unbind is being answered.
        state Unbinding { Unbound -> Ready, UnbindFailed -> Ready }
        /// The listing is being sent.
        state Listing { Names -> Ready }
        /// The conversation is over.
        terminal state Done;
    }
}

contract! {
    /// Between the kernel (client) and the name service (server): each new connection, with the id of the SIP on
    /// the other end (0 for the kernel itself).
    pub contract NameListener {
        /// A SIP's new connection.
        in message Connect(u64, name_service::Server<name_service::state::Ready>);
        /// Taken; send the next.
        out message Accepted;

        /// Waiting for a connection.
        initial state Ready { Connect -> Connecting }
        /// The name service owes an acknowledgement.
        state Connecting { Accepted -> Ready }
    }
}
