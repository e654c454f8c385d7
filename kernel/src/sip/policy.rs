//! The kernel's policy: what each service may do and consume. Authority comes from here, never from the crate
//! that wants it (DESIGN.md invariant 9): a manifest *asks* for capabilities and limits, and may ask for less
//! than its service's entry grants, never more.
//!
//! A service is named by its manifest's name *and* the crate that declares it (`Manifest::crate_name`, set by
//! `sip!` from the crate's package name, which the workspace keeps unique; a manifest cannot be written any
//! other way without a `static`, which the isolation audit refuses). So a new crate that calls itself "shell"
//! gets nothing of the shell's: at boot the kernel refuses two manifests of one name ([`check_unique`]), and a
//! manifest whose (name, crate) has no entry gets [`DEFAULT`]: no capability, modest limits.
//!
//! Not here: the checks of a manifest's own consistency (`sip_runtime::Manifest::check`), and the enforcement
//! of each limit (the arena, the exchange ledger, the thread count, the log budget, in `sip`).

use sip_runtime::{Capability, Manifest, ManifestError, Resource};

/// What one service may have: capabilities and the most of each resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The manifest's name.
    pub service: &'static str,
    /// The crate that must declare it.
    pub crate_name: &'static str,
    /// Capabilities it may ask for.
    pub capabilities: &'static [Capability],
    /// Most bytes its heap arena may hold.
    pub heap_quota: usize,
    /// Most exchange-heap bytes it may be charged.
    pub exchange_quota: usize,
    /// Most threads it may run at once.
    pub threads: usize,
    /// Most bytes a thread's stack may have.
    pub stack_size: usize,
    /// Log lines it may write per second (and in a burst).
    pub log_lines_per_second: u32,
}

/// The limits of a service the table does not name (a new service is one of these until the kernel's owner
/// adds it to [`TABLE`]).
pub const DEFAULT: Entry = Entry {
    service: "",
    crate_name: "",
    capabilities: &[],
    heap_quota: 1 << 20,
    exchange_quota: 1 << 20,
    threads: 8,
    stack_size: 256 * 1024,
    log_lines_per_second: 50,
};

/// The services with more than [`DEFAULT`].
const TABLE: &[Entry] = &[
    // The console's commands: starts and stops SIPs, reads and changes the system, writes the console.
    Entry {
        service: "shell",
        crate_name: "shell",
        capabilities: &[
            Capability::ProcessControl,
            Capability::SystemInfo,
            Capability::SystemAdmin,
            Capability::Console,
        ],
        log_lines_per_second: 200,
        ..DEFAULT
    },
    // The name service: the only one that changes the replicated registry for others.
    Entry {
        service: "names",
        crate_name: "names",
        capabilities: &[Capability::NameRegistry],
        exchange_quota: 4 << 20,
        ..DEFAULT
    },
    // The benchmark driver spawns its partners, reads system figures and prints its table.
    Entry {
        service: "bench",
        crate_name: "benchmark",
        capabilities: &[Capability::ProcessControl, Capability::SystemInfo, Capability::Console],
        heap_quota: 4 << 20,
        exchange_quota: 4 << 20,
        ..DEFAULT
    },
    // A benchmark partner that starts SIPs on every core (the throughput run).
    Entry { service: "bench-pump", crate_name: "benchmark", capabilities: &[Capability::ProcessControl], ..DEFAULT },
    // The key-value store keeps what its clients put.
    Entry { service: "kv", crate_name: "kv", exchange_quota: 8 << 20, ..DEFAULT },
];

/// The entry of `manifest`'s service: its own if the table names its (name, crate), else [`DEFAULT`].
fn entry_of(manifest: &Manifest) -> &'static Entry {
    TABLE.iter().find(|e| e.service == manifest.name && e.crate_name == manifest.crate_name).unwrap_or(&DEFAULT)
}

