//! The replicated process table: every core holds a replica of which SIP runs on which core, changed only by
//! messages, so "where is SIP n?" (kill, wait, ps, least-loaded placement) is answered locally.
//!
//! The core that runs a SIP is the only one that creates updates about it: `Added` when it starts, `Removed`
//! when it ends. It applies them to its own replica first, then sends them to every other core, through the
//! ordered lanes of `ipc::intercore`. Agreement needs nothing more: updates about one SIP come from one core in
//! order, updates about different SIPs commute, so once the lanes are drained every replica holds the same set
//! (equal `version` and `digest`). Reads may lag by the messages still in flight; a caller that needs the
//! truth about a SIP asks its core.
//!
//! Not here: the per-core table of the SIPs a core runs (`sip::Table`, the owner's full record).
//!
//! Invariants: those of `ReplicatedMap` (version counts real changes, digest is order-independent).

use super::replicated_map::{ReplicatedMap, fnv1a};
use crate::percpu::{self, MAX_CPUS};
use crate::sync::IrqMutex;

/// One entry: a live SIP and its core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The core it runs on.
    pub core: u32,
    /// Its service name.
    pub name: &'static str,
}

/// A change, made by the core that runs the SIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// SIP `id` started on `entry.core`.
    Added { id: u64, entry: Entry },
    /// SIP `id` ended.
    Removed { id: u64 },
}

/// One core's replica.
type Replica = ReplicatedMap<u64, Entry>;

/// What `replicas` shows of one core's replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Updates applied.
    pub version: u64,
    /// XOR of the entries' hashes.
    pub digest: u64,
    /// Live SIPs it knows.
    pub entries: usize,
}

fn apply_to(replica: &mut Replica, update: Update) {
    match update {
        Update::Added { id, entry } => replica.insert(id, entry),
        Update::Removed { id } => replica.remove(&id),
    }
}

/// The entry hash of the digest: the id, the core and the name.
fn hash(id: &u64, entry: &Entry) -> u64 {
    fnv1a(id.to_le_bytes().into_iter().chain(entry.core.to_le_bytes()).chain(entry.name.bytes()))
}

static REPLICAS: [IrqMutex<Replica>; MAX_CPUS] = [const { IrqMutex::new(Replica::new(hash)) }; MAX_CPUS];

fn mine() -> &'static IrqMutex<Replica> {
    &REPLICAS[percpu::current_index() as usize]
}

/// Applies `update` here and sends it to every other running core. Called by the core that runs the SIP.
pub fn publish(update: Update) {
    apply_to(&mut mine().lock(), update);
    let me = percpu::current_index();
    for core in crate::cores::online_cores().filter(|c| *c != me) {
        super::remote::send(core, super::remote::Request::Replica(update));
    }
}

/// Applies an update another core sent.
pub fn apply(update: Update) {
    apply_to(&mut mine().lock(), update);
}

/// Where SIP `id` runs, as this core's replica knows it.
pub fn core_of(id: u64) -> Option<u32> {
    mine().lock().entries().get(&id).map(|e| e.core)
}

/// The live SIP with the smallest id above `after`, as this core's replica knows it.
pub fn next_after(after: Option<u64>) -> Option<(u64, Entry)> {
    let start = after.map_or(0, |a| a + 1);
    mine().lock().entries().range(start..).next().map(|(id, e)| (*id, *e))
}

/// How many SIPs each core runs, as this core's replica knows it (indexed by core).
pub fn load_by_core(cores: usize) -> alloc::vec::Vec<usize> {
    let mut load = alloc::vec![0; cores];
    for entry in mine().lock().entries().values() {
        if let Some(slot) = load.get_mut(entry.core as usize) {
            *slot += 1;
        }
    }
    load
}

/// Core `index`'s replica, for `replicas` (a diagnostic read of another core's state, under its lock).
pub fn summary(index: u32) -> Option<Summary> {
    let replica = REPLICAS.get(index as usize)?.lock();
    Some(Summary { version: replica.version(), digest: replica.digest(), entries: replica.entries().len() })
}

crate::selftest! {
    /// Replicas built from the same updates in different orders agree; repeats and unknown removals change
    /// nothing.
    fn replicas_agree_whatever_the_order() {
        let a = Entry { core: 0, name: "echo" };
        let b = Entry { core: 1, name: "kv" };
        let updates = [
            Update::Added { id: 7, entry: a },
            Update::Added { id: 9, entry: b },
            Update::Removed { id: 7 },
        ];
        let mut forward = Replica::new(hash);
        updates.iter().for_each(|u| apply_to(&mut forward, *u));
        let mut other = Replica::new(hash);
        let repeated = [updates[1], updates[0], updates[0], updates[2], Update::Removed { id: 42 }];
        repeated.iter().for_each(|u| apply_to(&mut other, *u));
        let (fd, od) = (forward.digest(), other.digest());
        crate::check!(fd == od, "digests differ: {fd:#x} vs {od:#x}");
        let (fv, ov) = (forward.version(), other.version());
        crate::check!(fv == 3 && ov == 3, "versions {fv} and {ov}");
        crate::check!(forward.entries().get(&9) == Some(&b) && forward.entries().len() == 1, "wrong entries");
        Ok(())
    }
}
