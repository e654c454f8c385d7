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

/// Applies `update` here and sends it to every other running core (`intercore::multicast`: down a tree, or one
/// by one). Called by the core that runs the SIP.
pub fn publish(update: Update) {
    apply_to(&mut mine().lock(), update);
    crate::ipc::intercore::multicast(update);
}

impl crate::ipc::intercore::Multicast for Update {
    fn deliver(self) {
        apply(self);
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

crate::selftest! {
    /// Both multicast schemes (`intercore::Scheme`) bring every core's replicas to the same state: under each,
    /// SIPs started on other cores (up to 16, spread over the machine; each binds a name, so the name registry's
    /// updates travel too) and
    /// then killed leave every core's process table and name registry equal to every other's (digest and
    /// version), holding exactly the SIPs and names that run. On one core there is nothing to compare.
    fn multicast_schemes_reach_the_same_replicas() {
        use crate::ipc::intercore::{self, Scheme};
        let me = percpu::current_index();
        // At most 16 of them, spread over the machine (the tree's leaves and inner cores alike): on 255 cores a
        // SIP on each would make the test a minute long under TCG.
        let all: alloc::vec::Vec<u32> = crate::cores::online_cores().filter(|c| *c != me).collect();
        let others: alloc::vec::Vec<u32> = all.iter().step_by(all.len().div_ceil(16).max(1)).copied().collect();
        if others.is_empty() {
            return Ok(());
        }
        let before = intercore::scheme();
        let result = (|| {
            for scheme in [Scheme::OneByOne, Scheme::Tree] {
                intercore::set_scheme(scheme);
                let mut started = alloc::vec::Vec::new();
                for (i, core) in others.iter().enumerate() {
                    let name = alloc::format!("mcast-{}-{i}", scheme as u8);
                    let id = super::spawn_with("echo", &name, Some(*core), None)
                        .map_err(|(e, _)| alloc::format!("spawn on cpu {core} ({scheme:?}): {e}"))?;
                    started.push((id.0, name));
                }
                // Every echo has bound its name (a lookup on this core's replica sees each).
                agree(|| started.iter().all(|(_, name)| super::name_registry::resolve(name).is_some()), scheme)?;
                for (id, _) in &started {
                    super::kill(*id).map_err(|e| alloc::format!("kill {id} ({scheme:?}): {e}"))?;
                }
                agree(|| started.iter().all(|(id, name)| core_of(*id).is_none() && super::name_registry::resolve(name).is_none()), scheme)?;
            }
            Ok::<(), alloc::string::String>(())
        })();
        intercore::set_scheme(before);
        result
    }
}

/// Waits until `done` holds here and every online core's process table and name registry equal this core's
/// (version and digest): up to 5 s, and 200 ms more per core (under TCG, 255 cores share two host cores).
fn agree(done: impl Fn() -> bool, scheme: crate::ipc::intercore::Scheme) -> Result<(), alloc::string::String> {
    let cores = crate::cores::online_cores().count() as u64;
    let deadline = crate::time::uptime_nanos() + 5_000_000_000 + cores * 200_000_000;
    loop {
        let me = percpu::current_index();
        let (mine, names) = (summary(me), super::name_registry::summary(me));
        let equal =
            crate::cores::online_cores().all(|c| summary(c) == mine && super::name_registry::summary(c) == names);
        if done() && equal {
            return Ok(());
        }
        if crate::time::uptime_nanos() > deadline {
            return Err(alloc::format!("replicas did not agree in time ({scheme:?}): done {}, equal {equal}", done()));
        }
        crate::sched::sleep(10_000_000);
    }
}
