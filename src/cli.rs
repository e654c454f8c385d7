//! Command-line parsing for the runner: `cargo run -- [FLAGS]`.
//!
//! Hand-written on purpose (no clap): the flag set is small, and keeping the root package's dependency tree tiny
//! keeps `cargo run` fast on a cold machine. This module only turns arguments into an [`Action`]; it touches no
//! files and starts no processes, so every path through it is unit-tested below.
//!
//! Invariants: every flag listed in [`HELP`] is parsed here and vice versa (a unit test checks the list); every
//! rejected argument yields a [`UsageError`] whose message names the flag and the offending value.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

/// Default guest memory in MiB (`--memory`).
pub const DEFAULT_MEMORY_MIB: u32 = 256;
/// Default number of virtual CPUs (`--smp`).
pub const DEFAULT_SMP: u32 = 1;
/// Upper bound for `--smp`: the kernel addresses cores through 8-bit xAPIC IDs.
pub const MAX_SMP: u32 = 255;

/// The values of `--shell-protection`: the kernel's protection modes, by the names `spawn --protection` takes.
const SHELL_PROTECTIONS: [&str; 3] = ["type", "ring3", "ring3-own"];

/// The `--help` text. Keep it in sync with [`parse`] and README.md ("Runner flags").
pub const HELP: &str = "\
plurality: build the Plurality kernel images and boot them in QEMU

USAGE:
    cargo run -- [FLAGS]

FLAGS:
    --uefi              boot the UEFI image with OVMF firmware (default: the BIOS image);
                        OVMF is looked up in the usual Debian paths, or set PLURALITY_OVMF=FILE
    --smp N             number of virtual CPUs (default 1, at most 255: xAPIC IDs, as TCG has no x2APIC)
    --memory MiB        guest memory in MiB (default 256)
    --headless          no QEMU window (-display none); the serial console stays on stdin/stdout.
                        Implied when neither DISPLAY nor WAYLAND_DISPLAY is set
    --gdb               QEMU starts halted and waits for gdb on localhost:1234 (-s -S);
                        the runner prints the gdb command line
    --icount            deterministic guest clock: one tick per guest instruction (-icount shift=0);
                        meant for single-core benchmarks
    --shell-protection MODE
                        run the console's shell as type (default), ring3 or ring3-own
    --timeout SECS      kill QEMU and exit with status 3 after SECS seconds
    --qemu-arg ARG      pass ARG to QEMU unchanged (repeatable, e.g. --qemu-arg -S)
    --print-images      print the paths of the BIOS and UEFI images (one per line) and exit
    -h, --help          print this help and exit

OTHER COMMANDS:
    cargo run -- bench-plot INPUT OUTPUT
                        turn a saved `bench protection` run (the serial output) into an SVG chart, or the
                        `bench scale` runs of several widths (their outputs in one file) into a chart of the
                        figures against core count, printing them as a Markdown table
    cargo run -- contract-pictures [DIR]
                        render every system contract's state machine into DIR (default: the repository's
                        docs/contracts): NAME.dot and NAME.svg; needs Graphviz (Debian: graphviz)

SERIAL CONSOLE:
    When stdin is a terminal, QEMU takes the terminal (-serial mon:stdio): quit with Ctrl-A X, or type
    `shutdown`. When stdin is not a terminal (a pipe or a file), the runner relays: it prints everything the
    kernel writes and sends its stdin to the kernel once the first `plurality> ` prompt has appeared, e.g.
        printf 'help\\nshutdown\\n' | cargo run -- --headless

EXIT STATUS:
    0  the kernel shut down cleanly
    1  kernel panic
    2  QEMU ended otherwise (triple fault or reset: status 0; any other unexpected status)
    3  --timeout expired (QEMU was killed)
    4  nothing was booted: bad arguments, QEMU or OVMF missing, QEMU refused its arguments
";

/// Which firmware boots the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS (QEMU's default) with the BIOS disk image.
    Bios,
    /// OVMF with the UEFI disk image.
    Uefi,
}