/// What the kernel grants `manifest`: everything it asks for, if its entry allows it; otherwise the first
/// thing it asks for beyond its entry, as the error.
pub fn grant(manifest: &Manifest) -> Result<Entry, ManifestError> {
    let entry = entry_of(manifest);
    if let Some(&capability) = manifest.capabilities.iter().find(|c| !entry.capabilities.contains(c)) {
        return Err(ManifestError::NotGranted(capability));
    }
    let beyond = |what, asked: usize, allowed: usize| {
        (asked > allowed).then_some(ManifestError::BeyondPolicy { what, asked, allowed })
    };
    let refused = beyond(Resource::HeapQuota, manifest.heap_quota, entry.heap_quota)
        .or_else(|| beyond(Resource::ExchangeQuota, manifest.exchange_quota, entry.exchange_quota))
        .or_else(|| beyond(Resource::Threads, manifest.threads, entry.threads))
        .or_else(|| beyond(Resource::StackSize, manifest.stack_size, stack_allowed(manifest, entry)));
    match refused {
        Some(error) => Err(error),
        None => Ok(Entry {
            capabilities: manifest.capabilities,
            heap_quota: manifest.heap_quota,
            exchange_quota: manifest.exchange_quota,
            threads: manifest.threads,
            stack_size: manifest.stack_size,
            ..*entry
        }),
    }
}

/// The largest stack `manifest` may ask for: its entry's, and for an async SIP at most the stack of the runner
/// its polls run on (`ipc::tasks::RUNNER_STACK`): its `stack_size` says how deep its code goes, and a runner's
/// stack is all it gets.
fn stack_allowed(manifest: &Manifest, entry: &Entry) -> usize {
    if manifest.entry.is_async() {
        entry.stack_size.min(crate::ipc::tasks::RUNNER_STACK as usize)
    } else {
        entry.stack_size
    }
}

/// Two manifests with one name: the name, and the two crates that declare it. Checked at boot: a service's
/// name is what the console, the policy and spawns name it by, so it must be unique.
pub fn check_unique(manifests: &[Manifest]) -> Result<(), (&'static str, &'static str, &'static str)> {
    for (i, m) in manifests.iter().enumerate() {
        if let Some(other) = manifests[..i].iter().find(|o| o.name == m.name) {
            return Err((m.name, other.crate_name, m.crate_name));
        }
    }
    Ok(())
}

crate::selftest! {
    /// A manifest gets what it asks within its entry, is refused beyond it, and a look-alike crate gets nothing
    /// of the service it imitates.
    fn policy_grants_only_what_the_table_allows() {
        fn entry(_: sip_runtime::SipContext) {}
        let shell = Manifest {
            name: "shell",
            entry: sip_runtime::Entry::Thread(entry),
            exports: &[],
            imports: &[],
            heap_quota: 1 << 20,
            stack_size: 64 * 1024,
            restart: sip_runtime::RestartPolicy::Never,
            capabilities: &[Capability::SystemAdmin],
            crate_name: "shell",
            exchange_quota: 1 << 16,
            threads: 1,
            protection: sip_runtime::Protection::Type,
        };
        let granted = grant(&shell).map_err(|e| alloc::format!("the shell was refused: {e}"))?;
        crate::check!(granted.capabilities == [Capability::SystemAdmin], "granted {:?}", granted.capabilities);
        let impostor = Manifest { crate_name: "hostile", ..shell };
        crate::check!(
            grant(&impostor) == Err(ManifestError::NotGranted(Capability::SystemAdmin)),
            "an impostor got the shell's capability"
        );
        let greedy = Manifest { exchange_quota: 1 << 30, capabilities: &[], crate_name: "hostile", ..shell };
        crate::check!(matches!(grant(&greedy), Err(ManifestError::BeyondPolicy { what: Resource::ExchangeQuota, .. })), "no limit");
        // An async SIP's polls run on a runner's stack: a deeper stack than the runner's is refused.
        async fn deep(_: sip_runtime::SipContext) {}
        let entry = sip_runtime::Entry::Async(|ctx| alloc::boxed::Box::pin(deep(ctx)));
        let deep = Manifest { entry, stack_size: 128 * 1024, capabilities: &[], crate_name: "deep", ..shell };
        crate::check!(
            matches!(grant(&deep), Err(ManifestError::BeyondPolicy { what: Resource::StackSize, allowed: 65536, .. })),
            "an async SIP was granted a stack beyond its runner's"
        );
        crate::check!(grant(&Manifest { stack_size: 64 * 1024, ..deep }).is_ok(), "a runner's stack was refused");
        let twice = [Manifest { crate_name: "a", ..shell }, Manifest { crate_name: "b", ..shell }];
        crate::check!(check_unique(&twice) == Err(("shell", "a", "b")), "duplicate names not found");
        crate::check!(check_unique(&sip_runtime::MANIFESTS).is_ok(), "the linked manifests share a name");
        Ok(())
    }
}
