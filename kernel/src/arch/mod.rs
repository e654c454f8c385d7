//! Direct hardware access for x86_64: the CPU itself, the interrupt controllers, the legacy timer, and the
//! real-mode trampoline that application processors start in.
//!
//! Everything here is a thin, typed wrapper over registers and ports; policy (which rate, which core) lives with
//! the callers. The one exception is the vector map (`vectors`): both the layer that programs an interrupt
//! source and the layer that handles it read it, so it lives below both. This is one of the few places with `unsafe`, each block justified where it stands.

pub mod apic;
pub mod cpu;
pub mod io_apic;
pub mod pic;
pub mod pit;
pub mod smp_trampoline;
pub mod vectors;
