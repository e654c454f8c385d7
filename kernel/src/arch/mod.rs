//! Direct hardware access for x86_64: the CPU itself, the interrupt controllers, the legacy timer, and the
//! real-mode trampoline that application processors start in.
//!
//! Everything here is a thin, typed wrapper over registers and ports; policy (which vector, which rate) lives
//! with the callers. This is one of the few places with `unsafe`, each block justified where it stands.

pub mod apic;
pub mod cpu;
pub mod io_apic;
pub mod pic;
pub mod pit;
pub mod smp_trampoline;
