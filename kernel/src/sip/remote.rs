//! SIP operations that cross cores: the asking side (spawn on, kill, wait for and describe a SIP of another
//! core) and the answering side, run by the receiving core's monitor thread (`handle`).
//!
//! Each operation is a [`Request`] over `ipc::intercore` (which carries it without knowing what it is) answered
//! into a reply cell the asking thread parks on. The answering core does the work with its own, local
//! operations (`sip::spawn_with`, `sip::kill`, ...), exactly as if a thread of its own had asked: no core
//! touches another core's process table or scheduler. The replicas' updates and the name registry's changes
//! travel as requests of this set too.
//!
//! Invariants: a monitor never blocks (a remote kill only starts the end, a remote wait is a waiter entry
//! answered when the SIP ends); a startup endpoint in flight belongs to the kernel (`Owner::KERNEL`), never to
//! the asking SIP, so the asker's death cannot reclaim it under the request.

use crate::ipc::intercore::{self, ReplyCell};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use sip_runtime::{KillError, ProcessInfo, Protection, SipId, SpawnError, Startup};

/// A request from the SIP layer of one core to that of another.
pub enum Request {
    /// Start a SIP on the receiving core and answer with its id (or the error, and the startup value back).
    Spawn(SpawnRequest),
    /// Start a ring-3 SIP (a program or service of the ring-3 image) on the receiving core.
    /// End SIP `id`, which runs on the receiving core.
    Kill { id: u64, reply: Arc<ReplyCell<Result<(), KillError>>> },
    /// Answer when SIP `id` (on the receiving core) has ended.
    Watch { id: u64, reply: Arc<ReplyCell<()>> },
    /// Answer whether SIP `id` (on the receiving core) has ended; if not, wake the task with `token` when it does.
    WakeTaskOnEnd { id: u64, token: u64, reply: Arc<ReplyCell<bool>> },
    /// Describe SIP `id` (for `ps`).
    Query { id: u64, reply: Arc<ReplyCell<Option<ProcessInfo>>> },
    /// A claim or release for the receiving core to decide, as the arbiter of that name.
    Names(super::name_registry::Change),
    /// Every core is up: start the receiving core's system services (its name service).
    StartServices,
    /// A connection to the receiving core's name service, for SIP `sip` of another core; answered with whether
    /// it was queued (a SIP has at most one such request in flight per thread: the asking thread waits).
    NameConnection { sip: u64, end: super::names::Connection, reply: Arc<ReplyCell<bool>> },
}

impl intercore::Request for Request {
    fn handle(self: Box<Self>) {
        handle(*self);
    }
}

/// Sends `request` to core `to` (in order after everything this core sent it before); never waits.
pub fn send(to: u32, request: Request) {
    intercore::send(to, Box::new(request));
}

/// Asks every other running core to start its system services (its name service), once all cores are up:
/// started earlier, a core's first SIPs would be announced to a process table that later cores never saw.
pub fn start_services_on_other_cores() {
    let me = crate::percpu::current_index();
    for core in crate::cores::online_cores().filter(|c| *c != me) {
        send(core, Request::StartServices);
    }
}

/// The outcome of a spawn: the new id, or the error with the startup value back.
pub type SpawnResult = Result<SipId, (SpawnError, Option<Startup>)>;

/// "Start this service here."
pub struct SpawnRequest {
    name: String,
    args: String,
    restarts: u32,
    startup: Option<Startup>,
    protection: Protection,
    reply: Arc<ReplyCell<SpawnResult>>,
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
    protection: Protection,
) -> SpawnResult {
    if let Some(value) = &startup {
        super::give_startup(value, holder, channels::Owner::KERNEL);
    }
    let (name, args) = (String::from(name), String::from(args));
    let result = intercore::call(core, |reply| {
        Request::Spawn(SpawnRequest { name, args, restarts, startup, protection, reply })
    });
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

/// [`super::wake_task_on_end`] for SIP `id`, which runs on core `core`; a core that does not answer counts as
/// the SIP's end (as a failed `wait` returns).
pub fn wake_task_on_end(core: u32, id: u64, token: u64) -> bool {
    intercore::call(core, |reply| Request::WakeTaskOnEnd { id, token, reply }).unwrap_or(true)
}

/// Describes SIP `id`, which runs on core `core`.
pub fn query(core: u32, id: u64) -> Option<ProcessInfo> {
    intercore::call(core, |reply| Request::Query { id, reply }).ok().flatten()
}

/// Answers one request sent to this core (on its monitor thread).
fn handle(request: Request) {
    match request {
        Request::Spawn(r) => {
            let result = if r.protection.is_ring3() {
                super::ring3::spawn_named(
                    &r.name,
                    &r.args,
                    r.protection,
                    r.startup,
                    channels::Owner::KERNEL,
                    r.restarts,
                )
            } else {
                super::spawn_here(&r.name, &r.args, r.restarts, r.startup, channels::Owner::KERNEL)
            };
            r.reply.answer(result);
        }
        // Only starts the end (threads busy in kernel code finish first): the asker waits with `Watch`.
        Request::Kill { id, reply } => reply.answer(super::kill_here(id)),
        Request::Watch { id, reply } => super::watch(id, super::Waiter::Reply(reply)),
        Request::WakeTaskOnEnd { id, token, reply } => reply.answer(super::wake_task_on_end_here(id, token)),
        Request::Query { id, reply } => reply.answer(super::info_here(id)),
        Request::Names(change) => super::name_registry::decide(change),
        Request::NameConnection { sip, end, reply } => reply.answer(super::names::accept_connection(sip, end)),
        Request::StartServices => super::names::start(),
    }
}
