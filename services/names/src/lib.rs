//! The name service (`names`): SIPs bind names to themselves and look names up to connect to each other. One
//! runs on every core.
//!
//! The kernel starts it on each core at boot (and again if it ends) with a `NameListener` endpoint as its
//! startup value, and hands it every new connection through that endpoint, each with the id of the SIP on the
//! other end: that id is how `Unbind` knows who asks, and nobody can forge it.
//!
//! Which name is bound, to which SIP on which core, is the kernel's replicated name registry (every core holds a
//! replica; a bind is agreed with the name's arbiter core, so of two SIPs binding one name at once, on any cores,
//! exactly one wins). This service keeps what cannot be replicated: the provider endpoints of its own core's
//! SIPs. A lookup reads the local replica: a name bound here is connected here (the client's server end is
//! forwarded, type-erased, to the provider, which takes it out as the contract it serves or refuses it); a name
//! bound on another core is answered `Moved(core, end)`, and the client asks that core's name service.
//!
//! A dead SIP's names are removed: the kernel releases them when it reclaims the SIP, and this service drops a
//! provider endpoint found closed (sweeping before each request), releasing its name.
//!
//! Decision: the endpoints live in a SIP, not the kernel, so a fault here costs this core's bindings (providers
//! see their endpoint close and may bind again) but never the kernel. Limitation: the service waits for a
//! provider's answer to `Connect` (providers answer at once through `sip_runtime::accept`); a provider that
//! never answers stalls this core's name requests, not the system.
//!
//! Invariants (DESIGN.md invariant 2, checked by the isolation audit): `#![forbid(unsafe_code)]`, no `static`
//! items, no `asm!`, `extern` blocks or linker attributes, dependencies only from the service allowlist.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

#[cfg(test)]
extern crate std;

mod registry;

use alloc::string::String;
use alloc::vec::Vec;
use channels::{ExAny, ExString, SelectWithVec, select_with_vec};
use contracts::name_service::{self, server};
use contracts::service_provider::{self, client::Connecting};
use contracts::{NameError, name_listener};
use core::fmt::Write;
use registry::Registry;
use sip_runtime::{Capability, KernelAbi, NameRegistryError, RestartPolicy, SipContext, SipId, sip};

sip! {
    name: "names",
    entry: main,
    exports: ["NameService", "NameListener"],
    imports: ["ServiceProvider"],
    heap_quota: 256 * 1024,
    stack_size: 32 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [Capability::NameRegistry],
}

type Provider = service_provider::Client<service_provider::state::Ready>;
type Connection = name_service::Server<name_service::state::Ready>;

fn main(ctx: SipContext) {
    let Some(listener) = ctx.take_startup::<name_listener::Server<name_listener::state::Ready>>() else {
        sip_runtime::warn!(ctx, "started without a listener: the kernel starts the name service at boot");
        return;
    };
    serve(ctx.abi(), listener);
    sip_runtime::debug!(ctx, "the kernel closed the listener");
}

/// Serves connections until the kernel's listener closes.
fn serve(abi: &dyn KernelAbi, mut listener: name_listener::Server<name_listener::state::Ready>) {
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
                for (name, owner) in registry.sweep(|provider| !provider.is_peer_closed()) {
                    // Already gone from the registry if the kernel released the dead SIP's names first.
                    let _ = abi.release_name(&name, SipId(owner));
                }
                if let Ok(request) = request
                    && let Some(connection) = answer(abi, &mut registry, caller, request)
                {
                    clients.push(connection);
                    callers.push(caller);
                }
            }
        }
    }
}

/// The contract's error for a registry refusal.
fn name_error(error: NameRegistryError) -> NameError {
    match error {
        NameRegistryError::AlreadyBound => NameError::AlreadyBound,
        NameRegistryError::NotFound => NameError::NotFound,
        NameRegistryError::NotOwner => NameError::NotOwner,
        NameRegistryError::Invalid => NameError::InvalidName,
        NameRegistryError::NotPermitted | NameRegistryError::Unavailable => NameError::Unavailable,
    }
}

/// Answers one request from SIP `caller`; the connection comes back unless the caller quit or went away.
fn answer(
    abi: &dyn KernelAbi,
    registry: &mut Registry<Provider>,
    caller: u64,
    request: server::Ready,
) -> Option<Connection> {
    match request {
        server::Ready::Bind(name, contract, provider, owes) => {
            let (name, contract) = (name.as_str(), contract.as_str());
            let bound = match abi.claim_name(name, SipId(caller), contract) {
                Err(error) => Err((name_error(error), provider)),
                Ok(()) => registry.bind(name, caller, provider).inspect_err(|_| {
                    // The registry gave this SIP the name, so the local table cannot hold it: undo and refuse.
                    let _ = abi.release_name(name, SipId(caller));
                }),
            };
            match bound {
                Ok(()) => owes.send_bound().ok(),
                Err((error, provider)) => owes.send_bind_failed(error, provider).ok(),
            }
        }
        server::Ready::Lookup(name, end, owes) => match lookup(abi, registry, name.as_str(), end) {
            Ok(()) => owes.send_found().ok(),
            Err(Refusal::Failed(error)) => owes.send_lookup_failed(error).ok(),
            Err(Refusal::Moved(core, end)) => owes.send_moved(core, end).ok(),
        },
        server::Ready::Unbind(name, owes) => match abi.release_name(name.as_str(), SipId(caller)) {
            Ok(()) => {
                registry.remove(name.as_str());
                owes.send_unbound().ok()
            }
            Err(error) => owes.send_unbind_failed(name_error(error)).ok(),
        },
        server::Ready::List(owes) => owes.send_names(ExString::from(listing(abi).as_str())).ok(),
        server::Ready::Quit(done) => {
            done.close();
            None
        }
    }
}

/// Why a lookup was not connected here.
enum Refusal {
    Failed(NameError),
    /// Bound on that core: the end goes back to the client, who asks there.
    Moved(u32, ExAny),
}

/// Connects `end` to the provider of `name`, if it is bound on this core.
fn lookup(abi: &dyn KernelAbi, registry: &mut Registry<Provider>, name: &str, end: ExAny) -> Result<(), Refusal> {
    let Some(bound) = abi.resolve_name(name) else { return Err(Refusal::Failed(NameError::NotFound)) };
    if bound.core != abi.current_core() {
        return Err(Refusal::Moved(bound.core, end));
    }
    connect(registry, name, end).map_err(Refusal::Failed)
}

/// This core's replica of the registry, one line per name: `NAME sip#ID CONTRACT cpu#CORE`.
fn listing(abi: &dyn KernelAbi) -> String {
    let mut text = String::new();
    let mut after: Option<String> = None;
    while let Some(info) = abi.name_after(after.as_deref()) {
        let _ = writeln!(text, "{} sip#{} {} cpu#{}", info.name(), info.sip.0, info.contract(), info.core);
        after = Some(String::from(info.name()));
    }
    text
}

/// Hands `end` to the provider of `name` and waits for its answer. A provider found gone is unbound.
fn connect(registry: &mut Registry<Provider>, name: &str, end: ExAny) -> Result<(), NameError> {
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
