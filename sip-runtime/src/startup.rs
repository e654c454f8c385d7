//! [`Startup`]: the value a parent hands the SIP it spawns (typically its first endpoint), the way Singularity
//! hands a new process its initial endpoints.
//!
//! The value travels like any message: the parent sends it, type-erased ([`ExAny`]), into a one-message
//! channel and hands the kernel the channel's receiving end; the kernel moves only that end to the child (one
//! record, checked), and the child receives the value, which re-records everything in it as the child's, in
//! the child. So the kernel never walks a process's data, and a value the child never takes is freed with the
//! channel when the child ends. A failed spawn gives the end back to the parent, which takes the value back
//! out: it is never lost.
//!
//! Invariant: a `Startup` is the receiving end of a channel with exactly one message queued (until taken).

use channels::raw::{RawEndpoint, try_pair};
use channels::{AllocError, ExAny, Exchangeable};

/// A value on its way to a new SIP: the receiving end of the channel that carries it.
#[derive(Debug)]
pub struct Startup(RawEndpoint<(), ExAny>);

impl Startup {
    /// Puts `value` on its way; gives it back if the exchange (or the caller's quota) cannot hold it.
    pub fn new<E: Exchangeable + Send>(value: E) -> Result<Self, (E, AllocError)> {
        let (mut sender, receiver) = match try_pair::<ExAny, ()>(1, 0) {
            Ok(pair) => pair,
            Err(error) => return Err((value, error)),
        };
        let any = ExAny::new(value)?;
        match sender.try_send(any) {
            Ok(()) => Ok(Startup(receiver)),
            // A fresh channel with room for one message, whose receiver we hold: this cannot happen, and if it
            // did the value would come back here.
            Err(refused) => match refused.into_inner().downcast::<E>() {
                Ok(value) => Err((value, AllocError)),
                Err(_) => unreachable!("an ExAny made of an E is an E"),
            },
        }
    }

    /// The value, if it is an `E` (anything else is dropped, and so is the value of an `E` taken twice).
    pub fn take<E: Exchangeable + Send>(self) -> Option<E> {
        let mut receiver = self.0;
        receiver.try_recv().ok()?.downcast().ok()
    }

    /// The channel end itself: what the kernel moves to the child.
    pub fn end(&self) -> &RawEndpoint<(), ExAny> {
        &self.0
    }

    /// The channel end, for the kernel to hold for a ring-3 child (which takes the value through calls).
    pub fn into_end(self) -> RawEndpoint<(), ExAny> {
        self.0
    }

    /// The startup of a ring-3 SIP: its first endpoint, `end` (the ring-3 runtime makes it from its handle).
    pub fn from_end(end: RawEndpoint<(), ExAny>) -> Self {
        Startup(end)
    }
}
