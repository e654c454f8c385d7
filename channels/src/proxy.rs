//! The kernel's side of a ring-3 SIP's endpoints: the real endpoints it holds for the SIP, by handle, and the
//! operations its channel calls perform on them with messages in their byte form ([`wire`](crate::wire)).
//!
//! A ring-3 SIP never sees the exchange heap (docs/protection.md, "How a message crosses"). Its endpoints are
//! ordinary endpoints of ordinary channels, kept in its [`HandleTable`]; a send decodes the SIP's bytes into a
//! typed message (checked: tags, lengths, handles) and sends it as any ring-0 sender would, a receive takes a
//! typed message and encodes it for the SIP. So the peer on the other side cannot tell a ring-3 SIP from a
//! ring-0 one, and every contract works across the boundary unchanged.
//!
//! Not here: the calls themselves (the kernel's), the ring-3 side (the `ring3` build of `raw`).
//!
//! Invariants: a table entry is the only owner of its endpoint; an endpoint leaves the table only by moving
//! into a message (`Endpoints::take_as`, type-checked), by [`HandleTable::close`] or, for a dead owner, by
//! [`HandleTable::abandon`], which forgets the endpoints because the platform's records close their sides. Every
//! operation here acts for the table's owner (the platform must see it as the caller). An endpoint with which a
//! thread of the SIP waits in a call is busy ([`Proxied::set_busy`], in a SIP that has more than one thread:
//! [`HandleTable::is_threaded`]): the table hands it to nobody else, so nobody closes or moves it under the
//! waiter; only `abandon`, once the SIP and its threads are gone, ignores that.

use crate::endpoint::Closed;
use crate::exchangeable::Exchangeable;
use crate::ledger::Side;
use crate::raw::{RawEndpoint, Received, Status, TryRecvError, TrySendError};
use crate::ring::{DIRECT_WORDS, Readiness};
use crate::wire::{self, Endpoints, Held, NoEndpoints, WireError};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::any::{Any, TypeId};
use core::ptr::NonNull;

/// Why a send for a ring-3 SIP did not happen.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SendFailure {
    /// The peer is gone.
    Closed,
    /// The bytes are no message of the channel (the SIP's fault): nothing was sent, what was decoded of it is
    /// freed, and the channel is closed for both sides (its peer sees `Closed`, as for any protocol violation).
    Bad(WireError),
    /// The ring is full: the SIP broke its contract (a typed endpoint never fills a ring); the channel is closed
    /// for both sides.
    Full,
}

/// Why a receive for a ring-3 SIP returned no message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RecvFailure {
    /// Nothing queued yet.
    Empty,
    /// Nothing queued and the peer is gone.
    Closed,
    /// The message could not cross (too deep, too long, of a type that cannot cross): it was freed and the
    /// channel is closed for both sides.
    Bad(WireError),
    /// The message takes this many bytes, more than the room offered: it waits, encoded, for a larger room.
    TooSmall(usize),
    /// The receiver refused the bytes (its buffer is not its memory): the message waits for the next call.
    NotDelivered,
}

/// A message in its byte form, and the handles its endpoints went under.
pub type Encoded = (Vec<u8>, Vec<u32>);

/// What [`Proxied::poll_short`] found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Polled {
    /// A short message beside the ring (taken): its words and its length in bytes.
    Short([u64; DIRECT_WORDS], usize),
    /// Something a receive takes on its general path ([`Proxied::recv_with`]): a message in the ring or kept for
    /// a larger room, or a closed peer.
    Other,
    /// Nothing yet.
    Nothing,
}

/// Something a ring-3 SIP's thread can wait on: an endpoint's receive ring, without its types.
#[derive(Clone, Copy)]
pub struct Waiter(NonNull<dyn Readiness>);

// SAFETY: a `Waiter` is only an address; it is used (`wait_any`) by the thread of the endpoint's owner, under
// that function's contract.
unsafe impl Send for Waiter {}

mod sealed {
    /// Only this crate implements [`Proxied`](super::Proxied) (for `RawEndpoint`).
    pub trait Sealed {}
}

/// An endpoint held for a ring-3 SIP, type-erased: what its channel calls can do with it.
pub trait Proxied: Send + sealed::Sealed {
    /// Decodes `bytes` as a message of the endpoint's send type (its endpoints from `table`) and sends it.
    fn send_encoded(&mut self, bytes: &[u8], table: &mut dyn Endpoints) -> Result<(), SendFailure>;

