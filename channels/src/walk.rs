//! The walk over everything a value holds in the exchange (blocks and channel sides): what a send, a receive,
//! a drop and a trusted hand-over do to a message, in one loop.
//!
//! A value's `Exchangeable::__visit` reports what it holds inline (an endpoint's side, a buffer's block) and
//! *queues* the contents of the boxes and buffers it holds instead of visiting them; [`Walk::run`] then takes
//! the queue until it is empty. So the stack depth of a walk is bounded by how deeply types nest inline (fixed
//! when the program is compiled), never by the data: a million-node `ExBox` list, or a tree of vectors of
//! vectors a million deep, is walked in a loop. The queue lives on the walking thread's own heap.
//!
//! Every block and endpoint visited is one call of the platform's exchange, which checks and records it under
//! the ledger's lock (in the kernel, one lock for all cores): messages that hold exchange-heap data pay for
//! that lock on every send and receive, while plain data (a message whose `__is_tracked` is false) is never
//! walked.
//!
//! Not here: the rules (the platform's records check every move), and memory (the platform's exchange).
//!
//! Invariants: a [`Walk`] can only be made inside this crate, so only this crate's code starts walks and
//! `__visit` (which takes one) cannot be called from outside; a walk never runs a `Drop` or any code of the
//! value's type beyond the `__visit` this crate or the trusted macros (the derive, `contract!`) wrote; freeing
//! visits a block's contents before it frees the block.

use crate::exchangeable::Exchangeable;
use crate::ledger::{Item, RingId, Side};
use crate::platform::{self, Exchange, Owner};
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::NonNull;

/// What a walk does to each thing the value holds.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "ring3", allow(dead_code, reason = "ring-3 messages cross by copy, not by ring"))]
pub(crate) enum Action {
    /// A send: everything travels in the ring now.
    Send(RingId),
    /// A receive: everything is the receiver's now (and charged to it).
    Receive(RingId),
    /// A drop: free every block, close every endpoint.
    Free,
    /// A trusted hand-over from one owner to another.
    Give { from: Owner, to: Owner },
    /// Sealing into the capsule at this address (an `ExAny`'s block): everything is inside it now.
    Seal(NonNull<u8>),
}

