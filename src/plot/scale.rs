//! The `bench scale` chart: the multikernel's figures against core count, gathered from one boot per width
//! (each boot prints one `scale` line of `key=value` pairs). Panels: a replicated update reaching every core and
//! confirmed, one by one and along the tree (median with min-max bars); messages on the busiest core per
//! update; a name bind + unbind; the time to bring the cores online; memory per core. Also a Markdown table
//! of the same figures for docs/multikernel.md.
//!
//! Both axes are logarithmic (cores to base 2): a cost that grows with the cores is a rising line, one that does
//! not is flat. Memory per core is the growth of memory in use from the narrowest boot given (best: one core),
//! divided by the cores added.

use super::PlotError;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// A figure as median, minimum and maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    /// The median.
    pub median: u64,
    /// The least.
    pub min: u64,
    /// The most.
    pub max: u64,
}

/// One boot's `scale` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Width {
    /// Cores online.
    pub cores: u32,
    /// Milliseconds the boot core spent bringing the others online.
    pub start_ms: f64,
    /// Memory in use after the measurements, in KiB.
    pub used_kib: u64,
    /// A replicated update reaching every core and confirmed, one by one.
    pub one_by_one: Option<Spread>,
    /// The same along the tree.
    pub tree: Option<Spread>,
    /// Messages the busiest core sent and took per update, one by one.
    pub busiest_one_by_one: Option<u64>,
    /// The same along the tree.
    pub busiest_tree: Option<u64>,
    /// A name bind + unbind.
    pub bind_unbind: Option<Spread>,
    /// The unit of the cycle figures (`tsc` or `instructions`).
    pub unit: String,
}

/// Whether `text` holds at least one `scale` line.
pub fn holds_scale_lines(text: &str) -> bool {
    text.lines().any(|line| parse_line(line).is_some())
}

/// Every `scale` line of `text`, by core count (the last line of a width wins).
pub fn parse(text: &str) -> Vec<Width> {
    let mut widths: Vec<Width> = Vec::new();
    let mut unit = String::from("tsc");
    for line in text.lines() {
        if let Some(found) = line.split_whitespace().find_map(|word| word.strip_prefix("unit=")) {
            unit = found.to_string();
        }
        if let Some(mut width) = parse_line(line) {
            width.unit.clone_from(&unit);
            widths.retain(|w| w.cores != width.cores);
            widths.push(width);
        }
    }
    widths.sort_by_key(|w| w.cores);
    widths
}

/// A `scale cores=N ...` line; `None` for anything else or a line without its core count.
fn parse_line(line: &str) -> Option<Width> {
    let rest = line.trim().strip_prefix("scale ")?;
    let value =
        |key: &str| rest.split_whitespace().find_map(|pair| pair.strip_prefix(key).and_then(|v| v.strip_prefix('=')));
    let spread = |key: &str| {
        let mut parts = value(key)?.split('/').map(|p| p.parse::<u64>().ok());
        Some(Spread { median: parts.next()??, min: parts.next()??, max: parts.next()?? })
    };
    let number = |key: &str| value(key)?.parse::<u64>().ok();
    Some(Width {
        cores: value("cores")?.parse().ok()?,
        start_ms: value("start_ms").and_then(|v| v.parse().ok()).unwrap_or(0.0),
        used_kib: number("used_kib")?,
        one_by_one: spread("update_one_by_one"),
        tree: spread("update_tree"),
        busiest_one_by_one: number("busiest_one_by_one"),
        busiest_tree: number("busiest_tree"),
        bind_unbind: spread("bind_unbind"),
        unit: String::new(),
    })
}

/// Memory per core at `width`: the growth from the narrowest width, per core added (`None` for the narrowest).
fn memory_per_core(widths: &[Width], width: &Width) -> Option<u64> {
    let base = widths.first()?;
    let added = u64::from(width.cores.checked_sub(base.cores).filter(|n| *n > 0)?);
    Some(width.used_kib.saturating_sub(base.used_kib) / added)
}

