//! SIP manifests: what a service is, what it asks for, and how it is supervised.
//!
//! A manifest *asks*: its capabilities and limits are requests that the kernel's policy grants or refuses
//! (`kernel/src/sip/policy.rs`); declaring a capability here gives nothing by itself.

use crate::ShortName;
use alloc::boxed::Box;
use contracts::Exchangeable;
use core::future::Future;
use core::pin::Pin;

/// Every manifest linked into the kernel, one per service crate.
#[linkme::distributed_slice]
pub static MANIFESTS: [Manifest];

/// Upper bound of `heap_quota` the kernel accepts (a SIP's arena slot).
pub const MAX_HEAP_QUOTA: usize = 64 << 20;
/// Upper bound of `stack_size`: a 1 MiB stack slot less its 4 KiB guard page and the 8 KiB kernel reserve that
/// the kernel adds below every SIP thread's stack for its own code (`KERNEL_RESERVE`, kernel/src/memory/stacks.rs).
pub const MAX_STACK_SIZE: usize = 1012 * 1024;
/// Smallest `stack_size` the kernel accepts: less cannot hold the entry frames.
pub const MIN_STACK_SIZE: usize = 8 * 1024;
/// The exchange quota a manifest asks for when it does not say (`sip!`'s `exchange_quota`).
pub const DEFAULT_EXCHANGE_QUOTA: usize = 256 * 1024;
/// The thread limit a manifest asks for when it does not say (`sip!`'s `threads`).
pub const DEFAULT_THREADS: usize = 4;

/// A service's declaration, checked by the kernel before anything of the SIP is created.
#[derive(Debug)]
pub struct Manifest {
    /// Name used by `spawn NAME`; unique among manifests.
    pub name: &'static str,
    /// How its code is entered: a function on its first thread, or an `async fn` polled as a continuation.
    /// Returning (or the future's completion) ends the SIP with [`ExitStatus::Success`](crate::ExitStatus).
    pub entry: Entry,
    /// Contracts it serves (by `ContractInfo::name`).
    pub exports: &'static [&'static str],
    /// Contracts it uses.
    pub imports: &'static [&'static str],
    /// Most bytes its heap arena may hold.
    pub heap_quota: usize,
    /// Bytes of each of its threads' stacks (the first, and every one `spawn_thread` starts).
    pub stack_size: usize,
    /// What happens when it fails.
    pub restart: RestartPolicy,
    /// Privileged operations it asks to be granted (the kernel's policy decides).
    pub capabilities: &'static [Capability],
    /// The crate that declared it: the policy knows services by name *and* crate (and the audit counts
    /// manifests against service crates).
    pub crate_name: &'static str,
    /// Most exchange-heap bytes it asks to be charged as payer (what it allocates or receives, the messages
    /// it sent until they are received, the channels it makes).
    pub exchange_quota: usize,
    /// Most threads it asks to run at once.
    pub threads: usize,
    /// How it runs when it is spawned without a mode of its own (`spawn NAME` rather than `spawn NAME
    /// --protection MODE`): [`Protection::Type`](crate::Protection) unless the service asks for ring 3, where it
    /// must be built into the ring-3 image.
    pub protection: crate::Protection,
}

/// The future an async SIP's entry returns: everything the SIP keeps while it waits (docs/thread-models.md).
pub type AsyncMain = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How a SIP's code is entered: the two kernel thread models of docs/thread-models.md.
#[derive(Debug, Clone, Copy)]
pub enum Entry {
    /// `fn main(ctx)`, run on the SIP's first thread, a stack of its own: a blocked SIP keeps its stack.
    Thread(fn(crate::SipContext)),
    /// `async fn main(ctx)`: the SIP is a continuation, polled by its core's runner on the runner's stack. A
    /// blocked async SIP holds no stack, only its future; its receives are `recv_async().await`.
    Async(fn(crate::SipContext) -> AsyncMain),
}

impl Entry {
    /// Whether the SIP runs as a continuation.
    pub fn is_async(&self) -> bool {
        matches!(self, Self::Async(_))
    }
}