/// Everything the runner needs to know to boot once.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// BIOS or UEFI.
    pub firmware: Firmware,
    /// `-smp` value.
    pub smp: u32,
    /// `-m` value in MiB.
    pub memory_mib: u32,
    /// `--headless` was given (the runner may also go headless when there is no display).
    pub headless: bool,
    /// `--gdb`: `-s -S`.
    pub gdb: bool,
    /// `--icount`: `-icount shift=0`.
    pub icount: bool,
    /// `--shell-protection`: the console shell's protection mode (`type`, `ring3`, `ring3-own`), if given.
    pub shell_protection: Option<&'static str>,
    /// `--timeout`: kill QEMU after this long.
    pub timeout: Option<Duration>,
    /// `--qemu-arg` values, in order.
    pub qemu_args: Vec<OsString>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            firmware: Firmware::Bios,
            smp: DEFAULT_SMP,
            memory_mib: DEFAULT_MEMORY_MIB,
            headless: false,
            gdb: false,
            icount: false,
            shell_protection: None,
            timeout: None,
            qemu_args: Vec::new(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `--help`.
    Help,
    /// `--print-images`.
    PrintImages,
    /// Boot with these options.
    Boot(Options),
    /// `bench-plot INPUT OUTPUT`: chart a saved `bench protection` run, or `bench scale` runs.
    BenchPlot { input: std::path::PathBuf, output: std::path::PathBuf },
    /// `contract-pictures [DIR]`: render every system contract into `dir`.
    ContractPictures { dir: std::path::PathBuf },
}

/// Where `contract-pictures` writes without a DIR: docs/contracts of this repository, wherever `cargo run` is
/// started from (the pictures belong to the docs that show them).
pub fn default_pictures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join("contracts")
}

/// A command line the runner cannot act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    /// An argument that is not a known flag.
    UnknownFlag(String),
    /// A flag that takes a value came last.
    MissingValue(&'static str),
    /// A flag's value did not parse or is out of range.
    InvalidValue {
        /// The flag, e.g. `--smp`.
        flag: &'static str,
        /// The value as given.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// `--flag=value` given for a flag that takes no value.
    UnexpectedValue(&'static str),
    /// An argument that is not valid UTF-8 where text is needed.
    NotUnicode(OsString),
    /// `bench-plot` without exactly an input and an output file.
    BenchPlotUsage,
    /// `contract-pictures` with more than one argument, or a flag.
    ContractPicturesUsage,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::UnknownFlag(flag) => write!(f, "unknown argument '{flag}'"),
            UsageError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            UsageError::InvalidValue { flag, value, expected } => {
                write!(f, "invalid value '{value}' for {flag}: expected {expected}")
            }
            UsageError::UnexpectedValue(flag) => write!(f, "{flag} takes no value"),
            UsageError::NotUnicode(arg) => write!(f, "argument {arg:?} is not valid UTF-8"),
            UsageError::BenchPlotUsage => {
                f.write_str("usage: bench-plot INPUT OUTPUT (a saved `bench protection` run or `bench scale` runs, the SVG to write)")
            }
            UsageError::ContractPicturesUsage => {
                f.write_str("usage: contract-pictures [DIR] (where to write the pictures; default docs/contracts)")
            }
        }
    }
}

impl std::error::Error for UsageError {}

