//! The registry: which name is bound to which provider, by which SIP, for which contract.
//!
//! Plain data, generic over the provider endpoint type, so its rules are tested on the host without channels.
//! Not here: talking to clients or providers (the service's `lib.rs`).
//!
//! Invariants: a name is bound at most once; only the SIP that bound a name may unbind it; a binding whose
//! provider is gone (its SIP died or dropped the endpoint) is removed before any request is answered
//! ([`Registry::sweep`]), so no request ever sees a dead binding.

use alloc::collections::BTreeMap;
use alloc::string::String;
use contracts::{NameError, is_valid_name};
use core::fmt::Write;

/// One binding.
#[derive(Debug)]
pub struct Binding<P> {
    /// The SIP that bound the name.
    pub owner: u64,
    /// The contract it says it serves (for listings).
    pub contract: String,
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
    pub fn bind(&mut self, name: &str, owner: u64, contract: &str, provider: P) -> Result<(), (NameError, P)> {
        if !is_valid_name(name) {
            return Err((NameError::InvalidName, provider));
        }
        if self.bindings.contains_key(name) {
            return Err((NameError::AlreadyBound, provider));
        }
        self.bindings.insert(String::from(name), Binding { owner, contract: String::from(contract), provider });
        Ok(())
    }

    /// Removes `name` if `who` bound it.
    pub fn unbind(&mut self, name: &str, who: u64) -> Result<(), NameError> {
        match self.bindings.get(name) {
            None => Err(NameError::NotFound),
            Some(binding) if binding.owner != who => Err(NameError::NotOwner),
            Some(_) => {
                self.bindings.remove(name);
                Ok(())
            }
        }
    }

    /// Takes the binding of `name` out (to talk to its provider); put it back with [`Registry::restore`].
    pub fn take(&mut self, name: &str) -> Option<(String, Binding<P>)> {
        self.bindings.remove_entry(name)
    }

    /// Puts back a binding taken with [`Registry::take`].
    pub fn restore(&mut self, name: String, binding: Binding<P>) {
        self.bindings.insert(name, binding);
    }

    /// Removes every binding whose provider `is_alive` rejects; returns how many went.
    pub fn sweep(&mut self, is_alive: impl Fn(&P) -> bool) -> usize {
        let before = self.bindings.len();
        self.bindings.retain(|_, binding| is_alive(&binding.provider));
        before - self.bindings.len()
    }

    /// One line per binding, in name order: `NAME sip#ID CONTRACT`.
    pub fn listing(&self) -> String {
        let mut text = String::new();
        for (name, binding) in &self.bindings {
            let _ = writeln!(text, "{name} sip#{} {}", binding.owner, binding.contract);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_bound_once() {
        let mut registry = Registry::default();
        assert!(registry.bind("echo", 4, "Echo", 'a').is_ok());
        assert_eq!(registry.bind("echo", 5, "Echo", 'b'), Err((NameError::AlreadyBound, 'b')));
        assert_eq!(registry.listing(), "echo sip#4 Echo\n");
    }

    #[test]
    fn invalid_names_are_refused_with_the_provider_back() {
        let mut registry = Registry::default();
        for name in ["", "Echo", "a b", "x".repeat(65).as_str()] {
            assert_eq!(registry.bind(name, 1, "Echo", 7), Err((NameError::InvalidName, 7)), "{name:?}");
        }
        assert!(registry.bind(&"x".repeat(64), 1, "Echo", 7).is_ok());
        assert!(registry.bind("svc/echo-2.b_c", 1, "Echo", 7).is_ok());
    }

    #[test]
    fn only_the_binder_unbinds() {
        let mut registry = Registry::default();
        registry.bind("kv", 4, "KvStore", ()).map_err(|(e, _)| e).expect("bind");
        assert_eq!(registry.unbind("kv", 5), Err(NameError::NotOwner));
        assert_eq!(registry.unbind("nope", 4), Err(NameError::NotFound));
        assert_eq!(registry.unbind("kv", 4), Ok(()));
        assert!(registry.listing().is_empty());
    }

    #[test]
    fn dead_providers_are_swept() {
        let mut registry = Registry::default();
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            registry.bind(name, i as u64, "Echo", i % 2 == 0).map_err(|(e, _)| e).expect("bind");
        }
        assert_eq!(registry.sweep(|alive| *alive), 1);
        assert_eq!(registry.listing(), "a sip#0 Echo\nc sip#2 Echo\n");
        // A swept name can be bound again.
        assert!(registry.bind("b", 9, "Echo", true).is_ok());
    }

    #[test]
    fn a_taken_binding_can_be_restored() {
        let mut registry = Registry::default();
        registry.bind("echo", 4, "Echo", 1).map_err(|(e, _)| e).expect("bind");
        let (name, binding) = registry.take("echo").expect("bound");
        assert!(registry.take("echo").is_none());
        registry.restore(name, binding);
        assert_eq!(registry.listing(), "echo sip#4 Echo\n");
    }
}
