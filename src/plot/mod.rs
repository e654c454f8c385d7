//! `cargo run -- bench-plot INPUT OUTPUT`: turns saved benchmark output into an SVG chart. The input says which
//! chart: `scale` lines (from `bench scale`, one boot per width, concatenated) give the scaling chart
//! (`scale`); otherwise the `bench protection` table gives the chart per operation and mode (`protection`).
//!
//! Not here: running the benchmarks (the OS's `bench` command does; docs/benchmarks.md and docs/multikernel.md
//! give the commands that save their output).
//!
//! Dependency: `plotters`, with its SVG backend only (no font files: text goes into the SVG as text).

mod protection;
mod scale;

use std::fmt;
use std::path::Path;

/// Why no chart was made.
#[derive(Debug)]
pub enum PlotError {
    /// The input has neither `scale` lines nor a `bench protection` table (its header line,
    /// `operation  type  ring3  ring3-own`).
    NoTable,
    /// Reading the input failed.
    Read(std::io::Error),
    /// Drawing or writing the SVG failed.
    Draw(String),
}

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlotError::NoTable => f.write_str(
                "the input has neither `scale` lines (from `bench scale`) nor a `bench protection` table (its \
                 header line is missing)",
            ),
            PlotError::Read(e) => write!(f, "cannot read the input: {e}"),
            PlotError::Draw(e) => write!(f, "cannot draw the chart: {e}"),
        }
    }
}

/// What a chart shows, for the runner's report.
#[derive(Debug)]
pub struct Charted {
    /// Which benchmark it charts.
    pub benchmark: &'static str,
    /// How many operations (protection) or core counts (scale) it shows.
    pub items: usize,
    /// A Markdown table of the figures, for the docs (scale only).
    pub table: Option<String>,
}

/// `bench-plot INPUT OUTPUT`: reads the saved output, writes the chart its contents call for.
pub fn run(input: &Path, output: &Path) -> Result<Charted, PlotError> {
    let text = std::fs::read_to_string(input).map_err(PlotError::Read)?;
    if scale::holds_scale_lines(&text) {
        let widths = scale::parse(&text);
        scale::render(&widths, output)?;
        Ok(Charted { benchmark: "bench scale", items: widths.len(), table: Some(scale::table(&widths)) })
    } else {
        let items = protection::run(&text, output)?;
        Ok(Charted { benchmark: "bench protection", items, table: None })
    }
}
