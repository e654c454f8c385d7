//! The ownership ledger: who holds every exchange-heap block and every channel side, and who pays for them.
//!
//! Bookkeeping only: the ledger never touches the memory it describes. A platform (the kernel's exchange heap,
//! the host's tracking exchange) keeps one behind its lock, asks it before every ownership change, and does the
//! memory work it hands back in a [`Release`]: closing channel sides whose peers live on (before anything is
//! freed), then freeing blocks. Because freeing a dead owner's things works from these records alone, no code
//! of any process (a `Drop`, a function pointer stored in shared memory) ever runs to clean up after it.
//!
//! Every exchange operation therefore takes that lock: allocating and freeing a block, making a channel and dropping
//! an endpoint, and sending and receiving a message that holds blocks or endpoints (the kernel keeps one ledger,
//! behind one lock, for all cores). A message of plain data has no records to change and takes no lock that
//! other channels share: only waking a parked receiver goes through the platform (in the kernel, to the
//! scheduler of the receiver's core).
//!
//! Not here: memory (the platform's allocator), and the rings' flags (closing them is `trusted::close_side`).
//!
//! Invariants:
//! - every live block has one entry: a plain block has exactly one holder (an owner, the ring it travels in,
//!   or the capsule it is sealed in); a channel block has no holder but two sides, each held by one holder
//!   until released;
//! - `held` lists exactly the (holder, item) pairs of the entries, so everything an owner or a ring holds is
//!   found without a scan;
//! - every change is checked: an owner moves, frees or releases only what it holds, sends only on a ring whose
//!   producing side it holds and receives only from a ring whose consuming side it holds; a violation changes
//!   nothing and is reported ([`Violation`]);
//! - garbage is freed as soon as it is garbage: when a side is released, everything travelling towards it
//!   (held by the ring it consumed) is freed, since no one can receive it any more; a channel is freed with
//!   everything its rings hold once neither side can ever be used again: both are released, or the one left
//!   travels in a ring no owner can ever receive from (a channel's endpoint sent through itself, or a cycle of
//!   channels carrying each other's endpoints). Endpoints in what is freed are released in turn, iteratively
//!   (a worklist, never recursion), so no nesting of channels inside channels can exhaust a stack;
//! - each block is charged to one payer, which need not be its holder: its allocator, then whoever receives
//!   it, opens the capsule it is sealed in, or is given it by the trusted base; while it travels in a ring or
//!   sits sealed, its payer does not change. A channel's block stays charged to its creator, wherever its sides
//!   go, until it is freed. The charge is [`charge_of`] its size plus the records' own cost, so a payer's quota
//!   also bounds the platform memory its records take;
//! - a quota refuses an allocation or an unseal that would pass it; a receive that passes it is made and
//!   reported, and the platform then frees the message (module `raw`). An owner that ended keeps the charges of
//!   what it paid for and still lives (messages it sent, channels it created) until that is freed.

use crate::platform::Owner;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::fmt;

/// A channel, named by the address of its block (records and the trusted base only; never shown to anyone).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ChannelId(pub(crate) usize);

/// One side of a channel: side 0 produces into ring 0 and consumes ring 1; side 1 the reverse.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Side {
    pub(crate) channel: ChannelId,
    pub(crate) index: u8,
}

impl Side {
    /// The ring this side produces into.
    #[cfg_attr(feature = "ring3", allow(dead_code, reason = "ring-3 endpoints are handles"))]
    pub(crate) fn produces(self) -> RingId {
        RingId { channel: self.channel, from: self.index }
    }

    /// The ring this side consumes.
    pub(crate) fn consumes(self) -> RingId {
        RingId { channel: self.channel, from: 1 - self.index }
    }

    /// The other side of the same channel.
    fn peer(self) -> Side {
        Side { channel: self.channel, index: 1 - self.index }
    }
}

/// One direction of a channel: the ring that carries messages from side `from` to the other side.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct RingId {
    pub(crate) channel: ChannelId,
    pub(crate) from: u8,
}

impl RingId {
    fn producer(self) -> Side {
        Side { channel: self.channel, index: self.from }
    }

    fn consumer(self) -> Side {
        Side { channel: self.channel, index: 1 - self.from }
    }
}

