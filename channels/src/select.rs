//! `select`: wait on several endpoints at once and take the first message (Sing#'s `switch receive`).
//!
//! [`select2`] and [`select3`] take endpoints of any contracts and states and return a typed result naming the one
//! that fired, with the others handed back unchanged; [`select_vec`] serves many endpoints of one type, and
//! [`select_with_vec`] one endpoint plus many of one type (a server's listener and its clients), with a future
//! twin for async SIPs, [`select_with_vec_async`], that registers its task's token in every ring instead of
//! parking (docs/thread-models.md).
//!
//! Invariants: a select returns as soon as one endpoint has a message or a closed peer, and blocks (through the
//! platform hook) only when none has. Fairness: the polling order rotates with the number of messages the
//! endpoints have received so far, so an endpoint that is always ready cannot starve another — without any
//! state shared between threads or cores.

use crate::endpoint::{Closed, Internal, Receive};
use crate::raw::{Readiness, TryRecvError, block_on, register_all, unregister_all};
use alloc::vec::Vec;

/// Which of two endpoints fired; the other comes back unchanged.
#[derive(Debug)]
pub enum Select2<A: Receive, B: Receive> {
    /// The first endpoint received (or found its peer closed).
    First(Result<A::Message, Closed>, B),
    /// The second endpoint received (or found its peer closed).
    Second(A, Result<B::Message, Closed>),
}

/// Which of three endpoints fired; the others come back unchanged.
#[derive(Debug)]
pub enum Select3<A: Receive, B: Receive, C: Receive> {
    /// The first endpoint fired.
    First(Result<A::Message, Closed>, B, C),
    /// The second endpoint fired.
    Second(A, Result<B::Message, Closed>, C),
    /// The third endpoint fired.
    Third(A, B, Result<C::Message, Closed>),
}

/// The endpoint's transport, seen by the runtime.
fn transport<E: Receive>(endpoint: &E) -> &crate::raw::RawEndpoint<E::Tx, E::Rx> {
    endpoint.__raw_ref(Internal::new())
}

/// Takes a message or a close from `endpoint` if one is there.
fn poll<E: Receive>(endpoint: &mut E) -> Option<Result<E::Rx, Closed>> {
    match endpoint.__raw(Internal::new()).try_recv() {
        Ok(message) => Some(Ok(message)),
        Err(TryRecvError::Closed) => Some(Err(Closed)),
        Err(TryRecvError::Empty) => None,
    }
}

/// Types what `poll` took.
fn finish<E: Receive>(endpoint: E, taken: Result<E::Rx, Closed>) -> Result<E::Message, Closed> {
    endpoint.__decode(taken?, Internal::new())
}

/// Waits until `a` or `b` has a message (or a closed peer) and takes it.
pub fn select2<A: Receive, B: Receive>(mut a: A, mut b: B) -> Select2<A, B> {
    loop {
        let start = transport(&a).consumed().wrapping_add(transport(&b).consumed());
        for turn in 0..2 {
            if (start.wrapping_add(turn)) % 2 == 0 {
                if let Some(taken) = poll(&mut a) {
                    return Select2::First(finish(a, taken), b);
                }
            } else if let Some(taken) = poll(&mut b) {
                return Select2::Second(a, finish(b, taken));
            }
        }
        block_on(&[transport(&a).readiness(), transport(&b).readiness()]);
    }
}

/// Waits until `a`, `b` or `c` has a message (or a closed peer) and takes it.
pub fn select3<A: Receive, B: Receive, C: Receive>(mut a: A, mut b: B, mut c: C) -> Select3<A, B, C> {
    loop {
        let start =
            transport(&a).consumed().wrapping_add(transport(&b).consumed()).wrapping_add(transport(&c).consumed());
        for turn in 0..3 {
            match start.wrapping_add(turn) % 3 {
                0 => {
                    if let Some(taken) = poll(&mut a) {
                        return Select3::First(finish(a, taken), b, c);
                    }
                }
                1 => {
                    if let Some(taken) = poll(&mut b) {
                        return Select3::Second(a, finish(b, taken), c);
                    }
                }
                _ => {
                    if let Some(taken) = poll(&mut c) {
                        return Select3::Third(a, b, finish(c, taken));
                    }
                }
            }
        }
        block_on(&[transport(&a).readiness(), transport(&b).readiness(), transport(&c).readiness()]);
    }
}

/// Waits until one of `endpoints` has a message (or a closed peer), removes that endpoint from the vector and
/// returns its former index with what it received. `None` if the vector is empty.
pub fn select_vec<E: Receive>(endpoints: &mut Vec<E>) -> Option<(usize, Result<E::Message, Closed>)> {
    if endpoints.is_empty() {
        return None;
    }
    loop {
        let count = endpoints.len();
        let start = endpoints.iter().fold(0usize, |sum, e| sum.wrapping_add(transport(e).consumed()));
        for turn in 0..count {
            let index = start.wrapping_add(turn) % count;
            if let Some(taken) = poll(&mut endpoints[index]) {
                let endpoint = endpoints.remove(index);
                return Some((index, finish(endpoint, taken)));
            }
        }
        let sources: Vec<&dyn Readiness> = endpoints.iter().map(|e| transport(e).readiness()).collect();
        block_on(&sources);
    }
}