    /// Sends the message of `len` bytes in `words` if it is plain data of the endpoint's send type (no
    /// endpoint in it): beside the ring if the peer is held for a ring-3 SIP and nothing is queued (the short
    /// path: the words are checked, then handed over as they are), else as a typed message. `None` if the words
    /// are no such message: nothing happened, and [`Proxied::send_encoded`] sends it (taking its endpoints from
    /// the table) or finds it bad.
    fn send_short(&mut self, words: [u64; DIRECT_WORDS], len: usize) -> Option<Result<(), SendFailure>>;

    /// The oldest message, if it is a short one that came beside the ring (the short path); else whether
    /// anything else is there for a receive (a message in the ring or kept here, a closed peer).
    fn poll_short(&mut self) -> Polled;

    /// Takes the oldest message, if any, encodes it (its endpoints go into `table`) and hands its bytes to
    /// `deliver` if they fit in `room`; answers their length. A message that does not fit, or that `deliver`
    /// refuses (`false`: the SIP's buffer is not its memory), is kept, encoded, for the next call.
    fn recv_with(
        &mut self,
        table: &mut dyn Endpoints,
        room: usize,
        deliver: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<usize, RecvFailure>;

    /// [`Proxied::recv_with`], the bytes returned.
    fn try_recv_encoded(&mut self, table: &mut dyn Endpoints, room: usize) -> Result<Vec<u8>, RecvFailure> {
        let mut out = Vec::new();
        self.recv_with(table, room, &mut |bytes| {
            out.extend_from_slice(bytes);
            true
        })?;
        Ok(out)
    }

    /// Prepares the endpoint to leave its SIP's table (moved into a message): `false`, and nothing changes, if
    /// a message waits for the SIP here (kept for a larger room) or beside the ring: such an endpoint does not
    /// move, its receiver takes the message first.
    fn detach(&self) -> bool;

    /// The handles of the endpoints in a message kept here, which is dropped (the endpoint is closing).
    fn take_pending_handles(&mut self) -> Vec<u32>;

    /// The peer's state and the queues.
    fn status(&self) -> Status;

    /// Whether `other` is this endpoint's peer.
    fn is_peer_of(&self, other: &dyn Proxied) -> bool;

    /// The channel side, as the records name it.
    fn side(&self) -> Side;

    /// What [`wait_any`] waits on for this endpoint.
    fn waiter(&self) -> Waiter;

    /// Whether a receive would find something now: a message (kept here or queued) or a closed peer.
    fn is_ready(&self) -> bool;

    /// The type of the endpoint (a `RawEndpoint<Tx, Rx>`'s `TypeId`).
    fn endpoint_type(&self) -> TypeId;

    /// The endpoint, for a downcast to its type.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;

    /// Forgets the endpoint without closing or releasing it: its owner is dead and the platform's records close
    /// its side.
    fn abandon(self: Box<Self>);

    /// Marks the endpoint as used by a thread of its SIP that waits in a call with it (`true`), or no longer
    /// (`false`). While it is, the table hands it to nobody else ([`HandleTable`]): another thread of the SIP can
    /// neither use, close nor move it, so the waiting thread finds it where it left it.
    fn set_busy(&self, busy: bool);

    /// Whether a thread of its SIP waits in a call with it ([`Proxied::set_busy`]).
    fn is_busy(&self) -> bool;
}

/// An endpoint is `Send` when its message types are; every `Exchangeable` type is (its contract), which the
/// bound of `Proxied` cannot say. This wrapper says it.
struct Holding<Tx: Exchangeable, Rx: Exchangeable> {
    end: RawEndpoint<Tx, Rx>,
    /// A received message too large for the room the SIP offered (its endpoints already in the table).
    pending: Option<Encoded>,
    /// The buffer the last message was encoded in, kept for the next (a receive then allocates nothing).
    spare: Vec<u8>,
    /// A thread of the SIP waits in a call with this endpoint ([`Proxied::set_busy`]).
    busy: core::cell::Cell<bool>,
}

// SAFETY: `Exchangeable`'s contract makes every implementing type `Send` (the derive and `contract!` only combine
// `Send` parts), so the endpoint's messages may move between threads and the endpoint with them.
unsafe impl<Tx: Exchangeable, Rx: Exchangeable> Send for Holding<Tx, Rx> {}

impl<Tx: Exchangeable, Rx: Exchangeable> sealed::Sealed for Holding<Tx, Rx> {}

impl<Tx: Exchangeable, Rx: Exchangeable> Proxied for Holding<Tx, Rx> {
    fn send_encoded(&mut self, bytes: &[u8], table: &mut dyn Endpoints) -> Result<(), SendFailure> {
        // Before decoding: a refused send leaves the SIP's endpoints in its table, so it can rebuild its message.
        if self.end.is_peer_closed() {
            return Err(SendFailure::Closed);
        }
        let message = wire::decode::<Tx>(bytes, table).map_err(|error| {
            self.end.break_channel();
            SendFailure::Bad(error)
        })?;
        match self.end.try_send(message) {
            Ok(()) => Ok(()),
            // The peer closed while the message was decoded: its endpoints are out of the table now, so this
            // counts as sent and lost with the channel, as a ring-0 send that races a close may be.
            Err(TrySendError::PeerClosed(_)) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.end.break_channel();
                Err(SendFailure::Full)
            }
        }
    }

