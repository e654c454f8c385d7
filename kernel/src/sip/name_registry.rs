//! The replicated name registry: every core holds a replica of which name is bound to which SIP (on which core,
//! serving which contract), changed only by messages. Lookups read the local replica.
//!
//! Agreement: every name has one deciding core, its *arbiter* (a hash of the name over the running cores).
//! A claim goes to the arbiter (also when the claimer's core is the arbiter), which checks its own replica: if the
//! name is free it applies the binding, sends it to every other core, then answers the claimer; otherwise it
//! refuses. Only the arbiter's monitor thread decides, one request at a time, so of two concurrent claims of a name exactly one wins, and every core
//! applies the same winner: all updates about a name come from its arbiter, through ordered lanes. The claimer
//! hears the answer after the update, in the same lane, so its own replica already shows the binding.
//! Removal (an unbind, or the end of the binding SIP) goes the same way.
//!
//! Not here: the providers' endpoints (the `names` SIP of each core keeps those of its own SIPs) and the
//! contract the SIPs speak (`NameService`).
//!
//! Invariants: a replica changes only by an arbiter's update; `version` and `digest` are `ReplicatedMap`'s.

use super::remote::{self, Request};
use super::replicated_map::{ReplicatedMap, fnv1a};
use crate::ipc::intercore::{self, ReplyCell};
use crate::percpu::{self, MAX_CPUS};
use crate::sync::IrqMutex;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use sip_runtime::{NameInfo, NameRegistryError, SipId};

/// One binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The SIP that bound the name.
    pub sip: u64,
    /// Its core.
    pub core: u32,
    /// The contract it serves.
    pub contract: String,
}

/// A change, made by a name's arbiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// `name` is bound.
    Bound { name: String, binding: Binding },
    /// `name` is free again.
    Unbound { name: String },
}

/// A request to a name's arbiter.
pub enum Change {
    /// Bind `name` if it is free.
    Claim { name: String, binding: Binding, reply: Arc<ReplyCell<Result<(), NameRegistryError>>> },
    /// Free `name` if SIP `sip` holds it; `reply` is `None` when nobody waits (a dead SIP's names).
    Release { name: String, sip: u64, reply: Option<Arc<ReplyCell<Result<(), NameRegistryError>>>> },
}

type Replica = ReplicatedMap<String, Binding>;

fn apply_to(replica: &mut Replica, update: Update) {
    match update {
        Update::Bound { name, binding } => replica.insert(name, binding),
        Update::Unbound { name } => replica.remove(&name),
    }
}

/// The entry hash of the digest: the name, the SIP, the core and the contract.
#[allow(clippy::ptr_arg, reason = "the entry-hash signature `fn(&K, &V)` of a map keyed by `String`")]
fn hash(name: &String, binding: &Binding) -> u64 {
    fnv1a(
        name.bytes()
            .chain([0])
            .chain(binding.sip.to_le_bytes())
            .chain(binding.core.to_le_bytes())
            .chain(binding.contract.bytes()),
    )
}

static REPLICAS: [IrqMutex<Replica>; MAX_CPUS] = [const { IrqMutex::new(Replica::new(hash)) }; MAX_CPUS];

fn mine() -> &'static IrqMutex<Replica> {
    &REPLICAS[percpu::current_index() as usize]
}

/// The core that decides about `name`: a hash of it over the cores that run (fixed after boot).
fn arbiter(name: &str) -> u32 {
    let running = crate::cores::online_cores().count().max(1) as u64;
    let h = name.bytes().fold(5381u64, |h, b| h.wrapping_mul(33) ^ u64::from(b));
    crate::cores::online_cores().nth((h % running) as usize).unwrap_or(0)
}

fn info(name: &str, binding: &Binding) -> Option<NameInfo> {
    NameInfo::new(name, &binding.contract, SipId(binding.sip), binding.core)
}

