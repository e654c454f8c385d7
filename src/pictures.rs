//! `cargo run -- contract-pictures [DIR]`: every system contract's state machine as a picture, for the docs.
//!
//! For each contract of `contracts::all()` it writes `DIR/NAME.dot` (exactly `ContractInfo::to_dot()`) and
//! `DIR/NAME.svg`, rendered by Graphviz (`dot -Tsvg`, Debian's `graphviz` package) and stamped with the hash of
//! the dot text ([`stamp`]). Then it checks what it wrote the way tests/contract_pictures.rs checks the committed
//! pictures, so a run that succeeds leaves pictures that pass that test. docs/contracts.md ("Pictures") shows them.
//!
//! Not here: the stamp and the check (`stamp`, shared with the test), the Graphviz text (channels' `describe`).
//! Files of contracts that no longer exist are reported, not deleted: removing files is left to the user.

mod stamp;

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use stamp::Stale;

/// The Graphviz program that renders the pictures.
const DOT: &str = "dot";

/// Why the pictures were not (all) made.
#[derive(Debug)]
pub enum PictureError {
    /// Graphviz's `dot` is not installed (not in `PATH`).
    DotMissing,
    /// Creating the directory or writing a file failed.
    Write(PathBuf, io::Error),
    /// `dot` could not be started for another reason than its absence, or talking to it failed.
    Start(io::Error),
    /// `dot` refused the text of a contract.
    Render { name: String, status: std::process::ExitStatus, stderr: String },
    /// `dot`'s output for a contract is not an SVG document (no `<svg` element, or not UTF-8).
    NotSvg(String),
    /// What was written does not pass the check (a bug here).
    Check(Stale),
}

impl fmt::Display for PictureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PictureError::DotMissing => {
                f.write_str("Graphviz's `dot` is not installed (on Debian: `apt-get install graphviz`)")
            }
            PictureError::Write(path, e) => write!(f, "cannot write {}: {e}", path.display()),
            PictureError::Start(e) => write!(f, "cannot run `{DOT} -Tsvg`: {e}"),
            PictureError::Render { name, status, stderr } => {
                write!(f, "`{DOT} -Tsvg` failed on contract {name} ({status}): {}", stderr.trim_end())
            }
            PictureError::NotSvg(name) => write!(f, "`{DOT} -Tsvg` gave no SVG document for contract {name}"),
            PictureError::Check(stale) => write!(f, "what was written does not pass the check: {stale}"),
        }
    }
}

/// What a run made.
#[derive(Debug)]
pub struct Made {
    /// How many contracts were rendered.
    pub contracts: usize,
    /// `.dot`/`.svg` files in the directory that belong to no contract (left in place).
    pub leftovers: Vec<PathBuf>,
}

/// Renders every system contract into `dir` (created if missing) and checks the result. Everything is rendered
/// before the first file is written, so a missing or failing Graphviz leaves `dir` as it was.
pub fn run(dir: &Path) -> Result<Made, PictureError> {
    let all = contracts::all();
    let mut pictures = Vec::with_capacity(all.len());
    for info in all {
        let dot = info.to_dot();
        let svg = insert_stamp(&render(info.name, &dot)?, &stamp::stamp(info.name, &dot))
            .ok_or_else(|| PictureError::NotSvg(info.name.to_owned()))?;
        pictures.push((info.name, dot, svg));
    }
    std::fs::create_dir_all(dir).map_err(|e| PictureError::Write(dir.to_owned(), e))?;
    for (name, dot, svg) in pictures {
        for (path, text) in [(dir.join(format!("{name}.dot")), dot), (dir.join(format!("{name}.svg")), svg)] {
            std::fs::write(&path, text).map_err(|e| PictureError::Write(path, e))?;
        }
    }
    for info in all {
        stamp::check(dir, info.name, &info.to_dot()).map_err(PictureError::Check)?;
    }
    let names: Vec<&str> = all.iter().map(|info| info.name).collect();
    Ok(Made { contracts: all.len(), leftovers: stamp::leftovers(dir, &names) })
}

