//! The Rust 2024 spelling of an unmangled symbol.
#![no_std]
#![forbid(unsafe_code)]

#[unsafe(no_mangle)]
pub extern "C" fn entry() {}
