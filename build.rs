//! Build script of the root package: turns the kernel ELF into bootable BIOS and UEFI disk images.
//!
//! The kernel arrives as a cargo artifact dependency (`kernel = { artifact = "bin", target =
//! "x86_64-unknown-none" }` in Cargo.toml, `bindeps` in .cargo/config.toml): cargo builds it for the bare-metal
//! target and hands this script its path in `CARGO_BIN_FILE_KERNEL_kernel`. The `bootloader` crate then writes
//! `plurality-bios.img` and `plurality-uefi.img` into `OUT_DIR`, and the paths reach the runner as compile-time
//! environment variables `BIOS_IMAGE`, `UEFI_IMAGE` and `KERNEL_ELF` (the runner copies the images to
//! `<target dir>/images/` itself; `OUT_DIR`'s nesting differs between cargo versions, so nothing may hard-code it).
//!
//! Not in here: building the kernel (cargo does that), booting (src/), the kernel's own bootloader settings
//! such as memory mappings (the kernel declares those with `entry_point!`). Only the bootloader's run-time
//! `BootConfig` is chosen here.
//!
//! Invariant: the script reruns exactly when the kernel ELF or this file changes, so editing the runner or the
//! tests does not rebuild the images. Every failure a user can hit ends with a message saying what to do, not a
//! panic backtrace.

use std::path::{Path, PathBuf};

fn main() {
    if let Err(message) = run() {
        // Cargo prints a failed build script's stderr; exit(1) marks the failure without a panic backtrace.
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let kernel = env_path("CARGO_BIN_FILE_KERNEL_kernel").map_err(|e| {
        format!(
            "{e}. The kernel reaches build.rs as an artifact dependency: it needs a nightly cargo (see \
             rust-toolchain.toml) with `[unstable] bindeps = true` (.cargo/config.toml)"
        )
    })?;
    let out = env_path("OUT_DIR")?;
    println!("cargo:rerun-if-changed=build.rs");
    // An absolute path: cargo compares its mtime with the last run's, so a rebuilt kernel remakes the images.
    println!("cargo:rerun-if-changed={}", kernel.display());

    if !kernel.is_file() {
        return Err(format!("the kernel ELF {} does not exist", kernel.display()));
    }

    let config = boot_config();
    let bios = out.join("plurality-bios.img");
    let uefi = out.join("plurality-uefi.img");
    bootloader::BiosBoot::new(&kernel)
        .set_boot_config(&config)
        .create_disk_image(&bios)
        .map_err(|e| image_error("BIOS", &bios, &e))?;
    bootloader::UefiBoot::new(&kernel)
        .set_boot_config(&config)
        .create_disk_image(&uefi)
        .map_err(|e| image_error("UEFI", &uefi, &e))?;

    println!("cargo:rustc-env=BIOS_IMAGE={}", bios.display());
    println!("cargo:rustc-env=UEFI_IMAGE={}", uefi.display());
    println!("cargo:rustc-env=KERNEL_ELF={}", kernel.display());
    Ok(())
}

/// The bootloader's run-time settings, written into each image as `boot.json`.
fn boot_config() -> bootloader::BootConfig {
    let mut config = bootloader::BootConfig::default();
    // The bootloader's serial log stays on: it is the only trace of a boot that dies before the kernel's
    // console is up, and it shows the kernel's load offset (`virtual_address_offset`) that gdb needs.
    config.serial_logging = true;
    // Its framebuffer log does not: the kernel draws its own console over it at once, and rendering glyphs
    // pixel by pixel under TCG costs boot time.
    config.frame_buffer_logging = false;
    config
}

/// A path from an environment variable that cargo sets for build scripts.
fn env_path(name: &str) -> Result<PathBuf, String> {
    std::env::var_os(name).map(PathBuf::from).ok_or_else(|| format!("environment variable {name} is not set"))
}

/// Explains a failed image build. `error` is the bootloader crate's (anyhow) error.
fn image_error(kind: &str, path: &Path, error: &impl std::fmt::Display) -> String {
    // `{:#}` prints anyhow's whole cause chain on one line (e.g. a missing llvm-tools component, or no network
    // for the bootloader's nested build of its stages).
    format!(
        "could not create the {kind} disk image {}: {error:#}. The bootloader crate builds its stages with the \
         pinned nightly's rust-src and llvm-tools components (rust-toolchain.toml): run `rustup toolchain \
         install` in the repository root if they are missing",
        path.display()
    )
}