/// Supervision, as in Erlang/OTP or a service manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// A failed SIP stays dead.
    Never,
    /// A SIP that fails (panic, fault, quota, kill is not a failure) is restarted after `backoff_ms`, doubling
    /// each time, at most `max_restarts` times.
    OnFailure {
        /// Restarts allowed before giving up.
        max_restarts: u32,
        /// Delay before the first restart.
        backoff_ms: u64,
    },
}

/// A privileged operation a SIP may be granted by its manifest.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Spawn and kill other SIPs.
    ProcessControl,
    /// Read system-wide state: processes, memory, cores, channels, replicas.
    SystemInfo,
    /// Change the log level, run self-tests, shut the machine down, panic the kernel on purpose.
    SystemAdmin,
    /// Write to the system console directly.
    Console,
    /// Change the replicated name registry for other SIPs (the name service only).
    NameRegistry,
}

/// Why the kernel refused a manifest. Plain data (names by value), so it crosses the ABI to a ring-3 SIP too.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestError {
    /// The name is empty or longer than 32 bytes or not `[a-z0-9_-]`.
    BadName,
    /// A contract it exports or imports is not a known contract.
    UnknownContract(ShortName),
    /// `heap_quota` is 0 or above [`MAX_HEAP_QUOTA`].
    QuotaOutOfRange(usize),
    /// `stack_size` is outside [`MIN_STACK_SIZE`]..=[`MAX_STACK_SIZE`].
    StackOutOfRange(usize),
    /// Two manifests share a name.
    DuplicateName(ShortName),
    /// It asks for a capability the kernel's policy does not grant this service.
    NotGranted(Capability),
    /// It asks for more of a resource than the kernel's policy allows this service.
    BeyondPolicy {
        /// Which resource.
        what: Resource,
        /// What it asks for.
        asked: usize,
        /// What the policy allows.
        allowed: usize,
    },
    /// `threads` is 0.
    NoThreads,
}

/// A resource a manifest asks for and the kernel's policy bounds.
#[derive(Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `heap_quota`.
    HeapQuota,
    /// `exchange_quota`.
    ExchangeQuota,
    /// `threads`.
    Threads,
    /// `stack_size`.
    StackSize,
}

impl core::fmt::Display for Resource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::HeapQuota => "heap quota",
            Self::ExchangeQuota => "exchange quota",
            Self::Threads => "thread count",
            Self::StackSize => "stack size",
        })
    }
}

impl core::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadName => f.write_str("bad service name (1-32 bytes of a-z, 0-9, '-', '_')"),
            Self::UnknownContract(c) => write!(f, "unknown contract '{c}'"),
            Self::QuotaOutOfRange(q) => write!(f, "heap quota {q} bytes is outside 1..={MAX_HEAP_QUOTA}"),
            Self::StackOutOfRange(s) => {
                write!(f, "stack size {s} bytes is outside {MIN_STACK_SIZE}..={MAX_STACK_SIZE}")
            }
            Self::DuplicateName(n) => write!(f, "two services are named '{n}'"),
            Self::NotGranted(c) => write!(f, "asks for {c:?}, which the kernel's policy does not grant it"),
            Self::BeyondPolicy { what, asked, allowed } => {
                write!(f, "asks for a {what} of {asked}, beyond the {allowed} the kernel's policy allows it")
            }
            Self::NoThreads => f.write_str("asks for 0 threads"),
        }
    }
}

impl Manifest {
    /// Checks the manifest against the limits and the known contracts (`known` lists contract names).
    pub fn check(&self, known: &[&str]) -> Result<(), ManifestError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 32
            && self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(ManifestError::BadName);
        }
        if let Some(c) = self.exports.iter().chain(self.imports).find(|c| !known.contains(c)) {
            return Err(ManifestError::UnknownContract(ShortName::new(c)));
        }
        if self.heap_quota == 0 || self.heap_quota > MAX_HEAP_QUOTA {
            return Err(ManifestError::QuotaOutOfRange(self.heap_quota));
        }
        if !(MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&self.stack_size) {
            return Err(ManifestError::StackOutOfRange(self.stack_size));
        }
        if self.threads == 0 {
            return Err(ManifestError::NoThreads);
        }
        Ok(())
    }

    /// Whether the manifest asks for `capability` (what it *has* is the kernel's policy's answer).
    pub fn asks_for(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }
}

