//! The `bench protection` chart: one panel per operation, one bar per protection mode (`type`, `ring3`,
//! `ring3-own`), each bar labelled with its figure. docs/benchmarks.md shows the chart of the published run.
//!
//! Not here: running the benchmark (that is the OS's `bench protection`; save its output, e.g. with
//! `printf 'bench protection\nshutdown\n' | cargo run -q -- --headless --icount > run.txt`).

use super::PlotError;
use plotters::prelude::*;
use std::fmt;
use std::path::Path;

/// The protection modes, in the order of the table's columns.
const MODES: [&str; 3] = ["type", "ring3", "ring3-own"];

/// One operation of the table: its name and each mode's figure (the median), if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The operation.
    pub name: String,
    /// The figure per mode, in [`MODES`] order; `None` for a mode without one (`-`, `failed`).
    pub cells: [Option<u64>; 3],
}

/// The rows of the first `bench protection` table in `text`: the lines after its header, up to the events table.
/// Rows with no figure at all, and the relative row (percentages), are left out.
pub fn parse(text: &str) -> Result<Vec<Row>, PlotError> {
    let mut lines = text.lines().skip_while(|line| !is_header(line));
    if lines.next().is_none() {
        return Err(PlotError::NoTable);
    }
    let rows = lines
        .take_while(|line| !line.starts_with("events per operation") && !line.trim().is_empty())
        // Not the relative row, the note under it, or the kernel's log lines the run interleaves (a ring-3
        // program's exit is logged with its figure as the status).
        .filter(|line| !line.contains('%') && !line.starts_with('(') && !line.starts_with('['))
        .filter_map(row)
        .collect();
    Ok(rows)
}

fn is_header(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    words == ["operation", "type", "ring3", "ring3-own"]
}

/// A table line: the name, then three cells, each `N`, `N (MIN-MAX)`, `-` or `failed`.
fn row(line: &str) -> Option<Row> {
    let mut tokens: Vec<&str> = line.split_whitespace().collect();
    let mut cells = [None; 3];
    for cell in cells.iter_mut().rev() {
        let mut last = tokens.pop()?;
        if last.starts_with('(') && last.ends_with(')') {
            last = tokens.pop()?;
        }
        *cell = last.parse().ok();
    }
    let name = tokens.join(" ");
    (!name.is_empty() && cells.iter().any(Option::is_some)).then_some(Row { name, cells })
}

/// Draws `rows` into an SVG at `output`: a grid of panels, three to a line.
pub fn render(rows: &[Row], output: &Path, title: &str) -> Result<(), PlotError> {
    const PANEL: (u32, u32) = (420, 300);
    let across = 3;
    let down = rows.len().div_ceil(across).max(1);
    let size = (PANEL.0 * across as u32, PANEL.1 * down as u32 + 40);
    let root = SVGBackend::new(output, size).into_drawing_area();
    let draw = |e: &dyn fmt::Display| PlotError::Draw(e.to_string());
    root.fill(&WHITE).map_err(|e| draw(&e))?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(|e| draw(&e))?;
    let colors = [RGBColor(0x3b, 0x6e, 0xa8), RGBColor(0xe0, 0x8a, 0x2c), RGBColor(0xc0, 0x39, 0x2b)];
    for (panel, row) in root.split_evenly((down, across)).iter().zip(rows) {
        let top = row.cells.iter().flatten().copied().max().unwrap_or(1).max(1);
        let mut chart = ChartBuilder::on(panel)
            .caption(&row.name, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(24)
            .y_label_area_size(56)
            .build_cartesian_2d((0u32..3).into_segmented(), 0u64..top + top / 5)
            .map_err(|e| draw(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|value| match value {
                SegmentValue::CenterOf(i) => MODES.get(*i as usize).copied().unwrap_or("").to_string(),
                _ => String::new(),
            })
            .draw()
            .map_err(|e| draw(&e))?;
        for (mode, figure) in row.cells.iter().enumerate() {
            let Some(figure) = *figure else { continue };
            let x = mode as u32;
            let bar = Rectangle::new(
                [(SegmentValue::Exact(x), 0), (SegmentValue::Exact(x + 1), figure)],
                colors[mode].filled(),
            );
            chart.draw_series([bar]).map_err(|e| draw(&e))?;
            let label =
                Text::new(figure.to_string(), (SegmentValue::CenterOf(x), figure + top / 25), ("sans-serif", 13));
            chart.draw_series([label]).map_err(|e| draw(&e))?;
        }
    }
    root.present().map_err(|e| draw(&e))
}

/// Charts the run `text` into `output`; returns how many operations it shows.
pub fn run(text: &str, output: &Path) -> Result<usize, PlotError> {
    let rows = parse(text)?;
    let unit = text.lines().find_map(|line| line.split_once("unit = ")).map_or("", |(_, unit)| unit);
    let unit = unit.split(';').next().unwrap_or("");
    render(&rows, output, &format!("bench protection: median per operation, {unit}"))?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "\
plurality> bench protection
bench protection: unit = guest instructions (-icount); 21 rounds each; median (min-max), ring 3 in-program: median
operation                                    type                    ring3                ring3-own
null call                              17 (17-17)                       66                       66
[    0.029] WARN  sip bench-ring3#5 exited with failure code 66
SIP create + exit             16646 (16542-16653)      49605 (49499-50385)      58568 (58548-60617)
ring 0 -> ring 3 (same core)                        -         3265 (3265-3384)         3263 (3263-3381)
ping-pong (cross-core)        14896 (14846-14897)                   failed                    21903
kv workload vs type                           0 %                  +41.7 %                  +41.6 %
(Singularity, all SIPs in their own ring-3 domain: WebFiles +37.7 % against type-based isolation)
events per operation: ring-3 entries / CR3 writes / TLB flushes / IPIs
null call                     0.00/0.00/0.00/0.00      1.00/0.00/0.00/0.00      1.00/0.00/0.00/0.00
";

    #[test]
    fn the_table_is_read_row_by_row() {
        let rows = parse(RUN).expect("a table");
        let expected = [
            ("null call", [Some(17), Some(66), Some(66)]),
            ("SIP create + exit", [Some(16646), Some(49605), Some(58568)]),
            ("ring 0 -> ring 3 (same core)", [None, Some(3265), Some(3263)]),
            ("ping-pong (cross-core)", [Some(14896), None, Some(21903)]),
        ];
        let got: Vec<(&str, [Option<u64>; 3])> = rows.iter().map(|r| (r.name.as_str(), r.cells)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn input_without_a_table_is_refused() {
        assert!(matches!(parse("plurality> help\nno bench here\n"), Err(PlotError::NoTable)));
    }

    #[test]
    fn the_chart_names_every_operation_and_figure() {
        let rows = parse(RUN).expect("a table");
        let out = std::env::temp_dir().join(format!("bench-plot-{}.svg", std::process::id()));
        render(&rows, &out, "test").expect("drawn");
        let svg = std::fs::read_to_string(&out).expect("written");
        let _ = std::fs::remove_file(&out);
        assert!(svg.starts_with("<svg"), "not an SVG");
        for text in ["null call", "SIP create + exit", "ping-pong (cross-core)", "ring3-own", "58568", "3263"] {
            assert!(svg.contains(text), "'{text}' missing from the chart");
        }
        assert!(!svg.contains("41.7"), "the relative row is not a bar");
    }
}
