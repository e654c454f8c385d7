//! What the firmware tells about the machine: ACPI tables (cores, interrupt controllers, power-off) and QEMU's
//! fw_cfg device (the test switches the runner passes).

pub mod acpi;
pub mod fw_cfg;