    fn send_short(&mut self, words: [u64; DIRECT_WORDS], len: usize) -> Option<Result<(), SendFailure>> {
        let bytes = words.map(u64::to_le_bytes);
        let bytes = bytes.as_flattened().get(..len)?;
        let message = wire::decode::<Tx>(bytes, &mut NoEndpoints).ok()?;
        if self.end.is_peer_closed() {
            // Refused before anything of it was taken (it holds no endpoint): the SIP still has its message.
            return Some(Err(SendFailure::Closed));
        }
        if self.end.put_direct(words, len) {
            // The checked words went instead; the value, plain data, only showed that they are a message.
            drop(message);
            return Some(Ok(()));
        }
        Some(match self.end.try_send(message) {
            // The peer closed since the look above: sent and lost with the channel (as in `send_encoded`).
            Ok(()) | Err(TrySendError::PeerClosed(_)) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.end.break_channel();
                Err(SendFailure::Full)
            }
        })
    }

    #[inline]
    fn poll_short(&mut self) -> Polled {
        if self.pending.is_none()
            && let Some((words, len)) = self.end.take_direct()
        {
            return Polled::Short(words, len);
        }
        if self.is_ready() { Polled::Other } else { Polled::Nothing }
    }

    fn recv_with(
        &mut self,
        table: &mut dyn Endpoints,
        room: usize,
        deliver: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<usize, RecvFailure> {
        let (bytes, handles) = match self.pending.take() {
            Some(encoded) => encoded,
            None => match self.end.try_recv_direct_first() {
                Err(TryRecvError::Empty) => return Err(RecvFailure::Empty),
                Err(TryRecvError::Closed) => return Err(RecvFailure::Closed),
                Ok(Received::Short(words, len)) => {
                    // Plain data, as its sender's kernel call checked it: its bytes as they came.
                    let mut buffer = core::mem::take(&mut self.spare);
                    buffer.clear();
                    buffer.extend_from_slice(&words.map(u64::to_le_bytes).as_flattened()[..len]);
                    (buffer, Vec::new())
                }
                Ok(Received::Message(message)) => {
                    let mut buffer = core::mem::take(&mut self.spare);
                    buffer.clear();
                    wire::encode_recorded_into(buffer, message, table).map_err(|error| {
                        self.end.break_channel();
                        RecvFailure::Bad(error)
                    })?
                }
            },
        };
        let len = bytes.len();
        if len > room {
            self.pending = Some((bytes, handles));
            return Err(RecvFailure::TooSmall(len));
        }
        if !deliver(&bytes) {
            self.pending = Some((bytes, handles));
            return Err(RecvFailure::NotDelivered);
        }
        self.spare = bytes;
        Ok(len)
    }

    fn detach(&self) -> bool {
        self.pending.is_none() && self.end.close_direct()
    }

    fn take_pending_handles(&mut self) -> Vec<u32> {
        self.pending.take().map(|(_, handles)| handles).unwrap_or_default()
    }

    fn status(&self) -> Status {
        Status {
            peer_closed: self.end.is_peer_closed(),
            queued: self.end.queued() + usize::from(self.pending.is_some()),
            in_flight: self.end.in_flight(),
            send_capacity: self.end.send_capacity(),
            recv_capacity: self.end.recv_capacity(),
        }
    }

    fn is_peer_of(&self, other: &dyn Proxied) -> bool {
        let (mine, theirs) = (self.end.side(), other.side());
        mine.channel == theirs.channel && mine.index != theirs.index
    }

    fn side(&self) -> Side {
        self.end.side()
    }

    fn waiter(&self) -> Waiter {
        Waiter(NonNull::from(self.end.wait_source()))
    }

    #[inline]
    fn is_ready(&self) -> bool {
        self.pending.is_some() || self.end.wait_source().is_ready()
    }

    fn endpoint_type(&self) -> TypeId {
        TypeId::of::<RawEndpoint<Tx, Rx>>()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        // Never with a message pending (`take_as` refuses to move such an endpoint, and closed the slot beside
        // the ring).
        Box::new(self.end)
    }

    fn abandon(self: Box<Self>) {
        core::mem::forget(self.end);
    }

    #[inline]
    fn set_busy(&self, busy: bool) {
        self.busy.set(busy);
    }

    #[inline]
    fn is_busy(&self) -> bool {
        self.busy.get()
    }
}

