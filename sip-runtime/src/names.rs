//! Name-service calls on a SIP's behalf: bind a name to this SIP, look a name up to connect to its service,
//! unbind, list. Each call opens its own connection ([`KernelAbi::connect_names`](crate::KernelAbi)), speaks
//! the `NameService` contract for one request and quits, so a SIP holds no name-service state between calls.
//!
//! A provider (the SIP that bound a name) receives each new client as `Connect(end)` on the endpoint
//! [`SipContext::bind`] returns, and answers with [`accept`], which takes the end out as the one type it serves
//! and refuses anything else. A client makes the channel itself and hands over the server end:
//!
//! ```ignore
//! let (client, server) = echo::channel();
//! ctx.lookup("echo", server)?;      // the provider now holds `server`
//! client.send_ping(1)?;
//! ```
//!
//! Each call has an `async` twin for async SIPs (`bind_async`, `lookup_async`, `unbind_async`, `names_async`):
//! the same request on the same contract, whose answer is awaited (`recv_async`) instead of waited for on a
//! thread, so a continuation that asks the name service holds no stack, and no runner, meanwhile
//! (docs/thread-models.md).
//!
//! Not here: the registry (the `names` service) and the kernel's broker that hands it each connection.

use crate::SipContext;
use alloc::string::String;
use channels::{Closed, ExAny, ExString, Exchangeable};
use contracts::name_service::client::{Binding, Listing, LookingUp, Unbinding};
use contracts::service_provider::{self, state};
use contracts::{NameError, is_valid_name};

/// A provider's endpoint: where the name service delivers new clients.
pub type ProviderEndpoint = service_provider::Server<state::Ready>;

/// How many `Moved` answers a lookup follows (one is all a consistent registry needs; a second covers a name
/// that moved while the lookup was on its way).
pub const MAX_MOVES: usize = 2;

fn quit(connection: crate::NameServiceClient) {
    if let Ok(done) = connection.send_quit() {
        done.close();
    }
}

/// A fresh connection to the name service of `core` (default: this SIP's): the channel is made here (charged
/// to this SIP), and its server end handed to the kernel, which queues it for that core's name service.
fn connect(ctx: &SipContext, core: Option<u32>) -> Result<crate::NameServiceClient, NameError> {
    let (client, server) = contracts::name_service::try_channel().map_err(|_| NameError::Unavailable)?;
    if ctx.abi.connect_names(core, server) { Ok(client) } else { Err(NameError::Unavailable) }
}

/// One request on a fresh connection: `ask` sends it and waits for the answer; the connection is closed after.
fn with_connection<T>(
    ctx: &SipContext,
    ask: impl FnOnce(crate::NameServiceClient) -> Result<(T, crate::NameServiceClient), Closed>,
) -> Result<T, NameError> {
    let connection = connect(ctx, None)?;
    let (answer, connection) = ask(connection).map_err(|Closed| NameError::Unavailable)?;
    quit(connection);
    Ok(answer)
}

/// What one lookup's answer means, its connection quit: the lookup's result, or (`Err`) the core the name moved
/// to, with the end back to try there.
fn looked_up(answer: Result<LookingUp, Closed>) -> Result<Result<(), NameError>, (u32, ExAny)> {
    let (result, ns) = match answer {
        Err(Closed) => return Ok(Err(NameError::Unavailable)),
        Ok(LookingUp::Found(ns)) => (Ok(()), ns),
        Ok(LookingUp::LookupFailed(error, ns)) => (Err(error), ns),
        Ok(LookingUp::Moved(there, back, ns)) => {
            quit(ns);
            return Err((there, back));
        }
    };
    quit(ns);
    Ok(result)
}

fn checked(name: &str) -> Result<ExString, NameError> {
    if is_valid_name(name) { Ok(ExString::from(name)) } else { Err(NameError::InvalidName) }
}

impl SipContext {
    /// Binds `name` to this SIP, which serves `contract` (a name from `contracts::all()`, shown in listings).
    /// New clients then arrive on the returned endpoint; answer each with [`accept`]. The name is removed when
    /// the endpoint is dropped or this SIP ends.
    pub fn bind(&self, name: &str, contract: &str) -> Result<ProviderEndpoint, NameError> {
        let name = checked(name)?;
        let (theirs, ours) = service_provider::channel();
        let answer = with_connection(self, |ns| {
            match ns.send_bind(name, ExString::from(contract), theirs).map_err(|_| Closed)?.recv()? {
                Binding::Bound(ns) => Ok((Ok(()), ns)),
                Binding::BindFailed(error, _theirs, ns) => Ok((Err(error), ns)),
            }
        })?;
        answer.map(|()| ours)
    }