/// Binds `name` to SIP `sip` of this core, agreed with every core. Blocks until the arbiter answers.
pub fn claim(name: &str, sip: u64, contract: &str) -> Result<(), NameRegistryError> {
    if !contracts::is_valid_name(name) || contract.len() > 32 {
        return Err(NameRegistryError::Invalid);
    }
    let binding = Binding { sip, core: percpu::current_index(), contract: String::from(contract) };
    let name = String::from(name);
    ask(arbiter(&name), |reply| Change::Claim { name, binding, reply })
}

/// Frees `name`, bound to SIP `sip`. Blocks until the arbiter answers.
pub fn release(name: &str, sip: u64) -> Result<(), NameRegistryError> {
    let name = String::from(name);
    ask(arbiter(&name), |reply| Change::Release { name, sip, reply: Some(reply) })
}

/// Frees every name SIP `id` (of this core, just ended) held, without waiting.
pub fn release_all_of(id: u64) {
    release_where(|b| b.sip == id);
}

/// Frees every name bound by a SIP of this core, without waiting: its name service ended, and with it the
/// provider endpoints (the SIPs bind again through the next one; the releases reach each arbiter before their
/// new claims, which travel the same lanes later).
pub fn release_all_of_this_core() {
    let me = percpu::current_index();
    release_where(|b| b.core == me);
}

fn release_where(held: impl Fn(&Binding) -> bool) {
    let names: Vec<(String, u64)> =
        mine().lock().entries().iter().filter(|(_, b)| held(b)).map(|(name, b)| (name.clone(), b.sip)).collect();
    for (name, sip) in names {
        let to = arbiter(&name);
        remote::send(to, Request::Names(Change::Release { name, sip, reply: None }));
    }
}

/// Sends `change` to the arbiter `to` (possibly this core: its monitor decides all the same) and waits for the
/// answer.
fn ask(
    to: u32,
    make: impl FnOnce(Arc<ReplyCell<Result<(), NameRegistryError>>>) -> Change,
) -> Result<(), NameRegistryError> {
    intercore::call(to, |reply| Request::Names(make(reply))).unwrap_or(Err(NameRegistryError::Unavailable))
}

/// The arbiter's work, on its monitor thread only (so one core decides one change at a time): decide, apply
/// here, send the update to every other core, then answer.
pub fn decide(change: Change) {
    let (update, answer, reply) = match change {
        Change::Claim { name, binding, reply } => {
            if mine().lock().entries().contains_key(&name) {
                (None, Err(NameRegistryError::AlreadyBound), Some(reply))
            } else {
                (Some(Update::Bound { name, binding }), Ok(()), Some(reply))
            }
        }
        Change::Release { name, sip, reply } => match mine().lock().entries().get(&name) {
            None => (None, Err(NameRegistryError::NotFound), reply),
            Some(b) if b.sip != sip => (None, Err(NameRegistryError::NotOwner), reply),
            Some(_) => (Some(Update::Unbound { name }), Ok(()), reply),
        },
    };
    if let Some(update) = update {
        apply_to(&mut mine().lock(), update.clone());
        intercore::multicast(update);
    }
    if let Some(reply) = reply {
        reply.answer(answer);
    }
}

/// Applies an update an arbiter sent.
pub fn apply(update: Update) {
    apply_to(&mut mine().lock(), update);
}

impl intercore::Multicast for Update {
    fn deliver(self) {
        apply(self);
    }
}

/// `name` in this core's replica.
pub fn resolve(name: &str) -> Option<NameInfo> {
    let replica = mine().lock();
    replica.entries().get(name).and_then(|b| info(name, b))
}

/// The binding after `after` in name order, in this core's replica.
pub fn after(after: Option<&str>) -> Option<NameInfo> {
    use core::ops::Bound::{Excluded, Unbounded};
    let replica = mine().lock();
    let start = after.map_or(Unbounded, Excluded);
    let mut range = replica.entries().range::<str, _>((start, Unbounded));
    range.next().and_then(|(name, b)| info(name, b))
}

/// Core `index`'s replica: (version, digest, names), for `replicas`.
pub fn summary(index: u32) -> Option<(u64, u64, usize)> {
    let replica = REPLICAS.get(index as usize)?.lock();
    Some((replica.version(), replica.digest(), replica.entries().len()))
}
