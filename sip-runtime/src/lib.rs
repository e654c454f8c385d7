//! The boundary between a software-isolated process (SIP) and the kernel: everything a service sees.
//!
//! A service registers itself with [`sip!`] (a [`Manifest`] placed in the [`MANIFESTS`] link-time slice: no
//! list of services in code; the kernel only has to link the crate, docs/services.md). When the kernel spawns
//! it, its entry function receives a [`SipContext`]: the SIP's identity and arguments and the [`KernelAbi`]
//! object through which it reaches the kernel (time, yield, sleep, spawn, exit, logging, process control).
//! Invariant 7: that object is the *only* path to the kernel, so the same service code runs in ring 0 (direct
//! calls) or ring 3 (a `syscall` stub implementing the same trait).
//!
//! Not here: the kernel side of the ABI (in `kernel/`), contracts (crate `contracts`), channel transport
//! (crate `channels`), and authority: a manifest *asks* for capabilities and limits, the kernel's policy
//! decides what it gets.
//!
//! Invariants: manifests are `'static` constants checked by the kernel at spawn (`ManifestError`); every ABI
//! call takes and returns plain data (no references into kernel memory outlive a call), so a SIP's memory
//! never points into another's. `unsafe` is denied except in two internal blocks, both about a new thread's
//! closure, which crosses the ABI as a number (`context::run_boxed` takes it back; `SipContext::spawn_thread`
//! drops it if no thread started); each states why it holds.
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

mod abi;
mod context;
pub mod continuations;
pub mod kernel_requests;
mod manifest;
mod names;
pub mod ring3_calls;
mod short_name;

pub use abi::{
    Broadcast, ChannelInfo, CpuInfo, EndHolder, EventCounts, ExitStatus, KernelAbi, KillError, LogFilter, LogLevel,
    MAX_ARGS_LEN, MAX_LOG_LINE, MemoryInfo, NameInfo, NameRegistryError, NameServiceClient, NameServiceServer,
    NotPermitted, ProbeReport, ProcessInfo, ProcessState, Protection, ReplicaInfo, RestartError, SipId, SpawnError,
};
pub use context::SipContext;
pub use manifest::{
    AsyncMain, Capability, DEFAULT_EXCHANGE_QUOTA, DEFAULT_THREADS, Entry, MANIFESTS, Manifest, ManifestError,
    Resource, RestartPolicy,
};
pub use names::accept;
pub use short_name::{SHORT_NAME_LEN, ShortName};

mod startup;
pub use startup::Startup;

/// Re-exports the generated registration code needs; services name them only through [`sip!`].
#[doc(hidden)]
pub mod __private {
    pub use alloc::boxed::Box;
    pub use linkme;
}

/// Registers a SIP: `sip! { name: "echo", entry: main, exports: ["Echo"], imports: [], heap_quota: 1 << 20,
/// stack_size: 64 * 1024, restart: RestartPolicy::Never, capabilities: [] }` (`entry: async main` for an
/// `async fn main(ctx: SipContext)`: the SIP runs as a continuation, [`Entry::Async`]), optionally followed by
/// `exchange_quota: BYTES` (default [`DEFAULT_EXCHANGE_QUOTA`]), `threads: N` (default [`DEFAULT_THREADS`])
/// and `protection: Protection::Ring3Own` (the mode a plain `spawn NAME` uses; default `Protection::Type`).
/// Capabilities and limits are requests: the kernel's policy grants them or refuses the spawn.
///
/// Expands to the manifest placed in [`MANIFESTS`]; the service crate itself declares no `static`.
#[macro_export]
macro_rules! sip {
    (name: $name:literal, entry: async $entry:path, $($rest:tt)*) => {
        $crate::__manifest! {
            name: $name,
            entry: $crate::Entry::Async(|ctx| $crate::__private::Box::pin($entry(ctx))),
            $($rest)*
        }
    };
    (name: $name:literal, entry: $entry:path, $($rest:tt)*) => {
        $crate::__manifest! { name: $name, entry: $crate::Entry::Thread($entry), $($rest)* }
    };
}

/// The manifest [`sip!`] places, its entry made.
#[doc(hidden)]
#[macro_export]
macro_rules! __manifest {
    (
        name: $name:literal,
        entry: $entry:expr,
        exports: [$($export:literal),* $(,)?],
        imports: [$($import:literal),* $(,)?],
        heap_quota: $quota:expr,
        stack_size: $stack:expr,
        restart: $restart:expr,
        capabilities: [$($cap:expr),* $(,)?]
        $(, exchange_quota: $exchange:expr)?
        $(, threads: $threads:expr)?
        $(, protection: $protection:expr)? $(,)?
    ) => {
        const _: () = {
            #[$crate::__private::linkme::distributed_slice($crate::MANIFESTS)]
            #[linkme(crate = $crate::__private::linkme)]
            static MANIFEST: $crate::Manifest = $crate::Manifest {
                name: $name,
                entry: $entry,
                exports: &[$($export),*],
                imports: &[$($import),*],
                heap_quota: $quota,
                stack_size: $stack,
                restart: $restart,
                capabilities: &[$($cap),*],
                crate_name: env!("CARGO_PKG_NAME"),
                exchange_quota: $crate::__or!($($exchange)?, $crate::DEFAULT_EXCHANGE_QUOTA),
                threads: $crate::__or!($($threads)?, $crate::DEFAULT_THREADS),
                protection: $crate::__or!($($protection)?, $crate::Protection::Type),
            };
        };
    };
}

/// The first expression if there is one, else the second (for `sip!`'s optional fields).
#[doc(hidden)]
#[macro_export]
macro_rules! __or {
    (, $default:expr) => {
        $default
    };
    ($value:expr, $default:expr) => {
        $value
    };
}

/// Logs at info level through the context: `info!(ctx, "served {} requests", n)`.
#[macro_export]
macro_rules! info {
    ($ctx:expr, $($arg:tt)+) => { $ctx.log($crate::LogLevel::Info, format_args!($($arg)+)) };
}

/// Logs at warn level through the context.
#[macro_export]
macro_rules! warn {
    ($ctx:expr, $($arg:tt)+) => { $ctx.log($crate::LogLevel::Warn, format_args!($($arg)+)) };
}

/// Logs at debug level through the context.
#[macro_export]
macro_rules! debug {
    ($ctx:expr, $($arg:tt)+) => { $ctx.log($crate::LogLevel::Debug, format_args!($($arg)+)) };
}