/// Something with a holder: an exchange-heap block (by address) or a channel side.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Item {
    /// A block.
    Block(usize),
    /// A channel side.
    Side(Side),
}

/// Who holds an item: an owner, a ring it travels in (a message sent and not yet received), or a sealed block
/// it was put in (the contents of an `ExAny`, taken out only by the one who opens it).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Holder {
    /// A process or the kernel.
    Owner(Owner),
    /// In transit.
    Ring(RingId),
    /// Inside the sealed block at this address: it goes wherever that block goes, and is freed with it.
    Sealed(usize),
}

/// What an ownership change found wrong (nothing was changed).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Violation(pub &'static str);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exchange ownership violation: {}", self.0)
    }
}

/// An allocation would take the allocating owner, which would pay for it, beyond its exchange quota.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct QuotaExceeded;

/// The memory work a release or a reclaim leaves to the platform, in this order: close these sides (their
/// channels live on: the peer must see `Closed`), then free these blocks (address, layout).
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Release {
    /// Sides to close with `trusted::close_side`, while their channels are still allocated.
    pub close: Vec<Side>,
    /// Blocks to return to the allocator.
    pub free: Vec<(usize, Layout)>,
}

/// What the records themselves cost per block, charged with it (a map entry and an index entry).
pub const ENTRY_COST: usize = 96;

/// What a block of `layout` is charged: its size rounded up to a multiple of 16, plus [`ENTRY_COST`].
pub fn charge_of(layout: Layout) -> usize {
    layout.size().next_multiple_of(16) + ENTRY_COST
}

/// One payer's charges.
#[derive(Clone, Copy, Debug)]
struct Account {
    /// Bytes charged ([`charge_of`] each block).
    charged: usize,
    /// Blocks charged.
    blocks: usize,
    /// Most bytes it may be charged: allocations and unseals beyond it are refused, a receive beyond it is
    /// reported (`usize::MAX`: no limit).
    quota: usize,
    /// An allocation was refused for the quota.
    refused: bool,
}

impl Account {
    const UNLIMITED: Account = Account { charged: 0, blocks: 0, quota: usize::MAX, refused: false };
}

/// A step of a release (see `Ledger::run`).
enum Work {
    /// Forget this side, drop what it would have received, free its channel if no one can use it any more.
    ReleaseSide(Side),
    /// Free this channel's block and everything its rings hold.
    FreeChannel(ChannelId),
    /// Free this plain block and everything sealed in it.
    FreeBlock(usize),
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A plain block and its holder.
    Plain(Holder),
    /// A channel block; its sides are in `Ledger::sides`.
    Channel { serial: u64 },
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    layout: Layout,
    payer: Owner,
    kind: Kind,
}

/// Every block's and every channel side's holder, and every owner's charges (module docs).
#[derive(Debug)]
pub struct Ledger {
    blocks: BTreeMap<usize, Entry>,
    sides: BTreeMap<Side, Holder>,
    held: BTreeSet<(Holder, Item)>,
    accounts: BTreeMap<Owner, Account>,
    next_serial: u64,
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new()
    }
}

/// The first and last item in `held`'s order, for range queries by holder.
const FIRST_ITEM: Item = Item::Block(0);
const LAST_ITEM: Item = Item::Side(Side { channel: ChannelId(usize::MAX), index: u8::MAX });

impl Ledger {
    /// An empty ledger (usable in a `static`).
    pub const fn new() -> Self {
        Self {
            blocks: BTreeMap::new(),
            sides: BTreeMap::new(),
            held: BTreeSet::new(),
            accounts: BTreeMap::new(),
            next_serial: 1,
        }
    }

    /// Sets `owner`'s exchange quota (bytes of [`charge_of`] the blocks it pays for); owners without one are
    /// unlimited.
    pub fn set_quota(&mut self, owner: Owner, bytes: usize) {
        self.accounts.entry(owner).or_insert(Account::UNLIMITED).quota = bytes;
    }