    /// Connects `server_end` (the server end of a channel whose client end the caller keeps) to the service
    /// bound to `name`. `Refused` if that service does not serve `E`'s contract; the end is then dropped.
    ///
    /// A name bound on another core is looked up again there (the name service answers `Moved`); the lookup
    /// follows at most [`MAX_MOVES`] such answers.
    pub fn lookup<E: Exchangeable + Send>(&self, name: &str, server_end: E) -> Result<(), NameError> {
        checked(name)?;
        let mut end = ExAny::new(server_end).map_err(|_| NameError::Unavailable)?;
        let mut core = None;
        for _ in 0..=MAX_MOVES {
            let asked = connect(self, core)?.send_lookup(ExString::from(name), end);
            match looked_up(asked.map_err(|_| NameError::Unavailable)?.recv()) {
                Ok(answer) => return answer,
                Err((there, back)) => (core, end) = (Some(there), back),
            }
        }
        Err(NameError::Unavailable)
    }

    /// Removes `name`, which this SIP bound.
    pub fn unbind(&self, name: &str) -> Result<(), NameError> {
        let name = checked(name)?;
        with_connection(self, |ns| match ns.send_unbind(name).map_err(|_| Closed)?.recv()? {
            Unbinding::Unbound(ns) => Ok((Ok(()), ns)),
            Unbinding::UnbindFailed(error, ns) => Ok((Err(error), ns)),
        })?
    }

    /// Every binding, one per line: `NAME sip#ID CONTRACT cpu#CORE`.
    pub fn names(&self) -> Result<String, NameError> {
        with_connection(self, |ns| match ns.send_list().map_err(|_| Closed)?.recv()? {
            Listing::Names(text, ns) => Ok((String::from(text.as_str()), ns)),
        })
    }
}

/// The async twins, for async SIPs (module docs): each sends what its blocking twin sends and awaits the answer.
impl SipContext {
    /// [`bind`](Self::bind), awaiting the name service's answer.
    pub async fn bind_async(&self, name: &str, contract: &str) -> Result<ProviderEndpoint, NameError> {
        let name = checked(name)?;
        let (theirs, ours) = service_provider::channel();
        let asked = connect(self, None)?.send_bind(name, ExString::from(contract), theirs);
        let answer = asked.map_err(|_| NameError::Unavailable)?.recv_async().await;
        let (answer, ns) = match answer.map_err(|Closed| NameError::Unavailable)? {
            Binding::Bound(ns) => (Ok(ours), ns),
            Binding::BindFailed(error, _theirs, ns) => (Err(error), ns),
        };
        quit(ns);
        answer
    }

    /// [`lookup`](Self::lookup), awaiting each of the name service's answers (following at most [`MAX_MOVES`]
    /// `Moved`).
    pub async fn lookup_async<E: Exchangeable + Send>(&self, name: &str, server_end: E) -> Result<(), NameError> {
        checked(name)?;
        let mut end = ExAny::new(server_end).map_err(|_| NameError::Unavailable)?;
        let mut core = None;
        for _ in 0..=MAX_MOVES {
            let asked = connect(self, core)?.send_lookup(ExString::from(name), end);
            match looked_up(asked.map_err(|_| NameError::Unavailable)?.recv_async().await) {
                Ok(answer) => return answer,
                Err((there, back)) => (core, end) = (Some(there), back),
            }
        }
        Err(NameError::Unavailable)
    }

    /// [`unbind`](Self::unbind), awaiting the name service's answer.
    pub async fn unbind_async(&self, name: &str) -> Result<(), NameError> {
        let name = checked(name)?;
        let asked = connect(self, None)?.send_unbind(name).map_err(|_| NameError::Unavailable)?;
        let (answer, ns) = match asked.recv_async().await.map_err(|Closed| NameError::Unavailable)? {
            Unbinding::Unbound(ns) => (Ok(()), ns),
            Unbinding::UnbindFailed(error, ns) => (Err(error), ns),
        };
        quit(ns);
        answer
    }

    /// [`names`](Self::names), awaiting the name service's answer.
    pub async fn names_async(&self) -> Result<String, NameError> {
        let asked = connect(self, None)?.send_list().map_err(|_| NameError::Unavailable)?;
        match asked.recv_async().await.map_err(|Closed| NameError::Unavailable)? {
            Listing::Names(text, ns) => {
                quit(ns);
                Ok(String::from(text.as_str()))
            }
        }
    }
}

/// Answers a `Connect` on a provider endpoint: the end as an `E` (and `Accepted`), or `None` after refusing an
/// end of any other type. The endpoint comes back ready for the next client, or `Err(Closed)` if the name
/// service is gone.
pub fn accept<E: Exchangeable + Send>(
    end: ExAny,
    owes: service_provider::Server<state::Connecting>,
) -> (Option<E>, Result<ProviderEndpoint, Closed>) {
    match end.downcast::<E>() {
        Ok(end) => (Some(end), owes.send_accepted().map_err(|_| Closed)),
        Err(_other) => (None, owes.send_refused().map_err(|_| Closed)),
    }
}
