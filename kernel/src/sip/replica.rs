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
//! Invariants: `version` counts the updates a replica applied (an update that changes nothing, like a repeat,
//! is not counted); `digest` is the XOR of a hash of every entry, so equal sets have equal digests whatever the
//! order they were built in.

use crate::percpu::{self, MAX_CPUS};
use crate::sync::IrqMutex;
use alloc::collections::BTreeMap;

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
pub struct Replica {
    entries: BTreeMap<u64, Entry>,
    version: u64,
    digest: u64,
}

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

impl Replica {
    const fn new() -> Self {
        Self { entries: BTreeMap::new(), version: 0, digest: 0 }
    }

    fn apply(&mut self, update: Update) {
        match update {
            Update::Added { id, entry } => {
                if self.entries.insert(id, entry).is_none() {
                    self.digest ^= hash(id, entry);
                    self.version += 1;
                }
            }
            Update::Removed { id } => {
                if let Some(entry) = self.entries.remove(&id) {
                    self.digest ^= hash(id, entry);
                    self.version += 1;
                }
            }
        }
    }
}

/// FNV-1a over the id, the core and the name: cheap, and good enough to tell replicas apart.
fn hash(id: u64, entry: Entry) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = id.to_le_bytes().into_iter().chain(entry.core.to_le_bytes()).chain(entry.name.bytes());
    for byte in bytes {
        h = (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

static REPLICAS: [IrqMutex<Replica>; MAX_CPUS] = [const { IrqMutex::new(Replica::new()) }; MAX_CPUS];

fn mine() -> &'static IrqMutex<Replica> {
    &REPLICAS[percpu::current_index() as usize]
}

/// Applies `update` here and sends it to every other running core. Called by the core that runs the SIP.
pub fn publish(update: Update) {
    mine().lock().apply(update);
    let me = percpu::current_index();
    for core in crate::smp::online_cores().filter(|c| *c != me) {
        crate::ipc::intercore::send(core, crate::ipc::intercore::Request::Replica(update));
    }
}

/// Applies an update another core sent.
pub fn apply(update: Update) {
    mine().lock().apply(update);
}

/// Where SIP `id` runs, as this core's replica knows it.
pub fn core_of(id: u64) -> Option<u32> {
    mine().lock().entries.get(&id).map(|e| e.core)
}

/// The live SIP with the smallest id above `after`, as this core's replica knows it.
pub fn next_after(after: Option<u64>) -> Option<(u64, Entry)> {
    let start = after.map_or(0, |a| a + 1);
    mine().lock().entries.range(start..).next().map(|(id, e)| (*id, *e))
}

/// How many SIPs each core runs, as this core's replica knows it (indexed by core).
pub fn load_by_core(cores: usize) -> alloc::vec::Vec<usize> {
    let mut load = alloc::vec![0; cores];
    for entry in mine().lock().entries.values() {
        if let Some(slot) = load.get_mut(entry.core as usize) {
            *slot += 1;
        }
    }
    load
}

/// Core `index`'s replica, for `replicas` (a diagnostic read of another core's state, under its lock).
pub fn summary(index: u32) -> Option<Summary> {
    let replica = REPLICAS.get(index as usize)?.lock();
    Some(Summary { version: replica.version, digest: replica.digest, entries: replica.entries.len() })
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
        let mut forward = Replica::new();
        updates.iter().for_each(|u| forward.apply(*u));
        let mut other = Replica::new();
        [updates[1], updates[0], updates[0], updates[2], Update::Removed { id: 42 }].iter().for_each(|u| other.apply(*u));
        crate::check!(forward.digest == other.digest, "digests differ: {:#x} vs {:#x}", forward.digest, other.digest);
        crate::check!(forward.version == 3 && other.version == 3, "versions {} and {}", forward.version, other.version);
        crate::check!(forward.entries.get(&9) == Some(&b) && forward.entries.len() == 1, "wrong entries");
        Ok(())
    }
}
