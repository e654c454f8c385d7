//! The static hides in a function body, in a submodule.
#![no_std]
#![forbid(unsafe_code)]

mod worker;

pub use worker::work;
