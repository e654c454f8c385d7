//! Links every service crate into the kernel, so their manifests reach `sip_runtime::MANIFESTS`.
//!
//! A crate that only contributes to a linkme slice is dropped by the linker unless something names it
//! (boot-facts.md): these `use` lines name them. The `services` self-test checks that every manifest arrived.

use benchmark as _;
use echo as _;
use fault as _;
use hostile as _;
use kv as _;
use names as _;
use shell as _;
use template as _;

crate::selftest! {
    /// Manifests arrived, no two share a name, and the kernel refuses an invalid one without starting anything.
    fn manifests_registered_and_checked() {
        let manifests = &sip_runtime::MANIFESTS;
        crate::check!(!manifests.is_empty(), "no manifest registered: are the service crates linked?");
        for (i, m) in manifests.iter().enumerate() {
            crate::check!(!manifests[..i].iter().any(|o| o.name == m.name), "two manifests named '{}'", m.name);
        }
        let live = crate::sip::next_after(None);
        let refused = crate::sip::spawn("fault-bad-manifest", "", None);
        crate::check!(
            matches!(refused, Err(sip_runtime::SpawnError::BadManifest(sip_runtime::ManifestError::QuotaOutOfRange(0)))),
            "invalid manifest not refused: {refused:?}"
        );
        crate::check!(crate::sip::next_after(None) == live, "a refused spawn left a SIP behind");
        Ok(())
    }
}
