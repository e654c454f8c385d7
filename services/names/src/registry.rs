//! This core's providers: for each name bound by a SIP of this core, its binder and provider endpoint.
//! The system-wide truth (which name is bound at all, and where) is the kernel's replicated name registry; this
//! table only holds what cannot be replicated, the endpoints.
//!
//! Plain data, generic over the provider endpoint type, so its rules are tested on the host without channels.
//! Not here: talking to clients, providers or the kernel (the service's `lib.rs`).
//!
//! Invariants: a name is held at most once (who may unbind it is the kernel registry's rule); a binding whose
//! provider is gone (its SIP died or dropped the endpoint) is removed before any request is answered
//! ([`Registry::sweep`], which returns what it removed so the kernel's registry can be told).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use contracts::{NameError, is_valid_name};

/// One binding.
#[derive(Debug)]
pub struct Binding<P> {
    /// The SIP that bound the name.
    pub owner: u64,
    /// Where new clients go.
    pub provider: P,
}

/// Every binding, by name.
#[derive(Debug)]
pub struct Registry<P> {
    bindings: BTreeMap<String, Binding<P>>,
}

impl<P> Default for Registry<P> {
    fn default() -> Self {
        Self { bindings: BTreeMap::new() }
    }
}

impl<P> Registry<P> {
    /// Binds `name` for `owner`; the provider comes back with the error if the name is taken or invalid.
    pub fn bind(&mut self, name: &str, owner: u64, provider: P) -> Result<(), (NameError, P)> {
        if !is_valid_name(name) {
            return Err((NameError::InvalidName, provider));
        }
        if self.bindings.contains_key(name) {
            return Err((NameError::AlreadyBound, provider));
        }
        self.bindings.insert(String::from(name), Binding { owner, provider });
        Ok(())
    }

    /// Takes the binding of `name` out (to talk to its provider); put it back with [`Registry::restore`].
    pub fn take(&mut self, name: &str) -> Option<(String, Binding<P>)> {
        self.bindings.remove_entry(name)
    }

    /// Puts back a binding taken with [`Registry::take`].
    pub fn restore(&mut self, name: String, binding: Binding<P>) {
        self.bindings.insert(name, binding);
    }

    /// Removes every binding whose provider `is_alive` rejects; returns the (name, binder) of each.
    pub fn sweep(&mut self, is_alive: impl Fn(&P) -> bool) -> Vec<(String, u64)> {
        let mut gone = Vec::new();
        self.bindings.retain(|name, binding| {
            let alive = is_alive(&binding.provider);
            if !alive {
                gone.push((name.clone(), binding.owner));
            }
            alive
        });
        gone
    }

    /// Forgets `name` (after the kernel's registry let it go).
    pub fn remove(&mut self, name: &str) {
        self.bindings.remove(name);
    }

    /// One line per binding, in name order: `NAME sip#ID` (what the tests compare).
    #[cfg(test)]
    pub fn listing(&self) -> String {
        use core::fmt::Write;
        let mut text = String::new();
        for (name, binding) in &self.bindings {
            let _ = writeln!(text, "{name} sip#{}", binding.owner);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_held_once() {
        let mut registry = Registry::default();
        assert!(registry.bind("echo", 4, 'a').is_ok());
        assert_eq!(registry.bind("echo", 5, 'b'), Err((NameError::AlreadyBound, 'b')));
        assert_eq!(registry.listing(), "echo sip#4\n");
    }

    #[test]
    fn invalid_names_are_refused_with_the_provider_back() {
        let mut registry = Registry::default();
        for name in ["", "Echo", "a b", "x".repeat(65).as_str()] {
            assert_eq!(registry.bind(name, 1, 7), Err((NameError::InvalidName, 7)), "{name:?}");
        }
        assert!(registry.bind(&"x".repeat(64), 1, 7).is_ok());
        assert!(registry.bind("svc/echo-2.b_c", 1, 7).is_ok());
    }

    #[test]
    fn dead_providers_are_swept_and_reported() {
        let mut registry = Registry::default();
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            registry.bind(name, i as u64, i % 2 == 0).map_err(|(e, _)| e).expect("bind");
        }
        assert_eq!(registry.sweep(|alive| *alive), [("b".into(), 1)]);
        assert_eq!(registry.listing(), "a sip#0\nc sip#2\n");
        // A swept name can be held again.
        assert!(registry.bind("b", 9, true).is_ok());
        registry.remove("b");
        assert_eq!(registry.listing(), "a sip#0\nc sip#2\n");
    }

    #[test]
    fn a_taken_binding_can_be_restored() {
        let mut registry = Registry::default();
        registry.bind("echo", 4, 1).map_err(|(e, _)| e).expect("bind");
        let (name, binding) = registry.take("echo").expect("bound");
        assert!(registry.take("echo").is_none());
        registry.restore(name, binding);
        assert_eq!(registry.listing(), "echo sip#4\n");
    }
}