/// Runs `dot -Tsvg` on `dot`, contract `name`'s Graphviz text, and returns the SVG document.
fn render(name: &str, dot: &str) -> Result<String, PictureError> {
    let mut child = match Command::new(DOT)
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(PictureError::DotMissing),
        Err(e) => return Err(PictureError::Start(e)),
    };
    // All of the input before any output is read: `dot` reads the whole graph before it writes anything, so
    // neither side can block on a full pipe. Dropping stdin ends the input. A failed write (`dot` quit early)
    // is reported after its exit status, which with its stderr says more.
    let written = match child.stdin.take() {
        Some(mut stdin) => stdin.write_all(dot.as_bytes()),
        None => Ok(()),
    };
    let output = child.wait_with_output().map_err(PictureError::Start)?;
    if !output.status.success() {
        return Err(PictureError::Render {
            name: name.to_owned(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    written.map_err(PictureError::Start)?;
    String::from_utf8(output.stdout).map_err(|_| PictureError::NotSvg(name.to_owned()))
}

/// `svg` with the line `stamp` inserted right before its root `<svg` element, that is after the XML declaration,
/// the doctype and Graphviz's own comments; `None` when there is no `<svg` element.
fn insert_stamp(svg: &str, stamp: &str) -> Option<String> {
    // `<svg` followed by whitespace or `>`: the doctype says `DOCTYPE svg`, and no element is named `svgX`.
    let at = svg
        .match_indices("<svg")
        .map(|(at, _)| at)
        .find(|&at| svg[at + "<svg".len()..].chars().next().is_some_and(|c| c.is_ascii_whitespace() || c == '>'))?;
    let mut out = String::with_capacity(svg.len() + stamp.len() + 1);
    out.push_str(&svg[..at]);
    out.push_str(stamp);
    out.push('\n');
    out.push_str(&svg[at..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head of what Graphviz 2.43 writes, shortened.
    const GRAPHVIZ: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n\
        <!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\"\n \"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\">\n\
        <!-- Generated by graphviz version 2.43.0 (0)\n -->\n\
        <!-- Title: Echo Pages: 1 -->\n\
        <svg width=\"8pt\" height=\"8pt\">\n<g id=\"graph0\"></g>\n</svg>\n";

    #[test]
    fn the_stamp_goes_right_before_the_svg_element() {
        let stamped = insert_stamp(GRAPHVIZ, "<!-- stamp -->").expect("an svg element");
        let (head, tail) = stamped.split_once("<!-- stamp -->\n").expect("the stamp on a line of its own");
        assert!(tail.starts_with("<svg width="), "{stamped}");
        assert!(head.starts_with("<?xml") && head.ends_with("<!-- Title: Echo Pages: 1 -->\n"), "{stamped}");
        assert_eq!(stamped.replace("<!-- stamp -->\n", ""), GRAPHVIZ, "nothing else changes");
    }

    #[test]
    fn the_stamp_is_found_again_by_the_check() {
        let dot = "digraph Echo {\n}\n";
        let stamped = insert_stamp(GRAPHVIZ, &stamp::stamp("Echo", dot)).expect("an svg element");
        assert_eq!(stamped.lines().filter(|l| l.starts_with(stamp::STAMP_PREFIX)).count(), 1);
        assert!(stamped.lines().any(|l| l == stamp::stamp("Echo", dot)));
    }

    #[test]
    fn no_svg_element_no_stamp() {
        assert_eq!(insert_stamp("", "<!-- stamp -->"), None);
        assert_eq!(insert_stamp("<!DOCTYPE svg>\n<svgx/>\n", "<!-- stamp -->"), None);
        assert_eq!(insert_stamp("<svg>", "<!-- s -->").as_deref(), Some("<!-- s -->\n<svg>"));
    }
}
