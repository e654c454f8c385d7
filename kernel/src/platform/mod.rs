//! What the firmware tells about the machine: ACPI tables (cores, interrupt controllers, power-off).

pub mod acpi;
pub mod fw_cfg;
