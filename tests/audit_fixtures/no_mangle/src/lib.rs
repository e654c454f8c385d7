//! An unmangled symbol, which could collide with or replace a kernel symbol.
#![no_std]
#![forbid(unsafe_code)]

#[no_mangle]
pub extern "C" fn entry() {}
