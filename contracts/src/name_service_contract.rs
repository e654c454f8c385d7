//! The name service contracts: services bind a name to a provider endpoint; clients look a name up and get a
//! fresh, connected endpoint back (Singularity's pattern: the name service creates the channel and hands its
//! server end to the provider).
//!
//! Today the connections handed out speak the echo contract; a contract-generic name service needs a type-erased
//! endpoint and is left to the SIP issue.

use crate::{Exchangeable, contract, echo};
use channels::ExString;

/// Why a name-service request failed.
#[derive(Exchangeable, Clone, Copy, PartialEq, Eq, Debug)]
pub enum NameError {
    /// Another provider already has the name.
    AlreadyBound,
    /// Nobody has the name.
    NotFound,
    /// The provider refused the connection (or is gone).
    Refused,
}

contract! {
    /// Between the name service (client) and one service (server): "here is a new client for you".
    pub contract ServiceProvider {
        /// Serve this new connection.
        in message Connect(echo::Server<echo::state::Ready>);
        /// The connection is being served.
        out message Accepted;
        /// The service will not serve it; the endpoint comes back.
        out message Refused(echo::Server<echo::state::Ready>);

        /// Waiting for connections.
        initial state Ready { Connect -> Connecting }
        /// The service owes an answer.
        state Connecting { Accepted -> Ready, Refused -> Ready }
    }
}

contract! {
    /// The name service: bind names to providers, look names up to get connected endpoints.
    pub contract NameService {
        /// Bind a name to a provider.
        in message Bind(ExString, service_provider::Client<service_provider::state::Ready>);
        /// Connect to the service bound to a name.
        in message Lookup(ExString);
        /// The client is done.
        in message Quit;
        /// The name is bound.
        out message Bound;
        /// The name could not be bound; the provider endpoint comes back.
        out message BindFailed(NameError, service_provider::Client<service_provider::state::Ready>);
        /// A fresh endpoint connected to the named service.
        out message Found(echo::Client<echo::state::Ready>);
        /// The lookup failed.
        out message LookupFailed(NameError);

        /// Waiting for a request.
        initial state Ready { Bind -> Binding, Lookup -> LookingUp, Quit -> Done }
        /// A bind is being answered.
        state Binding { Bound -> Ready, BindFailed -> Ready }
        /// A lookup is being answered.
        state LookingUp { Found -> Ready, LookupFailed -> Ready }
        /// The conversation is over.
        terminal state Done;
    }
}
