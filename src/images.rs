//! The disk images build.rs made, and their stable copies under `<target dir>/images/`.
//!
//! build.rs writes `plurality-bios.img` and `plurality-uefi.img` into its `OUT_DIR`, whose path cargo nests
//! differently from one toolchain to the next. So the runner copies them to a place a user can rely on:
//! `<target dir>/images/`, where the target dir is the parent of the directory holding the runner executable
//! (`target/debug/plurality` gives `target/images/`). `--print-images` prints those paths.
//!
//! Invariants: a copy is written only when its content differs from the built image, and always through a
//! temporary file plus `rename`, so a runner running in parallel (tests do) never sees a half-written image.
//! Nothing here starts QEMU.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The BIOS image built by build.rs.
pub const BUILT_BIOS: &str = env!("BIOS_IMAGE");
/// The UEFI image built by build.rs.
pub const BUILT_UEFI: &str = env!("UEFI_IMAGE");
/// The kernel ELF the images contain (for gdb).
pub const KERNEL_ELF: &str = env!("KERNEL_ELF");

/// Paths of a BIOS and a UEFI image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// `plurality-bios.img`.
    pub bios: PathBuf,
    /// `plurality-uefi.img`.
    pub uefi: PathBuf,
}

impl Images {
    /// The images as build.rs left them.
    pub fn built() -> Self {
        Self { bios: PathBuf::from(BUILT_BIOS), uefi: PathBuf::from(BUILT_UEFI) }
    }
}

/// Why the images could not be found or copied.
#[derive(Debug)]
pub enum ImageError {
    /// The built image is gone (e.g. after `cargo clean` without a rebuild).
    Missing(PathBuf),
    /// The runner could not tell where its own executable is.
    NoExecutablePath(io::Error),
    /// Reading, writing or renaming failed.
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::Missing(path) => {
                write!(f, "disk image {} is missing; rebuild it with `cargo build`", path.display())
            }
            ImageError::NoExecutablePath(e) => {
                write!(f, "cannot locate the runner executable to find the target directory: {e}")
            }
            ImageError::Io { action, path, source } => write!(f, "cannot {action} {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for ImageError {}

/// `<target dir>/images`, derived from the running executable's path.
pub fn stable_dir() -> Result<PathBuf, ImageError> {
    let exe = std::env::current_exe().map_err(ImageError::NoExecutablePath)?;
    stable_dir_for(&exe).ok_or_else(|| {
        ImageError::NoExecutablePath(io::Error::other(format!("{} has no grandparent directory", exe.display())))
    })
}

/// `<target dir>/images` for a runner executable at `exe` (`target/debug/plurality` → `target/images`).
pub fn stable_dir_for(exe: &Path) -> Option<PathBuf> {
    Some(exe.parent()?.parent()?.join("images"))
}

/// Copies both built images into `dir` (creating it) where they changed, and returns the copies' paths.
pub fn install(built: &Images, dir: &Path) -> Result<Images, ImageError> {
    fs::create_dir_all(dir).map_err(|source| ImageError::Io {
        action: "create directory",
        path: dir.to_owned(),
        source,
    })?;
    Ok(Images {
        bios: copy_if_changed(&built.bios, &dir.join("plurality-bios.img"))?,
        uefi: copy_if_changed(&built.uefi, &dir.join("plurality-uefi.img"))?,
    })
}

/// Copies `src` to `dst` unless `dst` already has the same content. Returns `dst`.
fn copy_if_changed(src: &Path, dst: &Path) -> Result<PathBuf, ImageError> {
    let new = fs::read(src).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => ImageError::Missing(src.to_owned()),
        _ => ImageError::Io { action: "read", path: src.to_owned(), source },
    })?;
    // Comparing content (a few MiB) is cheap next to a boot and, unlike timestamps, cannot be fooled by a
    // rebuild that produced the same bytes or by a clock step.
    if fs::read(dst).is_ok_and(|old| old == new) {
        return Ok(dst.to_owned());
    }
    let file_name = dst.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dst.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let io_err = |action, path: &Path| {
        let path = path.to_owned();
        move |source| ImageError::Io { action, path, source }
    };
    fs::write(&tmp, &new).map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, dst).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("rename into", dst)(e)
    })?;
    Ok(dst.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty scratch directory under the system temp dir.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("plurality-images-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    }

    #[test]
    fn stable_dir_is_beside_the_profile_dir() {
        assert_eq!(stable_dir_for(Path::new("/w/target/debug/plurality")), Some(PathBuf::from("/w/target/images")));
        assert_eq!(stable_dir_for(Path::new("/w/target/release/plurality")), Some(PathBuf::from("/w/target/images")));
    }

    #[test]
    fn copies_only_when_changed() {
        let dir = scratch("copy");
        let built = Images { bios: dir.join("b.img"), uefi: dir.join("u.img") };
        fs::write(&built.bios, b"bios v1").unwrap();
        fs::write(&built.uefi, b"uefi v1").unwrap();
        let out = dir.join("images");
        let copies = install(&built, &out).unwrap();
        assert_eq!(copies.bios, out.join("plurality-bios.img"));
        assert_eq!(fs::read(&copies.uefi).unwrap(), b"uefi v1");

        // Unchanged source: the copy is left alone (same inode, so no rename happened).
        use std::os::unix::fs::MetadataExt;
        let ino = fs::metadata(&copies.bios).unwrap().ino();
        install(&built, &out).unwrap();
        assert_eq!(fs::metadata(&copies.bios).unwrap().ino(), ino);

        // Changed source: the copy follows.
        fs::write(&built.bios, b"bios v2").unwrap();
        install(&built, &out).unwrap();
        assert_eq!(fs::read(&copies.bios).unwrap(), b"bios v2");
        // No temporary files left behind.
        assert_eq!(fs::read_dir(&out).unwrap().count(), 2);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_image_says_rebuild() {
        let dir = scratch("missing");
        let built = Images { bios: dir.join("nope.img"), uefi: dir.join("nope2.img") };
        let err = install(&built, &dir.join("images")).unwrap_err();
        assert!(matches!(err, ImageError::Missing(_)));
        assert!(err.to_string().contains("cargo build"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }
}
