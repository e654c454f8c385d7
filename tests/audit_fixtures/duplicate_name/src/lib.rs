//! A second service that calls itself "clean" (rule 6); never built.
#![no_std]
#![forbid(unsafe_code)]

use sip_runtime::{RestartPolicy, SipContext, sip};

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

fn main(_: SipContext) {}
