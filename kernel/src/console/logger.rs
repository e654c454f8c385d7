//! The `log` backend: timestamped lines on every console device.
//!
//! Format: `[   seconds.millis] LEVEL message` (with the module path at debug and trace). The level is set at
//! boot to `info` and changed at run time by the `log` command.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let nanos = crate::time::uptime_nanos();
        let (secs, millis) = (nanos / 1_000_000_000, (nanos / 1_000_000) % 1000);
        match record.level() {
            Level::Debug | Level::Trace => crate::println!(
                "[{secs:5}.{millis:03}] {:<5} {}: {}",
                record.level(),
                record.module_path().unwrap_or("?"),
                record.args()
            ),
            level => crate::println!("[{secs:5}.{millis:03}] {level:<5} {}", record.args()),
        }
    }

    fn flush(&self) {}
}

/// Installs the logger at `info`.
pub fn init() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}
