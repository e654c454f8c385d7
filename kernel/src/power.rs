//! Leaving the machine: QEMU's exit device, ACPI power-off, and halting.
//!
//! The runner always attaches QEMU's `isa-debug-exit` device at port 0xf4, which ends QEMU with status
//! `(code << 1) | 1`; on a machine (or QEMU) without it the write does nothing and ACPI S5 follows.
//!
//! Before leaving, every other core is stopped (`cores::stop_other_cores`), so nothing runs while the machine
//! powers off and no core is left holding a lock the leaving core needs.

use x86_64::instructions::port::Port;

/// What the kernel tells the runner when it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Clean shutdown: QEMU exits with status 1.
    Success = 0,
    /// Kernel panic or fatal exception: QEMU exits with status 3.
    Failure = 1,
}

/// Ends QEMU through the isa-debug-exit device; returns if the device is absent.
pub fn exit_qemu(code: ExitCode) {
    let mut port = Port::<u32>::new(0xf4);
    // SAFETY: port 0xf4 is the isa-debug-exit device under the runner; elsewhere it is unassigned and a write is
    // ignored.
    unsafe { port.write(code as u32) };
    // QEMU may take a moment to act on the write under TCG (boot-facts.md): let it, before trying other means.
    for _ in 0..1000 {
        core::hint::spin_loop();
    }
}

/// Shuts the machine down cleanly: other cores stopped, then exit device, then ACPI S5, then halt.
pub fn shutdown() -> ! {
    crate::println!("Shutting down.");
    // A core about to be stopped by NMI may hold the console's lock: write around it.
    let before_nmi =
        |core| crate::console::emergency_print(format_args!("cpu {core} did not stop; sending it an NMI\n"));
    match crate::cores::stop_other_cores(before_nmi) {
        crate::cores::Stopped { cores: 0, .. } => {}
        // A core stopped by NMI may hold the console's lock: write around it.
        crate::cores::Stopped { cores, forced: true } => {
            crate::console::emergency_print(format_args!("stopped {cores} other core(s), some by NMI\n"));
        }
        crate::cores::Stopped { cores, forced: false } => log::info!("stopped {cores} other core(s)"),
    }
    exit_qemu(ExitCode::Success);
    if let Err(e) = crate::firmware::acpi::power_off() {
        crate::println!("ACPI power-off unavailable ({e:?}); it is now safe to turn off the machine.");
    }
    crate::arch::cpu::halt_forever()
}
