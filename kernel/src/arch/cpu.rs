//! The CPU's own instructions and identification.

/// The local APIC ID of the calling core, from CPUID leaf 1 (works before any table or mapping exists).
pub fn apic_id_from_cpuid() -> u32 {
    let leaf = core::arch::x86_64::__cpuid(1);
    leaf.ebx >> 24
}

/// Whether the CPU offers x2APIC mode (CPUID leaf 1, ECX bit 21): APIC IDs beyond 254, reached through MSRs.
pub fn has_x2apic() -> bool {
    core::arch::x86_64::__cpuid(1).ecx & (1 << 21) != 0
}

/// The time-stamp counter. Under `-icount` it counts guest instructions.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads a counter; it is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Stops this core for good: interrupts off, then `hlt` in a loop (an NMI may still wake it).
pub fn halt_forever() -> ! {
    x86_64::instructions::interrupts::disable();
    loop {
        x86_64::instructions::hlt();
    }
}
