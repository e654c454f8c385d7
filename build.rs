//! Build script of the root package: builds the kernel, then turns its ELF into bootable BIOS and UEFI disk
//! images.
//!
//! The kernel is built by a nested `cargo build -p kernel --profile kernel` with a target directory of its own
//! (`<target dir>/kernel`), and the ring-3 image (the programs and services that run in ring 3,
//! docs/protection.md), which each disk image carries as the bootloader's ramdisk, by a second one,
//! `cargo build -p ring3-image --profile ring3-image`, into the same directory: apart, because the image switches on the `ring3`
//! build of `channels`, which one invocation would unify into the kernel's copy too. Decision
//! (docs/architecture.md): not a Cargo artifact dependency, because Cargo unifies features across one build: a
//! `cargo test` that also tests `channels` or `contracts` would switch on their test-only `std` features and
//! dev-dependencies (crossbeam-channel with `std`, ...) in the kernel's copies of those crates, and the kernel
//! would no longer build for `x86_64-unknown-none`. A separate cargo invocation resolves the kernel's graph
//! alone. The `bootloader` crate then writes
//! `plurality-bios.img` and `plurality-uefi.img` into `OUT_DIR`, and the paths reach the runner as compile-time
//! environment variables `BIOS_IMAGE`, `UEFI_IMAGE` and `KERNEL_ELF` (the runner copies the images to
//! `<target dir>/images/` itself; `OUT_DIR`'s nesting differs between cargo versions, so nothing may hard-code it).
//!
//! Not in here: booting (src/), the kernel's own bootloader settings
//! such as memory mappings (the kernel declares those with `entry_point!`). Only the bootloader's run-time
//! `BootConfig` is chosen here.
//!
//! Invariant: the script reruns when a source of the kernel image (the kernel and every crate it links) or this
//! file changes, so editing the runner or the host tests does not rebuild the images. Every failure a user can hit ends with a message saying what to do, not a
//! panic backtrace.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Sources of the kernel image, relative to the workspace root: a change in any of them rebuilds it.
const KERNEL_SOURCES: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    "rust-toolchain.toml",
    "kernel",
    "cpu-rings",
    "channels/Cargo.toml",
    "channels/src",
    "contracts/Cargo.toml",
    "contracts/src",
    "contracts/macros",
    "sip-runtime",
    "services",
];

fn main() {
    if let Err(message) = run() {
        // Cargo prints a failed build script's stderr; exit(1) marks the failure without a panic backtrace.
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let out = env_path("OUT_DIR")?;
    let root = env_path("CARGO_MANIFEST_DIR")?;
    println!("cargo:rerun-if-changed=build.rs");
    for source in KERNEL_SOURCES {
        // Cargo scans a directory recursively for changed files.
        println!("cargo:rerun-if-changed={}", root.join(source).display());
    }
    let (kernel, ring3_image) = build_kernel(&root)?;
    for elf in [&kernel, &ring3_image] {
        if !elf.is_file() {
            return Err(format!("the ELF {} was not built", elf.display()));
        }
    }

    let config = boot_config();
    let bios = out.join("plurality-bios.img");
    let uefi = out.join("plurality-uefi.img");
    bootloader::BiosBoot::new(&kernel)
        .set_ramdisk(&ring3_image)
        .set_boot_config(&config)
        .create_disk_image(&bios)
        .map_err(|e| image_error("BIOS", &bios, &e))?;
    bootloader::UefiBoot::new(&kernel)
        .set_ramdisk(&ring3_image)
        .set_boot_config(&config)
        .create_disk_image(&uefi)
        .map_err(|e| image_error("UEFI", &uefi, &e))?;

    println!("cargo:rustc-env=BIOS_IMAGE={}", bios.display());
    println!("cargo:rustc-env=UEFI_IMAGE={}", uefi.display());
    println!("cargo:rustc-env=KERNEL_ELF={}", kernel.display());
    Ok(())
}

/// Builds the kernel and the ring-3 image with a nested cargo and returns the paths of their ELFs.
fn build_kernel(root: &Path) -> Result<(PathBuf, PathBuf), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // The outer build's target directory (where `debug/` and `release/` live), and a directory of its own
    // under it: sharing the outer one would deadlock on its lock.
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let target = if target.is_absolute() { target } else { root.join(target) };
    let kernel_target = target.join("kernel");
    // Each with its profile (the image's adds whole-program optimisation: Cargo.toml says why).
    for package in ["kernel", "ring3-image"] {
        nested_build(root, &cargo, package, &kernel_target)?;
    }
    let binaries = kernel_target.join("x86_64-unknown-none");
    Ok((binaries.join("kernel").join("kernel"), binaries.join("ring3-image").join("ring3-image")))
}

/// `cargo build -p package --profile package` into `kernel_target`.
fn nested_build(root: &Path, cargo: &std::ffi::OsStr, package: &str, kernel_target: &Path) -> Result<(), String> {
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["build", "-p", package, "--profile", package, "--target-dir"])
        .arg(kernel_target)
        // Settings meant for the outer (host) build must not leak into the kernel's.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    let status = command.status().map_err(|e| format!("cannot run {} to build {package}: {e}", cargo.display()))?;
    if !status.success() {
        return Err(format!(
            "building {package} failed ({status}); the compiler's messages are above. To see them alone: \
             cargo build -p {package} --profile {package} --target-dir {}",
            kernel_target.display()
        ));
    }
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
