//! Links every service crate into the kernel, so their manifests reach `sip_runtime::MANIFESTS`.
//!
//! A crate that only contributes to a linkme slice is dropped by the linker unless something names it
//! (boot-facts.md): these `use` lines name them. The `services` self-test checks that every manifest arrived.

use fault as _;
use template as _;

crate::selftest! {
    /// Manifests arrived, each passes the kernel's checks, and no two share a name.
    fn manifests_registered_and_valid() {
        let names: alloc::vec::Vec<&str> = contracts::all().iter().map(|c| c.name).collect();
        let manifests = &sip_runtime::MANIFESTS;
        crate::check!(!manifests.is_empty(), "no manifest registered: are the service crates linked?");
        for (i, m) in manifests.iter().enumerate() {
            m.check(&names).map_err(|e| alloc::format!("manifest '{}': {e}", m.name))?;
            crate::check!(!manifests[..i].iter().any(|o| o.name == m.name), "two manifests named '{}'", m.name);
        }
        Ok(())
    }
}
