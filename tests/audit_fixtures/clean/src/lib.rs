//! A service that follows every rule, with the look-alikes that must not be reported: the words static,
//! asm!, extern { } and #[no_mangle] in comments and strings, `'static` lifetimes, `extern crate`,
//! `extern "C" fn` pointer types, ordinary attributes and macros.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod util;

use sip_runtime::{RestartPolicy, SipContext, sip};

/// A constant is not global state: it has no address that two SIPs could share.
const GREETING: &'static str = "no static here, nor asm!(), nor #[no_mangle]";

/// A function pointer type with a foreign ABI declares nothing foreign.
pub type Callback = extern "C" fn(u32) -> u32;

macro_rules! greet {
    ($ctx:expr, $who:expr) => {{
        let who: &'static str = $who;
        sip_runtime::info!($ctx, "{} {}", GREETING, who);
    }};
}

sip! {
    name: "clean",
    entry: main,
    exports: [],
    imports: [],
    heap_quota: 64 * 1024,
    stack_size: 16 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

#[inline]
#[cfg_attr(test, allow(dead_code))]
fn main(ctx: SipContext) {
    greet!(ctx, "world");
    let _ = util::twice(ctx.args().len());
}