/// `endpoint`, to be held for a ring-3 SIP.
pub fn hold<Tx: Exchangeable, Rx: Exchangeable>(endpoint: RawEndpoint<Tx, Rx>) -> Held {
    // A peer that sends for a ring-3 SIP may now leave short messages beside the ring.
    endpoint.open_direct();
    Box::new(Holding { end: endpoint, pending: None, spare: Vec::new(), busy: core::cell::Cell::new(false) })
}

/// Blocks the calling thread until one of `waiters` has a message or a closed peer (or spuriously: callers look
/// again).
///
/// # Safety
/// Every waiter's endpoint stays in its table (not sent, closed or abandoned) until this returns: the calling
/// thread is its owner's only thread, and the table is not touched while it waits.
pub unsafe fn wait_any(waiters: &[Waiter]) {
    // SAFETY: the endpoint is held (the caller's promise), so its channel and ring are live.
    let source = |waiter: &Waiter| unsafe { waiter.0.as_ref() };
    // One waiter (every blocking receive) without an allocation: it would cost more than the wait's own work.
    if let [one] = waiters {
        return crate::raw::block_on(&[source(one)]);
    }
    let sources: Vec<&dyn Readiness> = waiters.iter().map(source).collect();
    crate::raw::block_on(&sources);
}

/// [`wait_any`] without its polls first: parks at once (a caller that polled already).
///
/// # Safety
/// As [`wait_any`].
pub unsafe fn park_on(waiters: &[Waiter]) {
    // SAFETY: the endpoint is held (the caller's promise), so its channel and ring are live.
    let source = |waiter: &Waiter| unsafe { waiter.0.as_ref() };
    if let [one] = waiters {
        return crate::raw::park_on(&[source(one)], 0);
    }
    let sources: Vec<&dyn Readiness> = waiters.iter().map(source).collect();
    crate::raw::park_on(&sources, 0);
}

/// A ring-3 SIP's endpoints, by handle (the index of an entry).
pub struct HandleTable {
    entries: Vec<Entry>,
    limit: usize,
    /// The SIP has started a second thread: its waits mark their endpoints busy.
    threaded: bool,
}

/// What a handle names.
enum Entry {
    /// Nothing: the handle may be given out again.
    Free,
    /// An endpoint.
    Held(Held),
    /// The endpoint a call is using right now ([`HandleTable::with`]): not free, and not to be moved.
    InUse,
}

impl HandleTable {
    /// The handle of a SIP's startup endpoint (the value its parent handed it): never given to another.
    pub const STARTUP: u32 = 0;

    /// An empty table that holds at most `limit` endpoints.
    pub const fn new(limit: usize) -> Self {
        Self { entries: Vec::new(), limit, threaded: false }
    }

    /// The SIP has more than one thread from now on: a thread that waits with an endpoint marks it busy
    /// ([`Proxied::set_busy`]), because another thread may use the table meanwhile.
    pub fn mark_threaded(&mut self) {
        self.threaded = true;
    }

    /// Whether the SIP has ever had more than one thread ([`HandleTable::mark_threaded`]).
    #[inline]
    pub fn is_threaded(&self) -> bool {
        self.threaded
    }

    /// Holds the SIP's startup endpoint under [`HandleTable::STARTUP`] (in a table that holds nothing yet).
    pub fn put_startup(&mut self, endpoint: Held) -> Result<(), WireError> {
        if !self.entries.is_empty() {
            return Err(WireError::BadHandle);
        }
        self.entries.try_reserve(1).map_err(|_| WireError::OutOfMemory)?;
        self.entries.push(Entry::Held(endpoint));
        Ok(())
    }

