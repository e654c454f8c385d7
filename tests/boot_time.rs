//! Boot-time measurement (BIOS unless told otherwise, headless): wall time from starting the runner to the first `plurality> `.
//!
//! Ignored by a plain `cargo test` (it boots ten times and only reports); run it alone so that parallel tests
//! do not skew it:
//!
//! ```text
//! cargo test --test boot_time -- --ignored --nocapture
//! ```
//!
//! `PLURALITY_BOOT_RUNS=N` changes the number of boots (default 10); `PLURALITY_BOOT_ARGS="--uefi"` adds runner
//! flags (split at spaces). The figure includes the runner's start and
//! its image check (a few milliseconds) on top of QEMU's start, firmware, bootloader and kernel initialisation,
//! i.e. what a user of `cargo run -- --headless` waits for. Results go to docs/benchmarks.md ("Boot time").

#![forbid(unsafe_code)]

mod harness;

use std::time::{Duration, Instant};

use harness::{PROMPT, Runner, boot_timeout};

#[test]
#[ignore = "measurement, not a check: run with --ignored --nocapture"]
fn boot_to_prompt_headless() {
    let runs: usize = std::env::var("PLURALITY_BOOT_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(10).max(1);
    let extra = std::env::var("PLURALITY_BOOT_ARGS").unwrap_or_default();
    let extra: Vec<&str> = extra.split_whitespace().collect();
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let mut r = Runner::builder().args(["--headless"]).args(extra.iter().copied()).spawn();
        r.wait_for(PROMPT, boot_timeout());
        times.push(start.elapsed());
        r.shutdown();
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median =
        if runs % 2 == 1 { ms(times[runs / 2]) } else { (ms(times[runs / 2 - 1]) + ms(times[runs / 2])) / 2.0 };
    println!(
        "boot to prompt (headless{}{}), {runs} runs: median {median:.0} ms, min {:.0} ms, max {:.0} ms",
        if extra.is_empty() { "" } else { ", " },
        extra.join(" "),
        ms(times[0]),
        ms(times[runs - 1])
    );
    println!("all: {:?}", times.iter().map(|&d| ms(d).round() as u64).collect::<Vec<_>>());
}
