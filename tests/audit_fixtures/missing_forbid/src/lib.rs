//! A service that only denies `unsafe_code`, which an inner `#[allow]` could lift again: `forbid` is required.
#![no_std]
#![deny(unsafe_code)]

pub fn nothing() {}
