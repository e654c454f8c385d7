//! The name service (`names`): SIPs bind names to themselves and look names up to connect to each other.
//!
//! The kernel starts it at boot (and again if it ends) with a `NameListener` endpoint as its startup value, and
//! hands it every new connection through that endpoint, each with the id of the SIP on the other end: that id
//! is how `Unbind` knows who asks, and nobody can forge it. A lookup carries the server end of a fresh channel
//! made by the client; the name service forwards it, type-erased, to the provider, which takes it out as the
//! contract it serves or refuses it (Singularity's pattern: the name service never sees a contract's types).
//!
//! A dead SIP's names are removed: a binding whose provider endpoint is closed (the kernel closes every endpoint
//! of a dead SIP) is swept before each request is answered.
//!
//! Decision: the registry lives in this SIP, not the kernel, so a fault in it costs the bindings (providers see
//! their provider endpoint close and may bind again) but never the kernel. Limitation: the service waits for a
//! provider's answer to `Connect` (providers answer at once through `sip_runtime::accept`); a provider that
//! never answers stalls name requests, not the system.
//!
//! Invariants (DESIGN.md invariant 2, checked by the isolation audit): `#![forbid(unsafe_code)]`, no `static`
//! items, no `asm!`, `extern` blocks or linker attributes, dependencies only from the service allowlist.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

#[cfg(test)]
extern crate std;

mod registry;

use alloc::vec::Vec;
use channels::{ExString, SelectWithVec, select_with_vec};
use contracts::name_service::{self, server};
use contracts::service_provider::{self, client::Connecting};
use contracts::{NameError, name_listener};
use registry::Registry;
use sip_runtime::{RestartPolicy, SipContext, sip};

sip! {
    name: "names",
    entry: main,
    exports: ["NameService", "NameListener"],
    imports: ["ServiceProvider"],
    heap_quota: 256 * 1024,
    stack_size: 32 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

type Provider = service_provider::Client<service_provider::state::Ready>;
type Connection = name_service::Server<name_service::state::Ready>;

fn main(ctx: SipContext) {
    let Some(listener) = ctx.take_startup::<name_listener::Server<name_listener::state::Ready>>() else {
        sip_runtime::warn!(ctx, "started without a listener: the kernel starts the name service at boot");
        return;
    };
    serve(listener);
    sip_runtime::debug!(ctx, "the kernel closed the listener");
}

/// Serves connections until the kernel's listener closes.
fn serve(mut listener: name_listener::Server<name_listener::state::Ready>) {
    let mut registry: Registry<Provider> = Registry::default();
    // `clients[i]` is the connection of SIP `callers[i]`.
    let mut clients: Vec<Connection> = Vec::new();
    let mut callers: Vec<u64> = Vec::new();
    loop {
        match select_with_vec(listener, &mut clients) {
            SelectWithVec::First(Ok(name_listener::server::Ready::Connect(sip, connection, owes))) => {
                clients.push(connection);
                callers.push(sip);
                match owes.send_accepted() {
                    Ok(next) => listener = next,
                    Err(_) => return,
                }
            }
            SelectWithVec::First(Err(_closed)) => return,
            SelectWithVec::Member(next, index, request) => {
                listener = next;
                let caller = callers.remove(index);
                registry.sweep(|provider| !provider.is_peer_closed());
                if let Ok(request) = request
                    && let Some(connection) = answer(&mut registry, caller, request)
                {
                    clients.push(connection);
                    callers.push(caller);
                }
            }
        }
    }
}

/// Answers one request from SIP `caller`; the connection comes back unless the caller quit or went away.
fn answer(registry: &mut Registry<Provider>, caller: u64, request: server::Ready) -> Option<Connection> {
    match request {
        server::Ready::Bind(name, contract, provider, owes) => {
            match registry.bind(name.as_str(), caller, contract.as_str(), provider) {
                Ok(()) => owes.send_bound().ok(),
                Err((error, provider)) => owes.send_bind_failed(error, provider).ok(),
            }
        }
        server::Ready::Lookup(name, end, owes) => match connect(registry, name.as_str(), end) {
            Ok(()) => owes.send_found().ok(),
            Err(error) => owes.send_lookup_failed(error).ok(),
        },
        server::Ready::Unbind(name, owes) => match registry.unbind(name.as_str(), caller) {
            Ok(()) => owes.send_unbound().ok(),
            Err(error) => owes.send_unbind_failed(error).ok(),
        },
        server::Ready::List(owes) => owes.send_names(ExString::from(registry.listing().as_str())).ok(),
        server::Ready::Quit(done) => {
            done.close();
            None
        }
    }
}

/// Hands `end` to the provider of `name` and waits for its answer. A provider found gone is unbound.
fn connect(registry: &mut Registry<Provider>, name: &str, end: channels::ExAny) -> Result<(), NameError> {
    let (name, mut binding) = registry.take(name).ok_or(NameError::NotFound)?;
    // A send to a closed provider gives the end back; dropping it closes it, so the client sees `Closed`.
    let Ok(waiting) = binding.provider.send_connect(end) else { return Err(NameError::NotFound) };
    let (answer, provider) = match waiting.recv() {
        Ok(Connecting::Accepted(provider)) => (Ok(()), provider),
        Ok(Connecting::Refused(provider)) => (Err(NameError::Refused), provider),
        Err(_closed) => return Err(NameError::Refused),
    };
    binding.provider = provider;
    registry.restore(name, binding);
    answer
}