    /// Forgets `owner`'s quota and its refusal flag (it ended); charges for blocks it paid for and that still
    /// live (messages it sent, channels it created) stay on its account until they are freed.
    pub fn end_account(&mut self, owner: Owner) {
        if let Some(account) = self.accounts.get_mut(&owner) {
            if account.blocks == 0 {
                self.accounts.remove(&owner);
            } else {
                account.quota = usize::MAX;
                account.refused = false;
            }
        }
    }

    /// Charges `owner` for a block of `layout` it is about to allocate, or refuses if that would exceed its
    /// quota. Undo with [`Ledger::uncharge`] if the allocation then fails.
    pub fn charge(&mut self, owner: Owner, layout: Layout) -> Result<(), QuotaExceeded> {
        let account = self.accounts.entry(owner).or_insert(Account::UNLIMITED);
        let charged = account.charged.saturating_add(charge_of(layout));
        if charged > account.quota {
            account.refused = true;
            return Err(QuotaExceeded);
        }
        account.charged = charged;
        account.blocks += 1;
        Ok(())
    }

    /// Takes back a [`Ledger::charge`] whose allocation failed, or the charge of a freed block.
    pub fn uncharge(&mut self, owner: Owner, layout: Layout) {
        if let Some(account) = self.accounts.get_mut(&owner) {
            account.charged = account.charged.saturating_sub(charge_of(layout));
            account.blocks = account.blocks.saturating_sub(1);
            if account.blocks == 0 && account.quota == usize::MAX && !account.refused {
                self.accounts.remove(&owner);
            }
        }
    }

    /// Records a block just allocated (and [`charge`](Ledger::charge)d) for `owner`.
    pub fn allocated(&mut self, block: usize, layout: Layout, owner: Owner) {
        let holder = Holder::Owner(owner);
        self.blocks.insert(block, Entry { layout, payer: owner, kind: Kind::Plain(holder) });
        self.held.insert((holder, Item::Block(block)));
    }

    /// `by` frees its block `block`: the record goes, the charge too, and so does everything sealed in it
    /// (freed and closed as a dead owner's would be). The block itself is the first one in the release.
    pub fn free(&mut self, block: usize, by: Owner) -> Result<Release, Violation> {
        match self.blocks.get(&block) {
            Some(&Entry { kind: Kind::Plain(holder), .. }) if holder == Holder::Owner(by) => {}
            Some(_) => return Err(Violation("freeing a block the caller does not hold")),
            None => return Err(Violation("freeing a block that is not live")),
        }
        let mut out = Release::default();
        self.run(vec![Work::FreeBlock(block)], &mut out);
        Ok(out)
    }

    /// `item`, held by `by`, is sealed into `capsule` (a block `by` holds): it goes where the capsule goes,
    /// and only whoever opens the capsule ([`Ledger::unseal`]) holds it again. It stays charged to its payer.
    pub fn seal(&mut self, item: Item, capsule: usize, by: Owner) -> Result<(), Violation> {
        let held =
            matches!(self.blocks.get(&capsule), Some(e) if matches!(e.kind, Kind::Plain(h) if h == Holder::Owner(by)));
        if !held || item == Item::Block(capsule) {
            return Err(Violation("sealing into a block the caller does not hold"));
        }
        self.move_item(item, Holder::Owner(by), Holder::Sealed(capsule), None)
    }

    /// `by` opens its capsule: everything sealed in it is `by`'s (and charged to it), if that fits in its
    /// quota; `Ok(false)` and nothing changed if it does not.
    pub fn unseal(&mut self, capsule: usize, by: Owner) -> Result<bool, Violation> {
        let held =
            matches!(self.blocks.get(&capsule), Some(e) if matches!(e.kind, Kind::Plain(h) if h == Holder::Owner(by)));
        if !held {
            return Err(Violation("opening a block the caller does not hold"));
        }
        let holder = Holder::Sealed(capsule);
        let items: Vec<Item> = self.held.range((holder, FIRST_ITEM)..=(holder, LAST_ITEM)).map(|(_, i)| *i).collect();
        let added: usize = items
            .iter()
            .filter_map(|item| match item {
                Item::Block(block) => self.blocks.get(block).filter(|e| e.payer != by).map(|e| charge_of(e.layout)),
                Item::Side(_) => None,
            })
            .sum();
        if let Some(account) = self.accounts.get(&by)
            && account.charged.saturating_add(added) > account.quota
        {
            return Ok(false);
        }
        for item in items {
            self.move_item(item, holder, Holder::Owner(by), Some(by))?;
        }
        Ok(true)
    }

