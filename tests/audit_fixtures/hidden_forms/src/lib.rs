//! Forbidden forms that syn does not show as plain items: each must still be found.
#![no_std]
#![forbid(unsafe_code)]

// A renamed import would make a later `a!(..)` look like any other macro.
use core::arch::asm as a;

macro_rules! global {
    ($name:ident) => { static $name: u32 = 0; };
}

global!(HIDDEN);

#[cfg_attr(all(), unsafe(export_name = "hook"))]
pub fn hook() {}

// Without a value, syn keeps this as verbatim tokens rather than an `ItemStatic`.
static DECLARED: u32;
