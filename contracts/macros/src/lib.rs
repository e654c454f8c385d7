//! `contract!` and `#[derive(Exchangeable)]`: the compile-time half of Plurality's channel contracts.
//!
//! `contract!` parses a Sing#-style contract (module `parse`), checks that it is well formed and computes the ring
//! capacities (`check`), and generates typed endpoints over the `channels` runtime (`expand`). Nothing here
//! runs at run time and nothing is `unsafe`: generated code is ordinary safe Rust over `channels`' safe API.
//!
//! Dependencies: `syn` (parsing), `quote` (emitting), `proc-macro2` (spans for errors).
#![forbid(unsafe_code)]

mod check;
mod derive;
mod expand;
mod names;
mod parse;

use proc_macro::TokenStream;

/// Declares a channel contract; see `docs/contracts.md` and the `contracts` crate for the syntax and what is
/// generated.
#[proc_macro]
pub fn contract(input: TokenStream) -> TokenStream {
    let def = syn::parse_macro_input!(input as parse::ContractDef);
    match check::check(&def) {
        Ok(analysis) => expand::expand(&def, &analysis).into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// Makes a struct or enum `Exchangeable` (it may then travel in messages) if every field is.
#[proc_macro_derive(Exchangeable)]
pub fn derive_exchangeable(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    match derive::derive(input) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}
