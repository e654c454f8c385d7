//! `plurality`: the runner behind `cargo run`. Boots the kernel images that build.rs made in QEMU.
//!
//! This file only wires the modules together and turns results into exit statuses:
//! - `cli`: the command line (`--help` has the full list of flags and exit statuses);
//! - `images`: the built images and their stable copies in `<target dir>/images/`;
//! - `qemu`: finding QEMU and OVMF, the QEMU command line, what QEMU's exit status means;
//! - `session`: running QEMU, relaying the serial console, timeouts, never leaving QEMU behind;
//! - `plot`: `bench-plot`, the chart of a saved `bench protection` run or of `bench scale` runs;
//! - `pictures`: `contract-pictures`, the system contracts' state machines as Graphviz text and SVG.
//!
//! Exit statuses: 0 clean shutdown, 1 kernel panic, 2 any other end of QEMU (triple fault, reset, odd status),
//! 3 `--timeout`, 4 nothing booted (usage or setup error). The runner's own messages go to stderr prefixed with
//! `plurality: `; stdout carries only the guest's serial output (or `--help`/`--print-images`).

#![forbid(unsafe_code)]

mod cli;
mod images;
mod pictures;
mod plot;
mod qemu;
mod session;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use cli::{Action, Firmware, Options};
use images::Images;
use qemu::{Outcome, Plan, Serial, SetupError};

/// Exit status for "nothing was booted".
const EXIT_SETUP: u8 = 4;

fn main() -> ExitCode {
    let action = match cli::parse(std::env::args_os().skip(1)) {
        Ok(action) => action,
        Err(e) => {
            eprintln!("plurality: {e}\nplurality: see `cargo run -- --help` for the flags");
            return ExitCode::from(EXIT_SETUP);
        }
    };
    match action {
        Action::Help => {
            print!("{}", cli::HELP);
            ExitCode::SUCCESS
        }
        Action::PrintImages => match install_images() {
            Ok(copies) => {
                println!("{}", copies.bios.display());
                println!("{}", copies.uefi.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("plurality: {e}");
                ExitCode::from(EXIT_SETUP)
            }
        },
        Action::BenchPlot { input, output } => match plot::run(&input, &output) {
            Ok(charted) => {
                if let Some(table) = charted.table {
                    print!("{table}");
                }
                eprintln!("plurality: {} ({} items) charted in {}", charted.benchmark, charted.items, output.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("plurality: bench-plot: {e}");
                ExitCode::from(EXIT_SETUP)
            }
        },
        Action::ContractPictures { dir } => match pictures::run(&dir) {
            Ok(made) => {
                for path in &made.leftovers {
                    eprintln!("plurality: note: {} belongs to no contract (remove it by hand)", path.display());
                }
                eprintln!("plurality: {} contracts rendered into {}", made.contracts, dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("plurality: contract-pictures: {e}");
                ExitCode::from(EXIT_SETUP)
            }
        },
        Action::Boot(opts) => match boot(&opts) {
            Ok(outcome) => ExitCode::from(outcome.exit_code()),
            Err(e) => {
                eprintln!("plurality: {e}");
                ExitCode::from(EXIT_SETUP)
            }
        },
    }
}

/// Copies the built images to `<target dir>/images/` and returns the copies.
fn install_images() -> Result<Images, SetupError> {
    Ok(images::install(&Images::built(), &images::stable_dir()?)?)
}

/// Boots once with `opts` and reports on stderr how the boot ended.
fn boot(opts: &Options) -> Result<Outcome, SetupError> {
    let qemu = qemu::find_in_path(qemu::QEMU).ok_or(SetupError::QemuMissing)?;
    let ovmf = match opts.firmware {
        Firmware::Uefi => Some(qemu::find_ovmf()?),
        Firmware::Bios => None,
    };
    // The stable copies are a convenience for the user; a failure to refresh them must not stop a boot of the
    // freshly built image, which is what QEMU boots anyway.
    if let Err(e) = install_images() {
        eprintln!("plurality: note: could not refresh the copies in <target>/images: {e}");
    }
    let built = Images::built();
    let image: PathBuf = match opts.firmware {
        Firmware::Bios => built.bios,
        Firmware::Uefi => built.uefi,
    };
    if !image.is_file() {
        return Err(images::ImageError::Missing(image).into());
    }

    let window = !opts.headless && qemu::display_available();
    if !opts.headless && !window {
        eprintln!("plurality: no display (neither DISPLAY nor WAYLAND_DISPLAY is set): running headless");
    }
    let serial = if std::io::stdin().is_terminal() { Serial::Terminal } else { Serial::Relay };
    if opts.gdb {
        eprintln!("plurality: --gdb: {}", qemu::gdb_instructions(images::KERNEL_ELF.as_ref()));
    }
    if opts.icount && opts.smp > 1 {
        eprintln!("plurality: note: --icount runs all {} vCPUs on one host thread; expect a slow boot", opts.smp);
    }

    let plan = Plan { image, ovmf, serial, window };
    let args = qemu::qemu_args(opts, &plan);
    let finished = session::run(&qemu, &args, serial, opts.timeout)?;
    let outcome = match (finished.status, opts.timeout) {
        (Some(status), _) => qemu::interpret(status, finished.qemu_error, finished.guest_spoke)?,
        (None, Some(after)) => Outcome::Timeout(after),
        (None, None) => Outcome::Unexpected("lost track of QEMU's exit status".to_owned()),
    };
    if let Some(message) = outcome.message() {
        eprintln!("plurality: {message}");
    }
    // A person can end QEMU by hand, which also gives status 0: say so where that was possible.
    if outcome == Outcome::Reset && (serial == Serial::Terminal || window || opts.gdb) {
        eprintln!(
            "plurality: note: QEMU also exits with status 0 when quit with Ctrl-A X, its window, or gdb's `kill`"
        );
    }
    Ok(outcome)
}