    /// `by`'s block `channel` becomes a channel; `by` holds both of its sides.
    pub fn open(&mut self, channel: ChannelId, by: Owner) -> Result<(), Violation> {
        let holder = Holder::Owner(by);
        let entry =
            self.blocks.get_mut(&channel.0).ok_or(Violation("opening a channel on a block that is not live"))?;
        if !matches!(entry.kind, Kind::Plain(h) if h == holder) {
            return Err(Violation("opening a channel on a block the caller does not hold"));
        }
        entry.kind = Kind::Channel { serial: self.next_serial };
        self.next_serial += 1;
        self.held.remove(&(holder, Item::Block(channel.0)));
        for index in 0..2 {
            let side = Side { channel, index };
            self.sides.insert(side, holder);
            self.held.insert((holder, Item::Side(side)));
        }
        Ok(())
    }

    /// `item`, held by `by`, travels in `ring`, whose producing side `by` holds.
    pub fn send(&mut self, item: Item, ring: RingId, by: Owner) -> Result<(), Violation> {
        if self.sides.get(&ring.producer()) != Some(&Holder::Owner(by)) {
            return Err(Violation("sending on a ring whose producing side the caller does not hold"));
        }
        self.move_item(item, Holder::Owner(by), Holder::Ring(ring), None)
    }

    /// `item`, travelling in `ring` (whose consuming side `by` holds), is now `by`'s and charged to it.
    /// Returns whether `by` is still within its quota.
    pub fn receive(&mut self, item: Item, ring: RingId, by: Owner) -> Result<bool, Violation> {
        if self.sides.get(&ring.consumer()) != Some(&Holder::Owner(by)) {
            return Err(Violation("receiving from a ring whose consuming side the caller does not hold"));
        }
        self.move_item(item, Holder::Ring(ring), Holder::Owner(by), Some(by))?;
        Ok(self.accounts.get(&by).is_none_or(|a| a.charged <= a.quota))
    }

    /// `item`, held by `from`, is now `to`'s (and a block is charged to `to`).
    pub fn give(&mut self, item: Item, from: Owner, to: Owner) -> Result<(), Violation> {
        self.move_item(item, Holder::Owner(from), Holder::Owner(to), Some(to))
    }

    /// Moves `item` from `from` to `to` if `from` holds it; a block's charge moves to `payer` if given.
    fn move_item(&mut self, item: Item, from: Holder, to: Holder, payer: Option<Owner>) -> Result<(), Violation> {
        match item {
            Item::Block(block) => {
                let entry = self.blocks.get_mut(&block).ok_or(Violation("moving a block that is not live"))?;
                if !matches!(entry.kind, Kind::Plain(h) if h == from) {
                    return Err(Violation("moving a block the caller does not hold"));
                }
                entry.kind = Kind::Plain(to);
                let (layout, old_payer) = (entry.layout, entry.payer);
                if let Some(payer) = payer.filter(|p| *p != old_payer) {
                    entry.payer = payer;
                    self.uncharge(old_payer, layout);
                    let account = self.accounts.entry(payer).or_insert(Account::UNLIMITED);
                    account.charged = account.charged.saturating_add(charge_of(layout));
                    account.blocks += 1;
                }
            }
            Item::Side(side) => {
                let holder = self.sides.get_mut(&side).ok_or(Violation("moving a channel side that is released"))?;
                if *holder != from {
                    return Err(Violation("moving a channel side the caller does not hold"));
                }
                *holder = to;
            }
        }
        self.held.remove(&(from, item));
        self.held.insert((to, item));
        Ok(())
    }

    /// `by` closed its endpoint on `side`: the side is forgotten, and the channel freed (with everything its
    /// rings hold) once it is of no use to anyone (module docs, "garbage").
    pub fn release(&mut self, side: Side, by: Owner) -> Result<Release, Violation> {
        match self.sides.get(&side) {
            Some(&holder) if holder == Holder::Owner(by) => {}
            Some(_) => return Err(Violation("releasing a channel side the caller does not hold")),
            None => return Err(Violation("releasing a channel side twice")),
        }
        let mut out = Release::default();
        self.run(vec![Work::ReleaseSide(side)], &mut out);
        Ok(out)
    }