#[cfg(test)]
#[allow(unsafe_code, reason = "the test manifests' `sip!` places them with linkme's `link_section`")]
mod tests {
    use super::*;

    fn entry(_: crate::SipContext) {}

    fn manifest() -> Manifest {
        Manifest {
            name: "echo",
            entry: Entry::Thread(entry),
            exports: &["Echo"],
            imports: &[],
            heap_quota: 1 << 20,
            stack_size: 64 * 1024,
            restart: RestartPolicy::Never,
            capabilities: &[],
            crate_name: "echo",
            exchange_quota: DEFAULT_EXCHANGE_QUOTA,
            threads: DEFAULT_THREADS,
            protection: crate::Protection::Type,
        }
    }

    crate::sip! {
        name: "test-ring-0",
        entry: entry,
        exports: [],
        imports: [],
        heap_quota: 4096,
        stack_size: 16 * 1024,
        restart: RestartPolicy::Never,
        capabilities: [],
    }

    crate::sip! {
        name: "test-ring-3",
        entry: entry,
        exports: [],
        imports: [],
        heap_quota: 4096,
        stack_size: 16 * 1024,
        restart: RestartPolicy::Never,
        capabilities: [],
        threads: 1,
        protection: crate::Protection::Ring3Own,
    }

    async fn async_entry(_: crate::SipContext) {}

    crate::sip! {
        name: "test-async",
        entry: async async_entry,
        exports: [],
        imports: [],
        heap_quota: 4096,
        stack_size: 16 * 1024,
        restart: RestartPolicy::Never,
        capabilities: [],
    }

    #[test]
    fn sip_says_which_thread_model_an_entry_has() {
        let entry = |name: &str| MANIFESTS.iter().find(|m| m.name == name).map(|m| m.entry.is_async());
        assert_eq!(entry("test-async"), Some(true), "`entry: async f` is a continuation");
        assert_eq!(entry("test-ring-0"), Some(false), "`entry: f` runs on a thread");
    }

    #[test]
    fn sip_declares_its_default_protection() {
        let mode = |name: &str| MANIFESTS.iter().find(|m| m.name == name).map(|m| m.protection);
        assert_eq!(mode("test-ring-0"), Some(crate::Protection::Type), "the default is type");
        assert_eq!(mode("test-ring-3"), Some(crate::Protection::Ring3Own), "a declared mode is kept");
    }

    #[test]
    fn a_good_manifest_passes() {
        assert_eq!(manifest().check(&["Echo"]), Ok(()));
    }

    #[test]
    fn each_rule_is_enforced() {
        let bad_name = Manifest { name: "Echo!", ..manifest() };
        assert_eq!(bad_name.check(&["Echo"]), Err(ManifestError::BadName));
        assert_eq!(manifest().check(&["Kv"]), Err(ManifestError::UnknownContract(ShortName::new("Echo"))));
        let quota = Manifest { heap_quota: MAX_HEAP_QUOTA + 1, ..manifest() };
        assert_eq!(quota.check(&["Echo"]), Err(ManifestError::QuotaOutOfRange(MAX_HEAP_QUOTA + 1)));
        let stack = Manifest { stack_size: 100, ..manifest() };
        assert_eq!(stack.check(&["Echo"]), Err(ManifestError::StackOutOfRange(100)));
    }

    #[test]
    fn capabilities_are_asked_for_only_when_listed() {
        let m = Manifest { capabilities: &[Capability::SystemInfo], ..manifest() };
        assert!(m.asks_for(Capability::SystemInfo));
        assert!(!m.asks_for(Capability::ProcessControl));
        assert_eq!(Manifest { threads: 0, ..manifest() }.check(&["Echo"]), Err(ManifestError::NoThreads));
    }
}
