//! The committed contract pictures (docs/contracts/) still show the contracts: for every system contract,
//! `NAME.dot` is its `to_dot()`, `NAME.svg` carries the stamp of that text, and docs/contracts.md shows the SVG.
//!
//! Needs no Graphviz (CI does not install it): the SVG is judged by its stamp, the hash of the text it was
//! rendered from, which `cargo run -- contract-pictures` writes into it. The stamp and the check are the runner's
//! own code (src/pictures/stamp.rs), included here rather than copied.

#![forbid(unsafe_code)]

#[path = "../src/pictures/stamp.rs"]
mod stamp;

use std::path::{Path, PathBuf};

fn pictures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join("contracts")
}

#[test]
fn every_contract_has_an_up_to_date_picture() {
    let dir = pictures_dir();
    let stale: Vec<String> = contracts::all()
        .iter()
        .filter_map(|info| stamp::check(&dir, info.name, &info.to_dot()).err())
        .map(|stale| stale.to_string())
        .collect();
    assert!(stale.is_empty(), "outdated contract pictures:\n{}", stale.join("\n"));
}

#[test]
fn no_picture_of_a_contract_that_is_gone() {
    let names: Vec<&str> = contracts::all().iter().map(|info| info.name).collect();
    let leftovers = stamp::leftovers(&pictures_dir(), &names);
    assert!(
        leftovers.is_empty(),
        "pictures of no system contract (renamed or removed? delete them and run \
         `cargo run -- contract-pictures`): {leftovers:?}"
    );
}

#[test]
fn the_documentation_shows_every_picture() {
    let docs_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join("contracts.md");
    let docs = std::fs::read_to_string(&docs_path).unwrap_or_else(|e| panic!("{}: {e}", docs_path.display()));
    for info in contracts::all() {
        let image = format!("![{0}](contracts/{0}.svg)", info.name);
        assert!(docs.contains(&image), "docs/contracts.md does not show contract {}: add `{image}`", info.name);
    }
}