    /// Everything `owner` holds, as if it had freed every block and closed every endpoint: what the platform
    /// does when `owner` dies. Never fails: the records themselves say what `owner` holds.
    pub fn reclaim(&mut self, owner: Owner) -> Release {
        let mut out = Release::default();
        let mut work = Vec::new();
        self.drop_holdings(Holder::Owner(owner), &mut out, &mut work);
        self.run(work, &mut out);
        out
    }

    /// Does the work of a release until none is left (a worklist: releases and frees cascade through
    /// endpoints travelling in channels, never through recursion).
    fn run(&mut self, mut work: Vec<Work>, out: &mut Release) {
        while let Some(next) = work.pop() {
            match next {
                Work::ReleaseSide(side) => {
                    let Some(holder) = self.sides.remove(&side) else { continue };
                    self.held.remove(&(holder, Item::Side(side)));
                    // Nobody can receive what this side would have received: it is garbage now.
                    self.drop_holdings(Holder::Ring(side.consumes()), out, &mut work);
                    match self.sides.get(&side.peer()) {
                        None => work.push(Work::FreeChannel(side.channel)),
                        Some(_) if self.unreachable(side.peer()) => work.push(Work::FreeChannel(side.channel)),
                        Some(_) => out.close.push(side),
                    }
                }
                Work::FreeChannel(channel) => {
                    if !self.is_channel(channel.0) {
                        continue;
                    }
                    for index in 0..2 {
                        // A side still recorded travels in some ring that can never deliver it (`unreachable`).
                        let side = Side { channel, index };
                        if let Some(holder) = self.sides.remove(&side) {
                            self.held.remove(&(holder, Item::Side(side)));
                        }
                    }
                    for from in 0..2 {
                        self.drop_holdings(Holder::Ring(RingId { channel, from }), out, &mut work);
                    }
                    let layout = self.remove_block(channel.0);
                    out.free.push((channel.0, layout));
                }
                Work::FreeBlock(block) => {
                    if !self.blocks.contains_key(&block) {
                        continue;
                    }
                    let layout = self.remove_block(block);
                    out.free.push((block, layout));
                    self.drop_holdings(Holder::Sealed(block), out, &mut work);
                }
            }
        }
    }

    /// Frees every block `holder` holds and queues the release of every side it holds.
    fn drop_holdings(&mut self, holder: Holder, out: &mut Release, work: &mut Vec<Work>) {
        let items: Vec<Item> = self.held.range((holder, FIRST_ITEM)..=(holder, LAST_ITEM)).map(|(_, i)| *i).collect();
        let _ = out;
        for item in items {
            work.push(match item {
                Item::Block(block) => Work::FreeBlock(block),
                Item::Side(side) => Work::ReleaseSide(side),
            });
        }
    }

    /// Whether the live side `side` can never be received by anyone: it travels in a ring whose consumer is
    /// released, or sits sealed in a block, which travels ... and the chain of holders never reaches an owner
    /// (it ends at something released or freed, or comes back to where it passed: a cycle of channels
    /// carrying each other's endpoints, which would otherwise keep each other alive forever). Each thing has
    /// one holder, so this is a walk along one chain, at most as long as there are channels and blocks.
    fn unreachable(&self, side: Side) -> bool {
        let mut seen: BTreeSet<Item> = BTreeSet::new();
        let mut at = Item::Side(side);
        loop {
            let holder = match at {
                Item::Side(side) => self.sides.get(&side).copied(),
                Item::Block(block) => self.holder(Item::Block(block)),
            };
            let next = match holder {
                None => return true,
                Some(Holder::Owner(_)) => return false,
                Some(Holder::Ring(ring)) => Item::Side(ring.consumer()),
                Some(Holder::Sealed(block)) => Item::Block(block),
            };
            if !seen.insert(next) {
                return true;
            }
            at = next;
        }
    }

