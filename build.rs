use std::path::PathBuf;
fn main() {
    let kernel = PathBuf::from(std::env::var_os("CARGO_BIN_FILE_KERNEL_kernel").unwrap());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let bios = out.join("plurality-bios.img");
    let uefi = out.join("plurality-uefi.img");
    bootloader::BiosBoot::new(&kernel).create_disk_image(&bios).unwrap();
    bootloader::UefiBoot::new(&kernel).create_disk_image(&uefi).unwrap();
    println!("cargo:rustc-env=BIOS_IMAGE={}", bios.display());
    println!("cargo:rustc-env=UEFI_IMAGE={}", uefi.display());
    println!("cargo:rustc-env=KERNEL_ELF={}", kernel.display());
}
