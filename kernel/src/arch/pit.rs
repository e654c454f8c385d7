//! The 8254 programmable interval timer, used only as a known time base to calibrate the APIC timer and TSC.
//!
//! Channel 2 is used in one-shot mode with its gate on port 0x61, so no interrupt is involved. Under QEMU's
//! `-icount` the PIT runs in virtual time, so calibration stays right where the TSC counts instructions.

use x86_64::instructions::port::Port;

/// Input clock of the PIT in Hz.
pub const FREQUENCY_HZ: u64 = 1_193_182;

/// Starts a one-shot countdown of `micros` microseconds (at most ~54 ms) on channel 2 and returns a handle
/// whose [`OneShot::expired`] turns true when it ends.
pub fn start_one_shot(micros: u64) -> OneShot {
    let count = (FREQUENCY_HZ * micros / 1_000_000).clamp(1, 0xffff) as u16;
    let mut gate = Port::<u8>::new(0x61);
    let mut command = Port::<u8>::new(0x43);
    let mut channel2 = Port::<u8>::new(0x42);
    // SAFETY: 0x61 is the system control port B (bit 0: channel-2 gate, bit 1: speaker, which stays off),
    // 0x43/0x42 the PIT command and channel-2 data ports; programming channel 2 affects nothing else.
    unsafe {
        let control = gate.read();
        gate.write(control & !0x03);
        command.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count), binary
        channel2.write(count as u8);
        channel2.write((count >> 8) as u8);
        gate.write((control & !0x02) | 0x01); // rising gate edge starts the count
    }
    OneShot { gate }
}

/// A running channel-2 countdown.
pub struct OneShot {
    gate: Port<u8>,
}

impl OneShot {
    /// Whether the countdown has reached zero (channel-2 output, bit 5 of port 0x61).
    pub fn expired(&mut self) -> bool {
        // SAFETY: reading port 0x61 has no side effect.
        unsafe { self.gate.read() & 0x20 != 0 }
    }
}