    /// Runs `f` on the endpoint named `handle`, with the rest of the table for the endpoints of its message (the
    /// handle stays taken meanwhile: it is neither given out again nor moved); `None` if there is no such
    /// endpoint.
    pub fn with<R>(&mut self, handle: u32, f: impl FnOnce(&mut dyn Proxied, &mut dyn Endpoints) -> R) -> Option<R> {
        let slot = usize::try_from(handle).ok()?;
        let threaded = self.threaded;
        let entry = self.entries.get_mut(slot)?;
        let mut endpoint = match core::mem::replace(entry, Entry::InUse) {
            Entry::Held(endpoint) if !(threaded && endpoint.is_busy()) => endpoint,
            other => {
                *entry = other;
                return None;
            }
        };
        let result = f(&mut *endpoint, self);
        self.entries[slot] = Entry::Held(endpoint);
        Some(result)
    }

    /// The endpoint named `handle`, to look at.
    pub fn get(&self, handle: u32) -> Option<&dyn Proxied> {
        match self.entries.get(usize::try_from(handle).ok()?)? {
            Entry::Held(endpoint) if !(self.threaded && endpoint.is_busy()) => Some(&**endpoint),
            Entry::Held(_) | Entry::Free | Entry::InUse => None,
        }
    }

    /// The endpoint named `handle`, for an operation that needs nothing else of the table (a short message).
    #[inline]
    pub fn get_mut(&mut self, handle: u32) -> Option<&mut (dyn Proxied + 'static)> {
        let threaded = self.threaded;
        match self.entries.get_mut(usize::try_from(handle).ok()?)? {
            Entry::Held(endpoint) if !(threaded && endpoint.is_busy()) => Some(&mut **endpoint),
            Entry::Held(_) | Entry::Free | Entry::InUse => None,
        }
    }

    /// Drops the endpoint named `handle` (closing it, as dropping any endpoint does), and the endpoints of a
    /// message it kept for a larger room; `Err(Closed)` if there is none.
    pub fn close(&mut self, handle: u32) -> Result<(), Closed> {
        let slot = usize::try_from(handle).map_err(|_| Closed)?;
        let threaded = self.threaded;
        let entry = self.entries.get_mut(slot).ok_or(Closed)?;
        let mut endpoint = match core::mem::replace(entry, Entry::Free) {
            Entry::Held(endpoint) if !(threaded && endpoint.is_busy()) => endpoint,
            other => {
                *entry = other;
                return Err(Closed);
            }
        };
        for kept in endpoint.take_pending_handles() {
            let _ = self.close(kept);
        }
        drop(endpoint);
        Ok(())
    }

    /// How many endpoints are held.
    pub fn len(&self) -> usize {
        self.entries.iter().filter(|entry| !matches!(entry, Entry::Free)).count()
    }

    /// Whether no endpoint is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every endpoint (the owner is dead: the platform's records close the sides).
    pub fn abandon(self) {
        for entry in self.entries {
            if let Entry::Held(endpoint) = entry {
                endpoint.abandon();
            }
        }
    }
}

impl Endpoints for HandleTable {
    fn put(&mut self, endpoint: Held) -> Result<u32, WireError> {
        // Slot 0 is the startup endpoint's, whether or not there is one.
        if self.entries.is_empty() {
            self.entries.try_reserve(2).map_err(|_| WireError::OutOfMemory)?;
            self.entries.push(Entry::Free);
        }
        let slot = match self.entries.iter().skip(1).position(|entry| matches!(entry, Entry::Free)) {
            Some(free) => free + 1,
            None if self.entries.len() <= self.limit => {
                self.entries.try_reserve(1).map_err(|_| WireError::OutOfMemory)?;
                self.entries.push(Entry::Free);
                self.entries.len() - 1
            }
            None => {
                // Nobody will hold it: dropping it closes it, as a receiver that drops what it got.
                drop(endpoint);
                return Err(WireError::TooManyHandles);
            }
        };
        self.entries[slot] = Entry::Held(endpoint);
        u32::try_from(slot).map_err(|_| WireError::TooManyHandles)
    }

    fn take_as(&mut self, handle: u32, expected: TypeId) -> Result<Held, WireError> {
        let slot = usize::try_from(handle).map_err(|_| WireError::BadHandle)?;
        let threaded = self.threaded;
        let entry = self.entries.get_mut(slot).ok_or(WireError::BadHandle)?;
        // An endpoint with a message kept for it does not move: the SIP receives that first.
        match entry {
            Entry::Held(endpoint)
                if endpoint.endpoint_type() == expected && !(threaded && endpoint.is_busy()) && endpoint.detach() =>
            {
                match core::mem::replace(entry, Entry::Free) {
                    Entry::Held(endpoint) => Ok(endpoint),
                    _ => Err(WireError::BadHandle),
                }
            }
            _ => Err(WireError::BadHandle),
        }
    }

    fn discard(&mut self, handle: u32) {
        let _ = self.close(handle);
    }
}
