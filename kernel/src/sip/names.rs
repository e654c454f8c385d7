//! The kernel's side of the name service: on every core it starts a `names` SIP (and starts it again when it
//! ends) and hands it every new connection a SIP asks for, tagged with the asking SIP's id. A SIP connects to
//! its own core's name service; a connection to another core's (a lookup that was answered `Moved`) travels to
//! that core as a message (`sip::remote::Request::NameConnection`) and is queued there.
//!
//! Why a broker: a SIP reaches the name service through the ABI call `connect_names`, which must not make the
//! kernel wait on a SIP. So the SIP makes the channel itself (charged to it), the call only queues its server
//! end here (the kernel takes the end over from the SIP in the exchange records) and returns; this module's
//! kernel thread feeds the queue to the `names` SIP over the `NameListener` contract, one acknowledged
//! connection at a time. A client whose connection is still queued simply waits in its first receive. A
//! connection to another core's name service is one request there, answered with whether it was queued, so a
//! SIP has at most one in flight per thread.
//!
//! Not here: the registry (the `names` SIP) and the SIP-side calls (`sip_runtime::SipContext::bind` etc.).
//!
//! Invariants: a queued server end is owned by the kernel (`Owner::KERNEL`), never by the asking SIP, so a SIP
//! that dies while its connection waits cannot have that end reclaimed under the queue; the queue is bounded
//! ([`MAX_QUEUED`]); when the `names` SIP is gone, queued connections are dropped (their clients see `Closed`,
//! which `sip_runtime` reports as `NameError::Unavailable`), never left waiting.

use crate::exec::Account;
use crate::percpu::MAX_CPUS;
use crate::sched::{self, ThreadId};
use crate::sync::IrqMutex;
use alloc::collections::VecDeque;
use channels::Closed;
use contracts::{name_listener, name_service};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use sip_runtime::{NameServiceServer, Protection, RestartError, Startup};

/// Connections waiting for the `names` SIP beyond this many are refused (`Unavailable`).
const MAX_QUEUED: usize = 256;

/// The most restarts in a row of a `names` SIP that ends within a second of starting.
const MAX_QUICK_RESTARTS: u32 = 5;

/// The server end of a name-service connection.
pub type Connection = name_service::Server<name_service::state::Ready>;

/// One core's broker: connections not yet handed to its `names` SIP (asking SIP, server end), the broker
/// thread's id (0 until it runs, or after it gave up), woken when the queue grows, and what [`restart`] needs.
struct Broker {
    queue: IrqMutex<VecDeque<(u64, Connection)>>,
    thread: AtomicU64,
    /// The mode its `names` SIP is started in (an index into `Protection::ALL`; `type` until a restart asks
    /// for another).
    protection: AtomicU8,
    /// The running `names` SIP (0: none).
    sip: AtomicU64,
    /// `names` SIPs started so far: a restart waits for this to move.
    starts: AtomicU64,
    /// The running `names` SIP is being ended on purpose (a restart, not a failure).
    restarting: AtomicBool,
}

static BROKERS: [Broker; MAX_CPUS] = [const {
    Broker {
        queue: IrqMutex::new(VecDeque::new()),
        thread: AtomicU64::new(0),
        protection: AtomicU8::new(0),
        sip: AtomicU64::new(0),
        starts: AtomicU64::new(0),
        restarting: AtomicBool::new(false),
    }
}; MAX_CPUS];

/// How long [`restart`] waits for the new `names` SIP.
const RESTART_TIMEOUT_NANOS: u64 = 5_000_000_000;

fn mine() -> &'static Broker {
    &BROKERS[crate::percpu::current_index() as usize]
}

/// Starts this core's broker thread, which starts this core's `names` SIP.
pub fn start() {
    match sched::spawn(Account::Kernel, 16 * 1024, run) {
        Ok(id) => mine().thread.store(id.0, Ordering::Release),
        Err(e) => log::warn!("name service: cannot start its broker thread ({e:?}); names are unavailable here"),
    }
}

/// Hands `server`, the server end of a fresh name-service channel made and held by SIP `sip` (of this core),
/// to the name service of `core` (default: this one). `false` if that name service is not running or is
/// overloaded; the end is then closed (its client sees `Closed`).
pub fn connect(sip: u64, core: Option<u32>, server: NameServiceServer) -> bool {
    let me = crate::percpu::current_index();
    let core = core.unwrap_or(me);
    // The queued end must be the kernel's (module invariant); the SIP holds it until now.
    // SAFETY: the kernel is the trusted base.
    let trusted = unsafe { channels::trusted::Trusted::new() };
    channels::trusted::give(&trusted, &server, channels::Owner::sip(sip), channels::Owner::KERNEL);
    if core == me {
        return accept_connection(sip, server);
    }
    if !crate::cores::is_online(core) {
        return false;
    }
    let asked =
        crate::ipc::intercore::call(core, |reply| super::remote::Request::NameConnection { sip, end: server, reply });
    asked.unwrap_or(false)
}

/// Queues a connection for this core's `names` SIP; `false` (and the end dropped) if the name service is down
/// or overloaded.
pub fn accept_connection(sip: u64, end: Connection) -> bool {
    let broker = mine();
    let thread = broker.thread.load(Ordering::Acquire);
    {
        let mut queue = broker.queue.lock();
        if thread == 0 || queue.len() >= MAX_QUEUED {
            drop(queue);
            drop(end);
            return false;
        }
        queue.push_back((sip, end));
    }
    sched::wake(ThreadId(thread));
    true
}