/// The figures as a Markdown table.
pub fn table(widths: &[Width]) -> String {
    let unit = widths.first().map_or("tsc", |w| w.unit.as_str());
    let cell = |spread: Option<Spread>| spread.map_or("-".into(), |s| s.median.to_string());
    let count = |n: Option<u64>| n.map_or("-".into(), |n| n.to_string());
    let mut out = format!(
        "| cores | online after (ms) | memory per core (KiB) | update, one by one ({unit}) | update, tree ({unit}) \
         | busiest core's messages (one by one / tree) | name bind + unbind ({unit}) |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for w in widths {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {} | {} | {} | {} / {} | {} |",
            w.cores,
            w.start_ms,
            memory_per_core(widths, w).map_or("-".into(), |kib| kib.to_string()),
            cell(w.one_by_one),
            cell(w.tree),
            count(w.busiest_one_by_one),
            count(w.busiest_tree),
            cell(w.bind_unbind),
        );
    }
    out
}

/// One line of a panel: its name, colour, and its points (log2 of the cores, then the figure).
struct Series {
    name: &'static str,
    color: RGBColor,
    points: Vec<(f64, Spread)>,
}

const BLUE: RGBColor = RGBColor(0x3b, 0x6e, 0xa8);
const ORANGE: RGBColor = RGBColor(0xe0, 0x8a, 0x2c);

/// Draws the panels into an SVG at `output`.
pub fn render(widths: &[Width], output: &Path) -> Result<(), PlotError> {
    let draw = |e: &dyn std::fmt::Display| PlotError::Draw(e.to_string());
    let x = |w: &Width| f64::from(w.cores.max(1)).log2();
    let exact = |n: u64| Spread { median: n, min: n, max: n };
    let series = |name, color, pick: &dyn Fn(&Width) -> Option<Spread>| Series {
        name,
        color,
        points: widths.iter().filter_map(|w| Some((x(w), pick(w)?))).collect(),
    };
    let unit = widths.first().map_or("tsc", |w| w.unit.as_str());
    let unit = if unit == "instructions" { "guest instructions" } else { "TSC cycles under TCG" };
    let panels = [
        (
            format!("update reaching every core + acks ({unit})"),
            vec![series("one by one", ORANGE, &|w| w.one_by_one), series("tree (fan-out 4)", BLUE, &|w| w.tree)],
        ),
        (
            "messages on the busiest core per update".to_string(),
            vec![
                series("one by one", ORANGE, &|w| w.busiest_one_by_one.map(exact)),
                series("tree (fan-out 4)", BLUE, &|w| w.busiest_tree.map(exact)),
            ],
        ),
        (format!("name bind + unbind ({unit})"), vec![series("bind + unbind", BLUE, &|w| w.bind_unbind)]),
        (
            "bringing the cores online (ms, boot core)".to_string(),
            vec![series("all cores", BLUE, &|w| (w.cores > 1).then(|| exact(w.start_ms.round() as u64)))],
        ),
        (
            "memory per core (KiB)".to_string(),
            vec![series("per core added", BLUE, &|w| memory_per_core(widths, w).map(exact))],
        ),
    ];
    const PANEL: (u32, u32) = (520, 340);
    let (across, down) = (3, panels.len().div_ceil(3));
    let root = SVGBackend::new(output, (PANEL.0 * across as u32, PANEL.1 * down as u32 + 40)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw(&e))?;
    let root = root
        .titled(
            "bench scale: the multikernel against core count (QEMU TCG; see docs/multikernel.md)",
            ("sans-serif", 20),
        )
        .map_err(|e| draw(&e))?;
    // Room on the right for the widest point's label.
    let right = widths.last().map_or(1.0, x).max(1.0) + 1.2;
    for (area, (title, lines)) in root.split_evenly((down, across)).iter().zip(&panels) {
        let points = || lines.iter().flat_map(|s| &s.points).map(|(_, s)| s);
        let top = points().map(|s| s.max).max().unwrap_or(1).max(1);
        // From a power of ten, so that the axis has at least one labelled line below the figures.
        let bottom = points().map(|s| s.min).min().unwrap_or(1).max(2) / 2;
        let bottom = 10u64.pow(bottom.ilog10());
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 15))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.3f64..right, (bottom..top.saturating_mul(2)).log_scale())
            .map_err(|e| draw(&e))?;
        chart
            .configure_mesh()
            .x_desc("cores")
            .x_labels(right.ceil() as usize + 2)
            .x_label_formatter(&|v| {
                // Powers of two up to the widest boot, which is named as it is (255, not 256).
                let widest = widths.last().map_or(1, |w| w.cores.max(1));
                match (v.fract() == 0.0 && *v >= 0.0).then(|| 1u64 << *v as u32) {
                    Some(cores) if cores < u64::from(widest) => cores.to_string(),
                    Some(cores) if cores / 2 < u64::from(widest) => widest.to_string(),
                    _ => String::new(),
                }
            })
            .y_label_formatter(&|v| compact(*v))
            .draw()
            .map_err(|e| draw(&e))?;
        for line in lines {
            let color = line.color;
            chart
                .draw_series(LineSeries::new(line.points.iter().map(|(x, s)| (*x, s.median)), color.stroke_width(2)))
                .map_err(|e| draw(&e))?
                .label(line.name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
            chart
                .draw_series(
                    line.points.iter().map(|(x, s)| ErrorBar::new_vertical(*x, s.min, s.median, s.max, color, 6)),
                )
                .map_err(|e| draw(&e))?;
            // The widest point's figure, written beside it: the number a reader looks for.
            if let Some((x, s)) = line.points.last() {
                let label =
                    Text::new(compact(s.median), (*x + 0.15, s.median), ("sans-serif", 12).into_font().color(&color));
                chart.draw_series([label]).map_err(|e| draw(&e))?;
            }
        }
        if lines.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| draw(&e))?;
        }
    }
    root.present().map_err(|e| draw(&e))
}

