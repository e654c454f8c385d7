//! The kernel's side of the name service: on every core it starts a `names` SIP (and starts it again when it
//! ends) and hands it every new connection a SIP asks for, tagged with the asking SIP's id. A SIP connects to
//! its own core's name service; a connection to another core's (a lookup that was answered `Moved`) travels to
//! that core as a message (`ipc::intercore::Request::NameConnection`) and is queued there.
//!
//! Why a broker: a SIP reaches the name service through the ABI call `connect_names`, which must not block (a
//! SIP blocked inside a kernel call could not be killed cleanly) and must not make the kernel wait on a SIP. So
//! the call only creates the channel, queues its server end here and returns the client end; this module's
//! kernel thread feeds the queue to the `names` SIP over the `NameListener` contract, one acknowledged
//! connection at a time. A client whose connection is still queued simply waits in its first receive.
//!
//! Not here: the registry (the `names` SIP) and the SIP-side calls (`sip_runtime::SipContext::bind` etc.).
//!
//! Invariants: a queued server end is owned by the kernel (`Owner::KERNEL`), never by the asking SIP, so a SIP
//! that dies while its connection waits cannot have that end reclaimed under the queue; the queue is bounded
//! ([`MAX_QUEUED`]); when the `names` SIP is gone, queued connections are dropped (their clients see `Closed`,
//! which `sip_runtime` reports as `NameError::Unavailable`), never left waiting.

use crate::percpu::MAX_CPUS;
use crate::sched::{self, Owner, ThreadId};
use crate::sync::IrqMutex;
use alloc::collections::VecDeque;
use channels::{Closed, Exchangeable};
use contracts::{name_listener, name_service};
use core::sync::atomic::{AtomicU64, Ordering};
use sip_runtime::{NameServiceClient, Startup};

/// Connections waiting for the `names` SIP beyond this many are refused (`Unavailable`).
const MAX_QUEUED: usize = 256;

/// The most restarts in a row of a `names` SIP that ends within a second of starting.
const MAX_QUICK_RESTARTS: u32 = 5;

/// The server end of a name-service connection.
pub type Connection = name_service::Server<name_service::state::Ready>;

/// One core's broker: connections not yet handed to its `names` SIP (asking SIP, server end), and the broker
/// thread's id (0 until it runs, or after it gave up), woken when the queue grows.
struct Broker {
    queue: IrqMutex<VecDeque<(u64, Connection)>>,
    thread: AtomicU64,
}

static BROKERS: [Broker; MAX_CPUS] =
    [const { Broker { queue: IrqMutex::new(VecDeque::new()), thread: AtomicU64::new(0) } }; MAX_CPUS];

fn mine() -> &'static Broker {
    &BROKERS[crate::percpu::current_index() as usize]
}

/// Starts this core's broker thread, which starts this core's `names` SIP.
pub fn start() {
    match sched::spawn(Owner::Kernel, 16 * 1024, run) {
        Ok(id) => mine().thread.store(id.0, Ordering::Release),
        Err(e) => log::warn!("name service: cannot start its broker thread ({e:?}); names are unavailable here"),
    }
}

/// A new connection for SIP `sip` (of this core) to the name service of `core` (default: this one); `None` if
/// that name service is not running or overloaded.
pub fn connect(sip: u64, core: Option<u32>) -> Option<NameServiceClient> {
    let me = crate::percpu::current_index();
    let core = core.unwrap_or(me);
    if !crate::smp::is_online(core) {
        return None;
    }
    let (client, server) = name_service::channel();
    // The calling SIP owns both ends so far; the queued end must be the kernel's (module invariant).
    server.__transfer(channels::platform::current().heap, channels::Owner::KERNEL);
    if core == me {
        accept_connection(sip, server);
    } else {
        // Dropped there if that core's name service is down or overloaded: the client then sees `Closed`.
        crate::ipc::intercore::send(core, crate::ipc::intercore::Request::NameConnection { sip, end: server });
    }
    // A refused connection was dropped: its client end reports `Closed`, which callers treat as unavailable.
    (!client.is_peer_closed()).then_some(client)
}

/// Queues a connection for this core's `names` SIP (dropping it if the name service is down or overloaded).
pub fn accept_connection(sip: u64, end: Connection) {
    let broker = mine();
    let thread = broker.thread.load(Ordering::Acquire);
    {
        let mut queue = broker.queue.lock();
        if thread == 0 || queue.len() >= MAX_QUEUED {
            drop(queue);
            drop(end);
            return;
        }
        queue.push_back((sip, end));
    }
    sched::wake(ThreadId(thread));
}

/// The broker: start `names`, feed it connections until it ends, start it again.
fn run() {
    let mut quick_restarts = 0;
    loop {
        let started = crate::time::uptime_nanos();
        match start_names() {
            Ok((id, listener)) => {
                // Its end wakes us, so a dead name service is replaced at once, not at the next connection.
                super::notify_on_end(id, sched::current_id().unwrap_or(ThreadId(0)));
                feed(listener);
                super::wait(id);
                log::warn!("the name service (sip {id}) ended; starting a new one");
                // Its provider endpoints died with it: the names they served are free again.
                super::name_registry::release_all_of_this_core();
            }
            Err(e) => log::warn!("cannot start the name service: {e}"),
        }
        // Whatever was queued for the old instance can never be served by it.
        mine().queue.lock().clear();
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

fn start_names() -> Result<(u64, name_listener::Client<name_listener::state::Ready>), sip_runtime::SpawnError> {
    let (client, server) = name_listener::channel();
    let startup = Startup::new(server).map_err(|_| sip_runtime::SpawnError::OutOfMemory)?;
    let here = Some(crate::percpu::current_index());
    let id = super::spawn_with("names", "", here, Some(startup)).map_err(|(e, _)| e)?;
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
