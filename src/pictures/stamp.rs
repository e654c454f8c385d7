//! The stamp that ties a committed contract picture to the Graphviz text it was rendered from, and the check that
//! a directory's pictures still match the contracts.
//!
//! Shared by two crates, without a copy: the runner's `contract-pictures` (src/pictures.rs, which stamps each SVG
//! it renders and checks what it wrote) and the host test tests/contract_pictures.rs, which includes this file
//! with `#[path]`. A test cannot import from a binary, and a library target only for this would change how the
//! root package builds; so this file stands alone: std only, no other module of the runner, everything in it
//! used by both crates.
//!
//! Not here: running Graphviz and placing the stamp in its output (src/pictures.rs), and the contracts
//! themselves (the caller passes each contract's name and `to_dot()` text).
//!
//! Invariants: a picture of contract `NAME` in a directory is `NAME.dot`, exactly the contract's `to_dot()`,
//! and `NAME.svg`, which carries one line [`stamp`]`(NAME, dot)`: the FNV-1a 64 hash of the dot text, so that
//! checking a picture needs no Graphviz. The stamp is an XML comment; a contract name is a Rust identifier, so it
//! never contains the `--` that would end it early.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// How every stamp line starts.
pub const STAMP_PREFIX: &str = "<!-- plurality: rendered from ";

/// FNV-1a, 64-bit: tiny, dependency-free and stable across Rust versions and platforms (unlike `DefaultHasher`),
/// which is all a staleness mark needs; it is not meant to resist anyone forging a picture.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME))
}

/// The comment line (without its line end) that an SVG rendered from `dot`, contract `name`'s Graphviz text,
/// carries.
pub fn stamp(name: &str, dot: &str) -> String {
    format!("{STAMP_PREFIX}{name}.dot, fnv1a64 {:016x} -->", fnv1a64(dot.as_bytes()))
}

/// Why a committed picture does not match its contract.
#[derive(Debug)]
pub enum Stale {
    /// `NAME.dot` or `NAME.svg` could not be read (typically: it does not exist yet).
    Unreadable { name: String, path: PathBuf, error: io::Error },
    /// `NAME.dot` is not the contract's `to_dot()`.
    DotDiffers { name: String, path: PathBuf },
    /// `NAME.svg` has no stamp line at all.
    Unstamped { name: String, path: PathBuf },
    /// `NAME.svg`'s stamp is for other Graphviz text (or another contract).
    StampDiffers { name: String, path: PathBuf, found: String, expected: String },
}

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stale::Unreadable { name, path, error } => {
                write!(f, "contract {name}: cannot read {}: {error}", path.display())?
            }
            Stale::DotDiffers { name, path } => {
                write!(f, "contract {name}: {} is not the contract's to_dot()", path.display())?
            }
            Stale::Unstamped { name, path } => write!(
                f,
                "contract {name}: {} has no `{STAMP_PREFIX}...` line (not rendered by contract-pictures)",
                path.display()
            )?,
            Stale::StampDiffers { name, path, found, expected } => write!(
                f,
                "contract {name}: {} was rendered from other Graphviz text (it says `{found}`, the contract gives \
                 `{expected}`)",
                path.display()
            )?,
        }
        f.write_str("; run `cargo run -- contract-pictures` and commit docs/contracts/")
    }
}

impl std::error::Error for Stale {}

/// Checks that `dir` holds the picture of contract `name` whose Graphviz text is `dot`: `NAME.dot` equal to it,
/// and `NAME.svg` stamped with its hash.
pub fn check(dir: &Path, name: &str, dot: &str) -> Result<(), Stale> {
    let read = |path: PathBuf| match std::fs::read_to_string(&path) {
        Ok(text) => Ok((text, path)),
        Err(error) => Err(Stale::Unreadable { name: name.to_owned(), path, error }),
    };
    let (committed, path) = read(dir.join(format!("{name}.dot")))?;
    if committed != dot {
        return Err(Stale::DotDiffers { name: name.to_owned(), path });
    }
    let (svg, path) = read(dir.join(format!("{name}.svg")))?;
    let expected = stamp(name, dot);
    match svg.lines().find(|line| line.starts_with(STAMP_PREFIX)) {
        None => Err(Stale::Unstamped { name: name.to_owned(), path }),
        Some(found) if found != expected => {
            Err(Stale::StampDiffers { name: name.to_owned(), path, found: found.to_owned(), expected })
        }
        Some(_) => Ok(()),
    }
}

/// The `.dot` and `.svg` files in `dir` whose name is none of `names`: pictures of contracts that no longer
/// exist (or were renamed), which nothing would ever check again. A directory that cannot be read has none.
pub fn leftovers(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "dot" || ext == "svg"))
        .filter(|path| !path.file_stem().and_then(|stem| stem.to_str()).is_some_and(|stem| names.contains(&stem)))
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_vectors() {
        // From the FNV reference test suite (Fowler, Noll, Vo; IETF draft-eastlake-fnv).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn stamp_names_the_source_and_its_hash() {
        assert_eq!(stamp("Echo", ""), "<!-- plurality: rendered from Echo.dot, fnv1a64 cbf29ce484222325 -->");
        assert_eq!(stamp("Echo", "a"), "<!-- plurality: rendered from Echo.dot, fnv1a64 af63dc4c8601ec8c -->");
        assert!(!stamp("Echo", "digraph Echo {}\n")["<!--".len()..].trim_end_matches("-->").contains("--"));
    }

    /// A fresh scratch directory, one per process and test (this module's tests run in two crates, possibly at
    /// once: the runner's unit tests and tests/contract_pictures.rs).
    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("plurality-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        dir
    }

    #[test]
    fn check_accepts_a_matching_picture_and_names_every_mismatch() {
        let dir = scratch("stamp-check");
        let dot = "digraph Echo {\n}\n";
        let svg = |stamp_line: &str| format!("<?xml version=\"1.0\"?>\n{stamp_line}\n<svg>\n</svg>\n");
        let write = |file: &str, text: &str| std::fs::write(dir.join(file), text).expect("write");

        let err = check(&dir, "Echo", dot).expect_err("no files yet");
        assert!(matches!(err, Stale::Unreadable { .. }), "{err}");
        assert!(err.to_string().starts_with("contract Echo: cannot read"), "{err}");
        assert!(err.to_string().ends_with("run `cargo run -- contract-pictures` and commit docs/contracts/"));

        write("Echo.dot", "digraph Echo {\n    rankdir=LR;\n}\n");
        write("Echo.svg", &svg(&stamp("Echo", dot)));
        assert!(matches!(check(&dir, "Echo", dot), Err(Stale::DotDiffers { .. })));

        write("Echo.dot", dot);
        assert!(check(&dir, "Echo", dot).is_ok());

        write("Echo.svg", &svg("<!-- Generated by graphviz -->"));
        assert!(matches!(check(&dir, "Echo", dot), Err(Stale::Unstamped { .. })));

        write("Echo.svg", &svg(&stamp("Echo", "digraph Echo {}\n")));
        let err = check(&dir, "Echo", dot).expect_err("stamp of other text");
        assert!(matches!(err, Stale::StampDiffers { .. }), "{err}");
        assert!(err.to_string().contains(&stamp("Echo", dot)), "{err}");

        write("Gone.svg", "");
        write("notes.txt", "");
        assert_eq!(leftovers(&dir, &["Echo"]), [dir.join("Gone.svg")]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
