//! Global state at module level.
#![no_std]
#![forbid(unsafe_code)]

/// Shared by every instance of the service: exactly what isolation forbids.
static COUNTER: u32 = 0;

pub fn get() -> u32 {
    COUNTER
}
