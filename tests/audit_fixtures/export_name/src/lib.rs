//! A function exported under a kernel symbol's name.
#![no_std]
#![forbid(unsafe_code)]

#[export_name = "kernel_main"]
pub fn not_the_kernel() {}
