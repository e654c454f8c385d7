//! QEMU's firmware configuration device (fw_cfg): named files the host passes to the guest.
//!
//! Used for settings the guest cannot observe by itself, such as `opt/plurality/icount` (the runner's
//! `--icount`: the TSC then counts guest instructions). On a machine without the device every lookup is `None`.
//!
//! Also two fault injections for tests, each a decimal core index passed with
//! `--qemu-arg=-fw_cfg --qemu-arg=name=opt/plurality/NAME,string=N`: `panic-on-cpu` makes that application
//! processor panic shortly after it comes online (proves a panic on another core stops the machine and names
//! the core); `stall-cpu` makes it halt before it reports online (proves a core that does not start is reported
//! and left out while the rest run). Absent, nothing happens.
//!
//! The device is one selector/data port pair with no locking: read each value once (at boot on the boot
//! core, or through a `spin::Once` on whichever core asks first), never from two cores at once.

use x86_64::instructions::port::Port;

const SELECTOR: u16 = 0x510;
const DATA: u16 = 0x511;
const SIGNATURE: u16 = 0x0000;
const DIRECTORY: u16 = 0x0019;

fn select(key: u16) {
    let mut selector = Port::<u16>::new(SELECTOR);
    // SAFETY: 0x510 is QEMU's fw_cfg selector port; selecting an item has no effect beyond the device.
    unsafe { selector.write(key) };
}

fn read_bytes(buffer: &mut [u8]) {
    let mut data = Port::<u8>::new(DATA);
    for byte in buffer {
        // SAFETY: 0x511 is the fw_cfg data port; reading returns the selected item's next byte (0 past its end
        // or without the device).
        *byte = unsafe { data.read() };
    }
}

fn present() -> bool {
    select(SIGNATURE);
    let mut signature = [0u8; 4];
    read_bytes(&mut signature);
    &signature == b"QEMU"
}

/// Reads the file `name` into `buffer`; returns its length (may exceed the buffer, which then holds a prefix).
pub fn read_file(name: &str, buffer: &mut [u8]) -> Option<usize> {
    if !present() {
        return None;
    }
    select(DIRECTORY);
    let mut count = [0u8; 4];
    read_bytes(&mut count);
    for _ in 0..u32::from_be_bytes(count) {
        let mut entry = [0u8; 64];
        read_bytes(&mut entry);
        let size = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]) as usize;
        let key = u16::from_be_bytes([entry[4], entry[5]]);
        let file_name = &entry[8..];
        let end = file_name.iter().position(|b| *b == 0).unwrap_or(file_name.len());
        if &file_name[..end] == name.as_bytes() {
            select(key);
            let take = size.min(buffer.len());
            read_bytes(&mut buffer[..take]);
            return Some(size);
        }
    }
    None
}

/// Whether the runner started QEMU with `--icount`.
pub fn icount() -> bool {
    let mut value = [0u8; 1];
    read_file("opt/plurality/icount", &mut value) == Some(1) && value[0] == b'1'
}

/// A test hook's core index: the decimal contents of fw_cfg file `name`, if present.
pub fn core_index(name: &str) -> Option<u32> {
    let mut value = [0u8; 10];
    let len = read_file(name, &mut value)?;
    core::str::from_utf8(value.get(..len)?).ok()?.trim().parse().ok()
}