/// Parses the arguments after the program name.
///
/// Accepts both `--flag value` and `--flag=value`. The value of `--qemu-arg` is taken verbatim even when it
/// starts with `-`, so `--qemu-arg -S` works. `--help` wins over everything else on the line, then
/// `--print-images`; other flags are still validated so a typo is never silently ignored.
pub fn parse<I>(args: I) -> Result<Action, UsageError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut opts = Options::default();
    let mut help = false;
    let mut print_images = false;
    let mut args = args.into_iter().peekable();
    if args.peek().is_some_and(|first| first == "bench-plot") {
        args.next();
        let rest: Vec<OsString> = args.collect();
        return match rest.as_slice() {
            [input, output] => Ok(Action::BenchPlot { input: input.into(), output: output.into() }),
            _ => Err(UsageError::BenchPlotUsage),
        };
    }
    if args.peek().is_some_and(|first| first == "contract-pictures") {
        args.next();
        let rest: Vec<OsString> = args.collect();
        return match rest.as_slice() {
            [] => Ok(Action::ContractPictures { dir: default_pictures_dir() }),
            // A flag here is a mistake (`--help`?), not a directory to create.
            [dir] if !dir.to_string_lossy().starts_with('-') => Ok(Action::ContractPictures { dir: dir.into() }),
            _ => Err(UsageError::ContractPicturesUsage),
        };
    }

    while let Some(arg) = args.next() {
        // Flag names are ASCII: a non-UTF-8 argument can only be valid as a separate `--qemu-arg` value,
        // which is consumed below without passing through here.
        let text = match arg.to_str() {
            Some(text) => text.to_owned(),
            None => return Err(UsageError::NotUnicode(arg)),
        };
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name.to_owned(), Some(value.to_owned())),
            _ => (text.clone(), None),
        };
        // Flags without a value.
        let switch = |flag: &'static str| match inline {
            Some(_) => Err(UsageError::UnexpectedValue(flag)),
            None => Ok(()),
        };
        match name.as_str() {
            "-h" | "--help" => {
                switch("--help")?;
                help = true;
            }
            "--print-images" => {
                switch("--print-images")?;
                print_images = true;
            }
            "--uefi" => {
                switch("--uefi")?;
                opts.firmware = Firmware::Uefi;
            }
            "--headless" => {
                switch("--headless")?;
                opts.headless = true;
            }
            "--gdb" => {
                switch("--gdb")?;
                opts.gdb = true;
            }
            "--icount" => {
                switch("--icount")?;
                opts.icount = true;
            }
            "--shell-protection" => {
                let value = value_of("--shell-protection", inline, &mut args)?;
                let mode = SHELL_PROTECTIONS.iter().find(|m| **m == value).ok_or(UsageError::InvalidValue {
                    flag: "--shell-protection",
                    value,
                    expected: "type, ring3 or ring3-own",
                })?;
                opts.shell_protection = Some(mode);
            }
            "--smp" => {
                let value = value_of("--smp", inline, &mut args)?;
                opts.smp = parse_number("--smp", &value, 1, MAX_SMP, "a whole number from 1 to 255")?;
            }
            "--memory" => {
                let value = value_of("--memory", inline, &mut args)?;
                opts.memory_mib = parse_number("--memory", &value, 1, u32::MAX, "a whole number of MiB, at least 1")?;
            }
            "--timeout" => {
                let value = value_of("--timeout", inline, &mut args)?;
                opts.timeout = Some(parse_seconds(&value)?);
            }
            "--qemu-arg" => {
                // Taken verbatim (even `-S`), and may be non-UTF-8 when given as a separate argument.
                let value = match inline {
                    Some(value) => OsString::from(value),
                    None => args.next().ok_or(UsageError::MissingValue("--qemu-arg"))?,
                };
                opts.qemu_args.push(value);
            }
            _ => return Err(UsageError::UnknownFlag(text)),
        }
    }

    Ok(if help {
        Action::Help
    } else if print_images {
        Action::PrintImages
    } else {
        Action::Boot(opts)
    })
}

/// The value of a flag: the `=value` part, or else the next argument.
fn value_of(
    flag: &'static str,
    inline: Option<String>,
    args: &mut impl Iterator<Item = OsString>,
) -> Result<String, UsageError> {
    if let Some(value) = inline {
        return Ok(value);
    }
    let value = args.next().ok_or(UsageError::MissingValue(flag))?;
    value.into_string().map_err(UsageError::NotUnicode)
}

fn parse_number(
    flag: &'static str,
    value: &str,
    min: u32,
    max: u32,
    expected: &'static str,
) -> Result<u32, UsageError> {
    match value.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(UsageError::InvalidValue { flag, value: value.to_owned(), expected }),
    }
}