/// What [`select_with_vec`] took.
#[derive(Debug)]
pub enum SelectWithVec<A: Receive, E: Receive> {
    /// The single endpoint fired.
    First(Result<A::Message, Closed>),
    /// Member `index` of the vector fired and was removed from it; the single endpoint comes back.
    Member(A, usize, Result<E::Message, Closed>),
}

/// Waits until `first` or one of `endpoints` has a message (or a closed peer) and takes it: a server's shape,
/// one endpoint where new clients arrive and one per client. A member that fires is removed from the vector.
pub fn select_with_vec<A: Receive, E: Receive>(mut first: A, endpoints: &mut Vec<E>) -> SelectWithVec<A, E> {
    loop {
        first = match try_select_with_vec(first, endpoints) {
            Ok(fired) => return fired,
            Err(first) => first,
        };
        let mut sources: Vec<&dyn Readiness> = Vec::with_capacity(endpoints.len() + 1);
        sources.extend(sources_of(&first, endpoints));
        block_on(&sources);
    }
}

/// One round of [`select_with_vec`]'s polls, in its rotating order: what fired, or `first` back.
fn try_select_with_vec<A: Receive, E: Receive>(mut first: A, endpoints: &mut Vec<E>) -> Result<SelectWithVec<A, E>, A> {
    let count = endpoints.len() + 1;
    let start = endpoints.iter().fold(transport(&first).consumed(), |sum, e| sum.wrapping_add(transport(e).consumed()));
    for turn in 0..count {
        let index = start.wrapping_add(turn) % count;
        if index == 0 {
            if let Some(taken) = poll(&mut first) {
                return Ok(SelectWithVec::First(finish(first, taken)));
            }
        } else if let Some(taken) = poll(&mut endpoints[index - 1]) {
            let endpoint = endpoints.remove(index - 1);
            return Ok(SelectWithVec::Member(first, index - 1, finish(endpoint, taken)));
        }
    }
    Err(first)
}

/// What a select on `first` and `endpoints` waits on.
fn sources_of<'a, A: Receive, E: Receive>(
    first: &'a A,
    endpoints: &'a [E],
) -> impl Iterator<Item = &'a dyn Readiness> + Clone {
    core::iter::once(transport(first).readiness()).chain(endpoints.iter().map(|e| transport(e).readiness()))
}

/// [`select_with_vec`] as a future: what fired, without a thread of its own (an async SIP's server loop).
pub fn select_with_vec_async<A: Receive, E: Receive>(first: A, endpoints: &mut Vec<E>) -> SelectWithVecAsync<'_, A, E> {
    SelectWithVecAsync { first: Some(first), endpoints, registered: false }
}

/// The future of [`select_with_vec_async`]: polls as [`select_with_vec`] does and otherwise leaves its task's
/// token in every ring (through the blocking select's own register-then-look protocol), so the first message or
/// close wakes it. The vector is borrowed until the select ends, so the rings it registered in stay the ones it
/// takes its token out of. Polled again after it completed, it answers `First(Err(Closed))`.
#[must_use = "a select does nothing unless awaited"]
pub struct SelectWithVecAsync<'a, A: Receive, E: Receive> {
    /// The single endpoint, until the select ends.
    first: Option<A>,
    endpoints: &'a mut Vec<E>,
    /// The task's token is in every ring's wait cell.
    registered: bool,
}

// Nothing is pinned through it: the endpoints move only when the select ends.
impl<A: Receive, E: Receive> Unpin for SelectWithVecAsync<'_, A, E> {}

impl<A: Receive, E: Receive> core::future::Future for SelectWithVecAsync<'_, A, E> {
    type Output = SelectWithVec<A, E>;

    fn poll(mut self: core::pin::Pin<&mut Self>, cx: &mut core::task::Context<'_>) -> core::task::Poll<Self::Output> {
        let this = &mut *self;
        loop {
            let Some(mut first) = this.first.take() else {
                return core::task::Poll::Ready(SelectWithVec::First(Err(Closed)));
            };
            if core::mem::take(&mut this.registered) {
                unregister_all(sources_of(&first, this.endpoints));
            }
            first = match try_select_with_vec(first, this.endpoints) {
                Ok(fired) => return core::task::Poll::Ready(fired),
                Err(first) => first,
            };
            let waiting = register_all(sources_of(&first, this.endpoints), cx.waker());
            this.registered = waiting.is_some();
            this.first = Some(first);
            if waiting != Some(false) {
                return core::task::Poll::Pending;
            }
        }
    }
}

impl<A: Receive, E: Receive> Drop for SelectWithVecAsync<'_, A, E> {
    fn drop(&mut self) {
        // Dropped while it waits: its token comes out of every ring.
        if self.registered
            && let Some(first) = &self.first
        {
            unregister_all(sources_of(first, self.endpoints));
        }
    }
}
