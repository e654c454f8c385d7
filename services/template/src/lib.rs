//! The smallest Plurality service: it logs a greeting with its arguments and exits.
//!
//! To make a new service, copy this crate to `services/NAME`, rename the package and the manifest's `name`,
//! and link the crate into the kernel: one line in `kernel/Cargo.toml` and one in `kernel/src/services.rs`
//! (see docs/services.md). Registration is the `sip!` manifest below, collected at link time: there is no list
//! of services to edit beyond those two lines.
//!
//! Rules every service follows (checked by the isolation audit test): `#![forbid(unsafe_code)]`, no `static`
//! items, no `asm!`, `extern` blocks or linker attributes, dependencies only from the allowlist.
#![no_std]
#![forbid(unsafe_code)]

use sip_runtime::{RestartPolicy, SipContext, sip};

sip! {
    name: "template",
    entry: main,
    exports: [],
    imports: [],
    heap_quota: 64 * 1024,
    stack_size: 16 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

fn main(ctx: SipContext) {
    sip_runtime::info!(ctx, "hello from sip {} (args: '{}')", ctx.id(), ctx.args());
}