fn parse_seconds(value: &str) -> Result<Duration, UsageError> {
    let invalid = || UsageError::InvalidValue {
        flag: "--timeout",
        value: value.to_owned(),
        expected: "a positive number of seconds, e.g. 30 or 2.5",
    };
    let secs: f64 = value.parse().map_err(|_| invalid())?;
    // `try_from_secs_f64` rejects NaN, infinities and negatives; zero would time out before QEMU starts.
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Action, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    fn boot(args: &[&str]) -> Options {
        match parse_strs(args) {
            Ok(Action::Boot(opts)) => opts,
            other => panic!("{args:?} gave {other:?}, expected Boot"),
        }
    }

    #[test]
    fn no_arguments_boot_bios_with_defaults() {
        assert_eq!(boot(&[]), Options::default());
        assert_eq!(Options::default().firmware, Firmware::Bios);
        assert_eq!(Options::default().memory_mib, 256);
        assert_eq!(Options::default().smp, 1);
    }

    #[test]
    fn every_flag_parses() {
        let opts = boot(&[
            "--uefi",
            "--smp",
            "4",
            "--memory=512",
            "--headless",
            "--gdb",
            "--icount",
            "--timeout",
            "2.5",
            "--qemu-arg",
            "-S",
            "--qemu-arg=-d",
        ]);
        assert_eq!(opts.firmware, Firmware::Uefi);
        assert_eq!(opts.smp, 4);
        assert_eq!(opts.memory_mib, 512);
        assert!(opts.headless && opts.gdb && opts.icount);
        assert_eq!(opts.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(opts.qemu_args, vec![OsString::from("-S"), OsString::from("-d")]);
    }

    #[test]
    fn help_and_print_images() {
        assert_eq!(parse_strs(&["--help"]), Ok(Action::Help));
        assert_eq!(parse_strs(&["-h"]), Ok(Action::Help));
        assert_eq!(parse_strs(&["--smp", "2", "--help"]), Ok(Action::Help));
        assert_eq!(parse_strs(&["--print-images"]), Ok(Action::PrintImages));
        // A typo next to --help is still reported.
        assert!(parse_strs(&["--help", "--bogus"]).is_err());
    }

    #[test]
    fn help_lists_every_flag() {
        for flag in [
            "--uefi",
            "--smp",
            "--memory",
            "--headless",
            "--gdb",
            "--icount",
            "--timeout",
            "--qemu-arg",
            "--print-images",
            "--help",
            "PLURALITY_OVMF",
        ] {
            assert!(HELP.contains(flag), "--help does not mention {flag}");
        }
    }

    #[test]
    fn errors_name_the_flag_and_value() {
        let msg = |args: &[&str]| parse_strs(args).unwrap_err().to_string();
        assert_eq!(msg(&["--bogus"]), "unknown argument '--bogus'");
        assert_eq!(msg(&["extra"]), "unknown argument 'extra'");
        assert_eq!(msg(&["--smp"]), "--smp needs a value");
        assert_eq!(msg(&["--qemu-arg"]), "--qemu-arg needs a value");
        assert_eq!(msg(&["--smp", "0"]), "invalid value '0' for --smp: expected a whole number from 1 to 255");
        assert!(msg(&["--smp", "256"]).contains("'256'"));
        assert!(msg(&["--smp", "four"]).contains("'four'"));
        assert!(msg(&["--memory", "-1"]).contains("--memory"));
        assert!(msg(&["--timeout", "0"]).contains("--timeout"));
        assert!(msg(&["--timeout", "NaN"]).contains("--timeout"));
        assert!(msg(&["--timeout", "-3"]).contains("--timeout"));
        assert_eq!(msg(&["--headless=yes"]), "--headless takes no value");
    }

    #[test]
    fn contract_pictures_takes_at_most_a_directory() {
        let dir = |args: &[&str]| match parse_strs(args) {
            Ok(Action::ContractPictures { dir }) => Ok(dir),
            Ok(other) => panic!("{args:?} gave {other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(dir(&["contract-pictures"]), Ok(default_pictures_dir()));
        assert!(default_pictures_dir().ends_with("docs/contracts"));
        assert_eq!(dir(&["contract-pictures", "out"]), Ok("out".into()));
        assert_eq!(dir(&["contract-pictures", "a", "b"]), Err(UsageError::ContractPicturesUsage));
        assert_eq!(dir(&["contract-pictures", "--help"]), Err(UsageError::ContractPicturesUsage));
        assert!(HELP.contains("contract-pictures [DIR]"));
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_qemu_arg_passes_through() {
        use std::os::unix::ffi::OsStringExt;
        let raw = OsString::from_vec(vec![b'-', 0xff]);
        let opts = match parse([OsString::from("--qemu-arg"), raw.clone()]) {
            Ok(Action::Boot(opts)) => opts,
            other => panic!("{other:?}"),
        };
        assert_eq!(opts.qemu_args, vec![raw.clone()]);
        assert!(matches!(parse([raw]), Err(UsageError::NotUnicode(_))));
    }

    #[test]
    fn shell_protection_takes_a_mode_and_nothing_else() {
        match parse_strs(&["--shell-protection", "ring3-own"]) {
            Ok(Action::Boot(opts)) => assert_eq!(opts.shell_protection, Some("ring3-own")),
            other => panic!("{other:?}"),
        }
        match parse_strs(&["--shell-protection=type"]) {
            Ok(Action::Boot(opts)) => assert_eq!(opts.shell_protection, Some("type")),
            other => panic!("{other:?}"),
        }
        let refused = parse_strs(&["--shell-protection", "ring5"]).expect_err("no such mode").to_string();
        assert!(refused.contains("'ring5'") && refused.contains("ring3-own"), "{refused}");
        assert!(parse_strs(&["--shell-protection"]).is_err());
    }
}