/// Ends this core's name service and starts it again in `protection`; answers the mode the new one runs in
/// (`type` if it could not start in `protection`: the broker logs why) once it runs.
pub fn restart(protection: Protection) -> Result<Protection, RestartError> {
    let broker = mine();
    if broker.thread.load(Ordering::Acquire) == 0 {
        return Err(RestartError::Unavailable);
    }
    let before = broker.starts.load(Ordering::Acquire);
    broker.protection.store(protection as u8, Ordering::Release);
    broker.restarting.store(true, Ordering::Release);
    match broker.sip.load(Ordering::Acquire) {
        0 => {}
        // Already gone if it ended meanwhile: the broker starts the next one in `protection` all the same.
        sip => {
            let _ = super::kill(sip);
        }
    }
    let deadline = crate::time::uptime_nanos() + RESTART_TIMEOUT_NANOS;
    while broker.starts.load(Ordering::Acquire) == before {
        if crate::time::uptime_nanos() > deadline || broker.thread.load(Ordering::Acquire) == 0 {
            return Err(RestartError::Unavailable);
        }
        sched::sleep(10_000_000);
    }
    Ok(mode_of(broker))
}

/// The mode `broker` starts its `names` SIP in.
fn mode_of(broker: &Broker) -> Protection {
    Protection::ALL.get(usize::from(broker.protection.load(Ordering::Acquire))).copied().unwrap_or_default()
}

/// The broker: start `names`, feed it connections until it ends, start it again.
fn run() {
    let mut quick_restarts = 0;
    loop {
        let started = crate::time::uptime_nanos();
        let mut asked = false;
        match start_names() {
            Ok((id, listener)) => {
                // Its end wakes us, so a dead name service is replaced at once, not at the next connection.
                super::notify_on_end(id, sched::current_id().unwrap_or(ThreadId(0)));
                mine().sip.store(id, Ordering::Release);
                mine().starts.fetch_add(1, Ordering::AcqRel);
                feed(listener);
                super::wait(id);
                mine().sip.store(0, Ordering::Release);
                asked = mine().restarting.swap(false, Ordering::AcqRel);
                if asked {
                    log::info!("the name service (sip {id}) ended; starting it in {}", mode_of(mine()));
                } else {
                    log::warn!("the name service (sip {id}) ended; starting a new one");
                }
                // Its provider endpoints died with it: the names they served are free again.
                super::name_registry::release_all_of_this_core();
            }
            Err(e) => log::warn!("cannot start the name service: {e}"),
        }
        // Whatever was queued for the old instance can never be served by it.
        mine().queue.lock().clear();
        if asked {
            // An end asked for by `restart` is no failure.
            quick_restarts = 0;
            continue;
        }
        if crate::time::uptime_nanos() - started < 1_000_000_000 {
            quick_restarts += 1;
            if quick_restarts > MAX_QUICK_RESTARTS {
                log::warn!("the name service keeps failing; names are unavailable on this core");
                mine().thread.store(0, Ordering::Release);
                mine().queue.lock().clear();
                return;
            }
            sched::sleep(1_000_000_000);
        } else {
            quick_restarts = 0;
        }
    }
}

/// Starts this core's `names` SIP in the broker's mode, or in `type` if that mode cannot start it (logged;
/// the mode is then `type` until the next restart).
fn start_names() -> Result<(u64, name_listener::Client<name_listener::state::Ready>), sip_runtime::SpawnError> {
    let here = Some(crate::percpu::current_index());
    let protection = mode_of(mine());
    let (client, server) = name_listener::channel();
    let startup = Startup::new(server).map_err(|_| sip_runtime::SpawnError::OutOfMemory)?;
    let startup = match super::spawn_protected("names", "", here, protection, Some(startup)) {
        Ok(id) => return Ok((id.0, client)),
        Err((e, startup)) if protection != Protection::Type => {
            log::warn!("cannot start the name service in {protection}: {e}; starting it in type");
            mine().protection.store(Protection::Type as u8, Ordering::Release);
            startup
        }
        Err((e, _)) => return Err(e),
    };
    let id = super::spawn_protected("names", "", here, Protection::Type, startup).map_err(|(e, _)| e)?;
    Ok((id.0, client))
}

/// Hands queued connections to the `names` SIP, one acknowledged `Connect` at a time, until it is gone.
fn feed(mut listener: name_listener::Client<name_listener::state::Ready>) {
    loop {
        if listener.is_peer_closed() {
            return;
        }
        let Some((sip, server)) = next_queued() else { continue };
        let Ok(owed) = listener.send_connect(sip, server) else { return };
        match owed.recv() {
            Ok(name_listener::client::Connecting::Accepted(next)) => listener = next,
            Err(Closed) => return,
        }
    }
}

/// The next queued connection, or `None` after parking until something happened (a connection was queued or
/// the name service ended; a wake that comes first is not lost: see `sched::block_current`).
fn next_queued() -> Option<(u64, Connection)> {
    let next = mine().queue.lock().pop_front();
    if next.is_none() {
        sched::block_current();
    }
    next
}
