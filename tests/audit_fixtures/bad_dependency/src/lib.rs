//! A clean source: only the manifest is wrong.
#![no_std]
#![forbid(unsafe_code)]