    /// Removes block `block`'s entry (and its index entry and charge); returns its layout.
    fn remove_block(&mut self, block: usize) -> Layout {
        let Some(entry) = self.blocks.remove(&block) else { return Layout::new::<u8>() };
        if let Kind::Plain(holder) = entry.kind {
            self.held.remove(&(holder, Item::Block(block)));
        }
        self.uncharge(entry.payer, entry.layout);
        entry.layout
    }

    /// Who holds `item`, if it is live.
    pub fn holder(&self, item: Item) -> Option<Holder> {
        match item {
            Item::Block(block) => match self.blocks.get(&block)?.kind {
                Kind::Plain(holder) => Some(holder),
                Kind::Channel { .. } => None,
            },
            Item::Side(side) => self.sides.get(&side).copied(),
        }
    }

    /// Whether `block` is a live channel block.
    pub fn is_channel(&self, block: usize) -> bool {
        matches!(self.blocks.get(&block), Some(Entry { kind: Kind::Channel { .. }, .. }))
    }

    /// What `owner` pays for, which need not be what it holds ([`Ledger::held_by`]): (blocks, bytes of
    /// [`charge_of`]).
    pub fn charged(&self, owner: Owner) -> (usize, usize) {
        self.accounts.get(&owner).map_or((0, 0), |a| (a.blocks, a.charged))
    }

    /// Whether one of `owner`'s allocations was refused for its quota.
    pub fn quota_refused(&self, owner: Owner) -> bool {
        self.accounts.get(&owner).is_some_and(|a| a.refused)
    }

    /// Blocks `owner` holds, and their bytes (layout sizes).
    pub fn held_by(&self, owner: Owner) -> (usize, usize) {
        let holder = Holder::Owner(owner);
        self.held
            .range((holder, FIRST_ITEM)..=(holder, LAST_ITEM))
            .filter_map(|(_, item)| match item {
                Item::Block(block) => self.blocks.get(block).map(|e| e.layout.size()),
                Item::Side(_) => None,
            })
            .fold((0, 0), |(n, bytes), size| (n + 1, bytes + size))
    }

    /// How many channel sides `owner` holds.
    pub fn sides_held_by(&self, owner: Owner) -> usize {
        let holder = Holder::Owner(owner);
        self.held.range((holder, FIRST_ITEM)..=(holder, LAST_ITEM)).filter(|(_, i)| matches!(i, Item::Side(_))).count()
    }

    /// Live blocks (channel blocks included) and their bytes (layout sizes).
    pub fn totals(&self) -> (usize, usize) {
        (self.blocks.len(), self.blocks.values().map(|e| e.layout.size()).sum())
    }

