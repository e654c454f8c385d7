//! Code placed in a chosen section, e.g. one the kernel walks at boot.
#![no_std]
#![forbid(unsafe_code)]

#[link_section = ".text.hook"]
pub fn hook() {}