/// `v` with a `k` or `M` suffix where that is shorter (axis labels of millions of cycles stay readable).
fn compact(v: u64) -> String {
    match v {
        0..10_000 => v.to_string(),
        10_000..1_000_000 => format!("{}k", v / 1000),
        _ => format!("{:.1}M", v as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNS: &str = "\
plurality> bench scale
bench scale: cycles as median/min/max (41 probes; bind + unbind 21 rounds of 20); unit=tsc
scale cores=1 of=1 start_ms=0.000 used_kib=3136 update_one_by_one=- messages_one_by_one=- busiest_one_by_one=- \
update_tree=- messages_tree=- busiest_tree=- bind_unbind=282178/266366/1119388
[    0.589] INFO  stopped 0 other core(s)
scale cores=4 of=4 start_ms=33.966 used_kib=3772 update_one_by_one=275449/241332/703310 messages_one_by_one=6 \
busiest_one_by_one=6 update_tree=268486/231420/1195714 messages_tree=6 busiest_tree=6 bind_unbind=1021471/954034/2119184
scale cores=64 of=64 start_ms=680.886 used_kib=22408 update_one_by_one=6399208/3630400/16014720 \
messages_one_by_one=126 busiest_one_by_one=126 update_tree=4519606/3471192/22167381 messages_tree=126 busiest_tree=10 \
bind_unbind=8934205/6002523/12954126
";

    #[test]
    fn scale_lines_are_read_by_width() {
        let widths = parse(RUNS);
        assert_eq!(widths.iter().map(|w| w.cores).collect::<Vec<_>>(), [1, 4, 64]);
        assert_eq!(widths[0].one_by_one, None);
        assert_eq!(widths[2].tree, Some(Spread { median: 4519606, min: 3471192, max: 22167381 }));
        assert_eq!((widths[2].busiest_one_by_one, widths[2].busiest_tree), (Some(126), Some(10)));
        assert_eq!(widths[1].start_ms, 33.966);
        assert_eq!(memory_per_core(&widths, &widths[2]), Some((22408 - 3136) / 63));
        assert!(widths.iter().all(|w| w.unit == "tsc"));
    }

    #[test]
    fn other_text_is_not_a_scale_run() {
        assert!(!holds_scale_lines("plurality> bench\nscale of things\nscaled cores=4\n"));
        assert!(holds_scale_lines(RUNS));
    }

    #[test]
    fn the_table_and_chart_show_every_width() {
        let widths = parse(RUNS);
        let table = table(&widths);
        assert_eq!(table.lines().count(), 2 + widths.len());
        assert!(table.contains("| 64 | 680.9 | 305 | 6399208 | 4519606 | 126 / 10 | 8934205 |"), "{table}");
        let out = std::env::temp_dir().join(format!("bench-scale-{}.svg", std::process::id()));
        render(&widths, &out).expect("drawn");
        let svg = std::fs::read_to_string(&out).expect("written");
        let _ = std::fs::remove_file(&out);
        let texts: Vec<&str> = svg.split(['<', '>']).map(str::trim).collect();
        for text in ["one by one", "tree (fan-out 4)", "memory per core (KiB)", "64", "6.4M", "305"] {
            assert!(texts.contains(&text), "'{text}' missing from the chart");
        }
    }
}