/// Visits a box's contents (queued by [`Walk::boxed`]).
type Visit = unsafe fn(NonNull<u8>, &mut Walk<'_>);

/// Visits a buffer's first `len` elements (queued by [`Walk::buffer`]).
type VisitElements = unsafe fn(NonNull<u8>, usize, &mut Walk<'_>);

/// What is still to visit (and, when freeing, to free after).
enum Pending {
    /// A box's contents.
    Boxed(NonNull<u8>, Visit),
    /// A buffer's elements: the buffer, its layout, how many are initialised, and how to visit them.
    Buffer(NonNull<u8>, Layout, usize, VisitElements),
}

/// A walk in progress. Only this crate makes one (module invariants).
pub struct Walk<'a> {
    action: Action,
    exchange: &'a dyn Exchange,
    /// Boxes and buffers whose contents are still to visit (and, when freeing, to free after).
    pending: Vec<Pending>,
    /// A receive took the receiver beyond its quota.
    refused: bool,
}

impl<'a> Walk<'a> {
    fn new(action: Action, exchange: &'a dyn Exchange) -> Self {
        Self { action, exchange, pending: Vec::new(), refused: false }
    }

    /// The value holds the box at `ptr` (a live, initialised `T` in its own block).
    pub(crate) fn boxed<T: Exchangeable>(&mut self, ptr: NonNull<T>) {
        let layout = Layout::new::<T>();
        if layout.size() == 0 {
            // No block, and a zero-sized value holds nothing.
            return;
        }
        match self.action {
            Action::Free if T::__TRACKED => self.pending.push(Pending::Boxed(ptr.cast(), free_boxed::<T>)),
            // SAFETY: the box's block came from this exchange with `Layout::new::<T>()`, the walker's caller
            // owns the value (so the box), and a plain `T` holds nothing else to free.
            Action::Free => unsafe { self.exchange.deallocate(ptr.cast(), layout) },
            _ => {
                self.move_item(Item::Block(ptr.addr().get()));
                if T::__TRACKED {
                    self.pending.push(Pending::Boxed(ptr.cast(), visit_boxed::<T>));
                }
            }
        }
    }

    /// The value holds a buffer at `ptr` of `layout`, whose first `len` elements are initialised.
    pub(crate) fn buffer<T: Exchangeable>(&mut self, ptr: NonNull<T>, layout: Layout, len: usize) {
        if !matches!(self.action, Action::Free) {
            self.move_item(Item::Block(ptr.addr().get()));
        }
        if T::__TRACKED && len != 0 {
            // Queued, not visited here: an element may hold a buffer of its own, and so on as deep as the data.
            self.pending.push(Pending::Buffer(ptr.cast(), layout, len, visit_elements::<T>));
        } else if matches!(self.action, Action::Free) {
            // SAFETY: the buffer came from this exchange with `layout` and the caller owns it; its elements hold
            // nothing to visit and are never dropped.
            unsafe { self.exchange.deallocate(ptr.cast(), layout) };
        }
    }

    /// The value holds a sealed block (an `ExAny`'s) at `block` of `layout`: what is sealed in it travels with
    /// it and is freed with it by the records, never walked.
    pub(crate) fn capsule(&mut self, block: NonNull<u8>, layout: Layout) {
        if layout.size() == 0 {
            return;
        }
        match self.action {
            // SAFETY: the capsule came from this exchange with `layout` and the walker's caller owns it; the
            // records free what is sealed in it.
            Action::Free => unsafe { self.exchange.deallocate(block, layout) },
            _ => self.move_item(Item::Block(block.addr().get())),
        }
    }

    /// The value holds the endpoint named `handle` (the ring-3 build: the kernel keeps the records).
    #[cfg(feature = "ring3")]
    pub(crate) fn endpoint_handle(&mut self, handle: u32) {
        if matches!(self.action, Action::Free) {
            crate::raw::close_handle(handle);
        }
    }

    /// The value holds the endpoint on `side`.
    #[cfg_attr(feature = "ring3", allow(dead_code, reason = "ring-3 endpoints are handles"))]
    pub(crate) fn endpoint(&mut self, side: Side) {
        match self.action {
            #[cfg(not(feature = "ring3"))]
            Action::Free => crate::raw::close_and_release(side),
            #[cfg(feature = "ring3")]
            Action::Free => {}
            _ => self.move_item(Item::Side(side)),
        }
    }

    fn move_item(&mut self, item: Item) {
        match self.action {
            Action::Send(ring) => self.exchange.send(item, ring),
            Action::Receive(ring) => self.refused |= !self.exchange.receive(item, ring),
            Action::Give { from, to } => self.exchange.give(item, from, to),
            Action::Seal(capsule) => self.exchange.seal(item, capsule),
            Action::Free => {}
        }
    }

    /// Takes the queue until it is empty; returns `false` if a receive went beyond the receiver's quota.
    fn run(mut self) -> bool {
        while let Some(pending) = self.pending.pop() {
            match pending {
                // SAFETY: every queued pointer is a live box's block with the matching `visit` (pushed by
                // `boxed`); blocks are freed only by the entry that visits them, so each is visited once, while
                // live.
                Pending::Boxed(ptr, visit) => unsafe { visit(ptr, &mut self) },
                Pending::Buffer(ptr, layout, len, visit) => {
                    // SAFETY: as for boxes: a live buffer (pushed by `buffer`) with `len` initialised elements of
                    // the type `visit` was made for; visited once.
                    unsafe { visit(ptr, len, &mut self) };
                    if matches!(self.action, Action::Free) {
                        // SAFETY: the buffer came from this exchange with `layout` and the walker's caller owns
                        // it; its elements were just visited (their boxes and buffers queued with their addresses,
                        // their endpoints closed), are never dropped, and nothing points into it any more.
                        unsafe { self.exchange.deallocate(ptr, layout) };
                    }
                }
            }
        }
        !self.refused
    }
}

/// # Safety
/// `ptr` is the live block of an `ExBox<T>`.
unsafe fn visit_boxed<T: Exchangeable>(ptr: NonNull<u8>, walk: &mut Walk<'_>) {
    // SAFETY: per the caller, an initialised `T`.
    unsafe { ptr.cast::<T>().as_ref() }.__visit(walk);
}

/// # Safety
/// `ptr` is a live buffer whose first `len` elements are initialised `T`s.
unsafe fn visit_elements<T: Exchangeable>(ptr: NonNull<u8>, len: usize, walk: &mut Walk<'_>) {
    for index in 0..len {
        // SAFETY: per the caller, an initialised element, live while this runs.
        unsafe { (*ptr.cast::<T>().as_ptr().add(index)).__visit(walk) };
    }
}

/// # Safety
/// `ptr` is the live block of an `ExBox<T>` that is being freed and never used again.
unsafe fn free_boxed<T: Exchangeable>(ptr: NonNull<u8>, walk: &mut Walk<'_>) {
    // SAFETY: per the caller; the contents are visited (queued, closed) before the block goes.
    unsafe { visit_boxed::<T>(ptr, walk) };
    // SAFETY: the block came from this exchange with `Layout::new::<T>()`; the value is never dropped.
    unsafe { walk.exchange.deallocate(ptr, Layout::new::<T>()) };
}

/// Walks everything `value` holds with `action`; `false` if a receive went beyond the receiver's quota.
pub(crate) fn walk<T: Exchangeable>(value: &T, action: Action) -> bool {
    let mut walk = Walk::new(action, platform::current().exchange);
    value.__visit(&mut walk);
    walk.run()
}

impl Walk<'_> {
    /// Frees a capsule (an `ExAny`'s block of `layout`) and everything sealed in it.
    pub(crate) fn free_capsule(block: NonNull<u8>, layout: Layout) {
        Walk::new(Action::Free, platform::current().exchange).capsule(block, layout);
    }
}

/// Walks the box at `ptr` as if `ExBox<T>` held it: what dropping (or freeing by type-erased handle) does.
///
/// # Safety
/// `ptr` is the live block of an `ExBox<T>`, owned by the caller, never used again if `action` is `Free`.
pub(crate) unsafe fn walk_boxed<T: Exchangeable>(ptr: NonNull<T>, action: Action) -> bool {
    let mut walk = Walk::new(action, platform::current().exchange);
    walk.boxed(ptr);
    walk.run()
}
