//! A foreign declaration: a way to call any kernel symbol by name.
#![no_std]
#![forbid(unsafe_code)]

unsafe extern "C" {
    fn kernel_symbol() -> u64;
}
