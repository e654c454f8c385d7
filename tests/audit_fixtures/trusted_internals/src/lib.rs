//! Names the plumbing of the trusted crates (rule 5); never built.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use channels::platform::Platform;
use channels::{ExBox, ledger::Ledger, trusted};

pub fn f(endpoint: &mut impl channels::Receive, value: &ExBox<u8>) {
    let _ = (Platform::default, Ledger::new, trusted::give::<u8>);
    let _ = <ExBox<u8> as channels::Receive>::__raw;
    value.__visit(None);
    let _ = <u8 as channels::Exchangeable>::__TRACKED;
    let _ = endpoint;
}
pub use sip_runtime::__private;