    /// Every live channel in creation order: its serial number (an identity for listings, never an address)
    /// and who holds each side (`None`: released).
    pub fn channels(&self) -> Vec<(u64, [Option<Holder>; 2])> {
        let mut list: Vec<(u64, [Option<Holder>; 2])> = self
            .blocks
            .iter()
            .filter_map(|(&block, entry)| match entry.kind {
                Kind::Channel { serial } => {
                    let side = |index| self.sides.get(&Side { channel: ChannelId(block), index }).copied();
                    Some((serial, [side(0), side(1)]))
                }
                Kind::Plain(_) => None,
            })
            .collect();
        list.sort_by_key(|(serial, _)| *serial);
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Owner = Owner::sip(1);
    const B: Owner = Owner::sip(2);

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 8).unwrap()
    }

    fn alloc(ledger: &mut Ledger, block: usize, owner: Owner) {
        ledger.charge(owner, layout(64)).unwrap();
        ledger.allocated(block, layout(64), owner);
    }

    #[test]
    fn a_block_moves_through_a_ring_and_only_its_holder_may_touch_it() {
        let mut ledger = Ledger::new();
        alloc(&mut ledger, 0x1000, A);
        ledger.open(ChannelId(0x1000), A).unwrap();
        let channel = ChannelId(0x1000);
        let (a_side, b_side) = (Side { channel, index: 0 }, Side { channel, index: 1 });
        ledger.give(Item::Side(b_side), A, B).unwrap();
        alloc(&mut ledger, 0x2000, A);
        let message = Item::Block(0x2000);
        assert!(ledger.send(message, b_side.produces(), A).is_err(), "A does not hold side 1");
        ledger.send(message, a_side.produces(), A).unwrap();
        assert_eq!(ledger.holder(message), Some(Holder::Ring(a_side.produces())));
        assert!(ledger.free(0x2000, A).is_err(), "a sent block is no longer the sender's");
        assert!(ledger.receive(message, a_side.produces(), A).is_err(), "only the consumer receives");
        assert_eq!(ledger.receive(message, b_side.consumes(), B), Ok(true));
        assert_eq!(ledger.charged(B).0, 1, "the receiver pays now");
        assert_eq!(ledger.free(0x2000, B).map(|r| r.free), Ok(vec![(0x2000, layout(64))]));
    }

    #[test]
    fn a_capsule_travels_as_one_block_and_frees_what_is_sealed_in_it() {
        let mut ledger = Ledger::new();
        alloc(&mut ledger, 0x1000, A);
        let channel = ChannelId(0x1000);
        ledger.open(channel, A).unwrap();
        let (zero, one) = (Side { channel, index: 0 }, Side { channel, index: 1 });
        ledger.give(Item::Side(one), A, B).unwrap();
        // A capsule holding a block and the end of a second channel.
        for block in [0x2000, 0x3000, 0x4000] {
            alloc(&mut ledger, block, A);
        }
        ledger.open(ChannelId(0x4000), A).unwrap();
        let inner = Side { channel: ChannelId(0x4000), index: 1 };
        ledger.seal(Item::Block(0x3000), 0x2000, A).unwrap();
        ledger.seal(Item::Side(inner), 0x2000, A).unwrap();
        assert!(ledger.free(0x3000, A).is_err(), "what is sealed is not its sealer's to free");
        ledger.send(Item::Block(0x2000), zero.produces(), A).unwrap();
        assert_eq!(ledger.receive(Item::Block(0x2000), one.consumes(), B), Ok(true));
        assert_eq!(ledger.holder(Item::Block(0x3000)), Some(Holder::Sealed(0x2000)), "never walked");
        // B drops it unopened: the capsule, its block and its endpoint go; A's other end sees Closed.
        let release = ledger.free(0x2000, B).unwrap();
        assert_eq!(release.free, [(0x2000, layout(64)), (0x3000, layout(64))]);
        assert_eq!(release.close, [inner]);
        assert_eq!(ledger.charged(A).0, 2, "A pays for its two channels only");
    }

    #[test]
    fn opening_a_capsule_charges_the_opener_within_its_quota() {
        let mut ledger = Ledger::new();
        for block in [0x2000, 0x3000] {
            alloc(&mut ledger, block, A);
        }
        ledger.seal(Item::Block(0x3000), 0x2000, A).unwrap();
        ledger.give(Item::Block(0x2000), A, B).unwrap();
        ledger.set_quota(B, charge_of(layout(64)));
        assert_eq!(ledger.unseal(0x2000, B), Ok(false), "the contents do not fit in B's quota");
        assert_eq!(ledger.holder(Item::Block(0x3000)), Some(Holder::Sealed(0x2000)));
        ledger.set_quota(B, 2 * charge_of(layout(64)));
        assert_eq!(ledger.unseal(0x2000, B), Ok(true));
        assert_eq!(ledger.holder(Item::Block(0x3000)), Some(Holder::Owner(B)));
        assert_eq!(ledger.charged(B).0, 2);
    }

    #[test]
    fn the_second_release_frees_the_channel_and_what_travels_in_it() {
        let mut ledger = Ledger::new();
        alloc(&mut ledger, 0x1000, A);
        let outer = ChannelId(0x1000);
        ledger.open(outer, A).unwrap();
        alloc(&mut ledger, 0x3000, A);
        let inner = ChannelId(0x3000);
        ledger.open(inner, A).unwrap();
        let ring = Side { channel: outer, index: 0 }.produces();
        ledger.send(Item::Side(Side { channel: inner, index: 0 }), ring, A).unwrap();
        let first = ledger.release(Side { channel: outer, index: 0 }, A).unwrap();
        assert_eq!(first.close, [Side { channel: outer, index: 0 }]);
        assert!(first.free.is_empty());
        let second = ledger.release(Side { channel: outer, index: 1 }, A).unwrap();
        // The inner endpoint in transit is released; its peer (still A's) must see Closed.
        assert_eq!(second.close, [Side { channel: inner, index: 0 }]);
        assert_eq!(second.free, [(0x1000, layout(64))]);
        assert!(ledger.release(Side { channel: outer, index: 1 }, A).is_err(), "released twice");
        let reclaimed = ledger.reclaim(A);
        assert_eq!(reclaimed.free, [(0x3000, layout(64))]);
        assert_eq!(ledger.totals(), (0, 0));
        assert_eq!(ledger.charged(A), (0, 0));
    }

    #[test]
    fn a_quota_refuses_allocations_and_flags_receives() {
        let mut ledger = Ledger::new();
        ledger.set_quota(B, charge_of(layout(64)));
        alloc(&mut ledger, 0x1000, A);
        ledger.open(ChannelId(0x1000), A).unwrap();
        let ring = Side { channel: ChannelId(0x1000), index: 0 }.produces();
        ledger.give(Item::Side(Side { channel: ChannelId(0x1000), index: 1 }), A, B).unwrap();
        for block in [0x2000, 0x3000] {
            alloc(&mut ledger, block, A);
            ledger.send(Item::Block(block), ring, A).unwrap();
        }
        assert_eq!(ledger.receive(Item::Block(0x2000), ring, B), Ok(true));
        assert_eq!(ledger.receive(Item::Block(0x3000), ring, B), Ok(false), "beyond B's quota");
        assert_eq!(ledger.charge(B, layout(16)), Err(QuotaExceeded));
        assert!(ledger.quota_refused(B));
    }

    #[test]
    fn a_channel_sent_through_itself_is_freed_when_its_last_owner_lets_go() {
        let mut ledger = Ledger::new();
        alloc(&mut ledger, 0x1000, A);
        let channel = ChannelId(0x1000);
        ledger.open(channel, A).unwrap();
        let (zero, one) = (Side { channel, index: 0 }, Side { channel, index: 1 });
        ledger.send(Item::Side(one), zero.produces(), A).unwrap();
        alloc(&mut ledger, 0x2000, A);
        ledger.send(Item::Block(0x2000), zero.produces(), A).unwrap();
        let release = ledger.release(zero, A).unwrap();
        assert!(release.close.is_empty());
        let mut freed: Vec<usize> = release.free.iter().map(|(block, _)| *block).collect();
        freed.sort();
        assert_eq!(freed, [0x1000, 0x2000]);
        assert_eq!(ledger.totals(), (0, 0));
    }

    #[test]
    fn two_channels_carrying_each_others_endpoints_are_freed_together() {
        let mut ledger = Ledger::new();
        let (x, y) = (ChannelId(0x1000), ChannelId(0x2000));
        for channel in [x, y] {
            alloc(&mut ledger, channel.0, A);
            ledger.open(channel, A).unwrap();
        }
        let side = |channel, index| Side { channel, index };
        ledger.send(Item::Side(side(y, 1)), side(x, 0).produces(), A).unwrap();
        ledger.send(Item::Side(side(x, 1)), side(y, 0).produces(), A).unwrap();
        let release = ledger.reclaim(A);
        assert_eq!(release.free.len(), 2, "{release:?}");
        assert_eq!(ledger.totals(), (0, 0));
        assert_eq!(ledger.charged(A), (0, 0));
    }

    #[test]
    fn what_travels_to_a_released_side_is_freed_at_once() {
        let mut ledger = Ledger::new();
        alloc(&mut ledger, 0x1000, A);
        let channel = ChannelId(0x1000);
        ledger.open(channel, A).unwrap();
        let (zero, one) = (Side { channel, index: 0 }, Side { channel, index: 1 });
        ledger.give(Item::Side(one), A, B).unwrap();
        alloc(&mut ledger, 0x2000, A);
        ledger.send(Item::Block(0x2000), zero.produces(), A).unwrap();
        let release = ledger.release(one, B).unwrap();
        assert_eq!(release.close, [one], "A still holds side 0: it must see Closed");
        assert_eq!(release.free, [(0x2000, layout(64))], "the message B never took");
    }
}
