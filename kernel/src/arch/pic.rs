//! The legacy 8259 PICs: remapped away from the exception vectors and masked, since the APICs take over.
//!
//! Even masked, a PIC can raise a spurious IRQ 7 or 15; after remapping they arrive at
//! [`SPURIOUS_MASTER`]/[`SPURIOUS_SLAVE`], which the IDT ignores.

use x86_64::instructions::port::Port;

/// Vector base the PICs are remapped to.
pub const BASE: u8 = 0x20;
/// Spurious IRQ 7 of the master PIC after remapping.
pub const SPURIOUS_MASTER: u8 = BASE + 7;
/// Spurious IRQ 15 of the slave PIC after remapping.
pub const SPURIOUS_SLAVE: u8 = BASE + 15;

/// Remaps both PICs to [`BASE`] and masks every line.
pub fn remap_and_mask() {
    const MASTER_COMMAND: u16 = 0x20;
    const MASTER_DATA: u16 = 0x21;
    const SLAVE_COMMAND: u16 = 0xa0;
    const SLAVE_DATA: u16 = 0xa1;
    let sequence = [
        (MASTER_COMMAND, 0x11), // ICW1: init, expect ICW4
        (SLAVE_COMMAND, 0x11),
        (MASTER_DATA, BASE), // ICW2: vector base
        (SLAVE_DATA, BASE + 8),
        (MASTER_DATA, 4), // ICW3: slave on IRQ2
        (SLAVE_DATA, 2),
        (MASTER_DATA, 1), // ICW4: 8086 mode
        (SLAVE_DATA, 1),
        (MASTER_DATA, 0xff), // mask all
        (SLAVE_DATA, 0xff),
    ];
    let mut wait = Port::<u8>::new(0x80);
    for (port, value) in sequence {
        // SAFETY: ports 0x20/0x21/0xa0/0xa1 are the 8259 PICs; this is their documented init sequence, and
        // port 0x80 (POST code) is a harmless delay for slow PICs.
        unsafe {
            Port::<u8>::new(port).write(value);
            wait.write(0);
        }
    }
}
