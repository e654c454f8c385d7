//! SIP operations that cross cores: the asking side (spawn on, kill, wait for and describe a SIP of another
//! core) and the answering side, run by the receiving core's monitor thread (`handle`).
//!
//! Each operation is a request over `ipc::intercore` answered into a slot the asking thread parks on. The
//! answering core does the work with its own, local operations (`sip::spawn_with`, `sip::kill`, ...), exactly
//! as if a thread of its own had asked: no core touches another core's process table or scheduler.
//!
//! Invariants: a monitor never blocks (a remote kill only starts the end, a remote wait is a waiter entry
//! answered when the SIP ends); a startup endpoint in flight belongs to the kernel (`Owner::KERNEL`), never to
//! the asking SIP, so the asker's death cannot reclaim it under the request.

use crate::ipc::intercore::{self, Request, Slot};
use alloc::string::String;
use alloc::sync::Arc;
use sip_runtime::{KillError, ProcessInfo, SipId, SpawnError, Startup};

/// The outcome of a spawn: the new id, or the error with the startup value back.
pub type SpawnResult = Result<SipId, (SpawnError, Option<Startup>)>;

/// "Start this service here."
pub struct SpawnRequest {
    name: String,
    args: String,
    restarts: u32,
    startup: Option<Startup>,
    reply: Arc<Slot<SpawnResult>>,
}

/// Starts `name` on core `core` (not this one, and online) and waits for the answer; `startup` is held by
/// `holder` until then, and again if the spawn fails.
pub fn spawn(
    core: u32,
    name: &str,
    args: &str,
    restarts: u32,
    startup: Option<Startup>,
    holder: channels::Owner,
) -> SpawnResult {
    if let Some(value) = &startup {
        super::give_startup(value, holder, channels::Owner::KERNEL);
    }
    let (name, args) = (String::from(name), String::from(args));
    let result = intercore::call(core, |reply| Request::Spawn(SpawnRequest { name, args, restarts, startup, reply }));
    match result {
        Ok(Ok(id)) => Ok(id),
        Ok(Err((error, startup))) => {
            if let Some(value) = &startup {
                super::give_startup(value, channels::Owner::KERNEL, holder);
            }
            Err((error, startup))
        }
        // `call` checked the core before building the request; the caller checked it too.
        Err(intercore::CallError::NotOnline) => Err((SpawnError::NoSuchCore, None)),
    }
}

/// Starts ending SIP `id`, which runs on core `core` (wait for its end with [`wait`]).
pub fn kill(core: u32, id: u64) -> Result<(), KillError> {
    intercore::call(core, |reply| Request::Kill { id, reply }).unwrap_or(Err(KillError::NoSuchProcess))
}

/// Waits until SIP `id`, which runs on core `core`, has ended.
pub fn wait(core: u32, id: u64) {
    let _ = intercore::call(core, |reply| Request::Watch { id, reply });
}

/// Describes SIP `id`, which runs on core `core`.
pub fn query(core: u32, id: u64) -> Option<ProcessInfo> {
    intercore::call(core, |reply| Request::Query { id, reply }).ok().flatten()
}

/// Answers one request sent to this core (the monitor thread's work).
pub fn handle(request: Request) {
    match request {
        Request::Spawn(r) => {
            let result = super::spawn_here(&r.name, &r.args, r.restarts, r.startup, channels::Owner::KERNEL);
            r.reply.answer(result);
        }
        // Only starts the end (threads busy in kernel code finish first): the asker waits with `Watch`.
        Request::Kill { id, reply } => reply.answer(super::kill_here(id)),
        Request::Watch { id, reply } => super::watch(id, super::Waiter::Reply(reply)),
        Request::Query { id, reply } => reply.answer(super::info_here(id)),
        Request::Replica(update) => super::replica::apply(update),
        Request::Names(change) => super::name_registry::decide(change),
        Request::NameUpdate(update) => super::name_registry::apply(update),
        Request::NameConnection { sip, end, reply } => reply.answer(super::names::accept_connection(sip, end)),
        Request::StartServices => super::names::start(),
        Request::Probe(reply) => reply.answer(()),
        Request::Reply(delivery) => delivery.deliver(),
    }
}
