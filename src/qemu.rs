//! What QEMU to run, with which arguments, and what its exit status means.
//!
//! Everything here is decided before QEMU starts or after it ended, and is pure where it can be (argument
//! building, status interpretation), so it is unit-tested without booting anything. Starting, relaying and
//! killing the process lives in `session.rs`.
//!
//! The exit-status contract with the kernel (isa-debug-exit at port 0xf4; writing v exits QEMU with
//! `(v << 1) | 1`): v = 0 is a clean shutdown (status 1), v = 1 a kernel panic (status 3). A triple fault under
//! `-no-reboot` ends QEMU with status 0, which must never be read as success. QEMU itself also exits with status 1
//! when it rejects its arguments or cannot open a file, so status 1 only counts as a clean shutdown when QEMU did
//! not report an error first (see [`interpret`]).

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use crate::cli::{Firmware, Options};
use crate::images::ImageError;

/// The QEMU binary looked up on `PATH`.
pub const QEMU: &str = "qemu-system-x86_64";

/// Environment variable that names the OVMF firmware file to use with `--uefi`.
pub const OVMF_ENV: &str = "PLURALITY_OVMF";

/// Where distributions put OVMF, best first. Whole-flash images (`OVMF.fd`, code and variables in one) load with
/// `-bios`; code-only images load as a read-only pflash drive (OVMF then keeps its variables in RAM, which is
/// all a test boot needs).
pub const OVMF_CANDIDATES: &[&str] = &[
    "/usr/share/ovmf/OVMF.fd",           // Debian, Ubuntu (package ovmf)
    "/usr/share/OVMF/OVMF.fd",           // older Debian/Ubuntu
    "/usr/share/qemu/OVMF.fd",           // some QEMU builds
    "/usr/share/edk2/x64/OVMF.fd",       // Arch (edk2-ovmf)
    "/usr/share/OVMF/OVMF_CODE.fd",      // Debian, Ubuntu code-only
    "/usr/share/OVMF/OVMF_CODE_4M.fd",   // Debian, Ubuntu code-only, 4 MiB layout
    "/usr/share/edk2/ovmf/OVMF_CODE.fd", // Fedora
    "/usr/share/edk2/x64/OVMF_CODE.fd",  // Arch
];

/// The prompt the kernel prints when it is ready for a command (no newline follows it).
pub const PROMPT: &[u8] = b"plurality> ";

/// A reason QEMU could not be started, or did not really run. All map to exit status 4.
#[derive(Debug)]
pub enum SetupError {
    /// `qemu-system-x86_64` is not on `PATH`.
    QemuMissing,
    /// No OVMF in any known place.
    OvmfMissing,
    /// `PLURALITY_OVMF` names a file that does not exist.
    OvmfEnvMissing(PathBuf),
    /// Spawning QEMU failed for another reason.
    Spawn(io::Error),
    /// QEMU reported an error and exited without running the guest (e.g. a bad `--qemu-arg`).
    QemuRefused(String),
    /// The disk images are missing or could not be copied.
    Images(ImageError),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::QemuMissing => write!(
                f,
                "{QEMU} not found on PATH. Install QEMU: `apt-get install qemu-system-x86` \
                 (Debian/Ubuntu), `dnf install qemu-system-x86` (Fedora), `pacman -S qemu-full` (Arch)"
            ),
            SetupError::OvmfMissing => write!(
                f,
                "--uefi needs the OVMF firmware, which was not found (looked in {}). Install it: \
                 `apt-get install ovmf` (Debian/Ubuntu), `dnf install edk2-ovmf` (Fedora), \
                 `pacman -S edk2-ovmf` (Arch), or set {OVMF_ENV}=/path/to/OVMF.fd",
                OVMF_CANDIDATES.join(", ")
            ),
            SetupError::OvmfEnvMissing(path) => {
                write!(f, "{OVMF_ENV}={} does not exist", path.display())
            }
            SetupError::Spawn(e) => write!(f, "cannot start {QEMU}: {e}"),
            SetupError::QemuRefused(line) => write!(f, "QEMU did not boot the kernel: {line}"),
            SetupError::Images(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SetupError {}

impl From<ImageError> for SetupError {
    fn from(e: ImageError) -> Self {
        SetupError::Images(e)
    }
}

/// How OVMF is handed to QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ovmf {
    /// A whole-flash image: `-bios FILE`.
    Whole(PathBuf),
    /// A code-only image: read-only pflash.
    CodeOnly(PathBuf),
}

impl Ovmf {
    fn from_path(path: PathBuf) -> Self {
        let is_code = path.file_name().is_some_and(|n| n.to_string_lossy().to_ascii_uppercase().contains("CODE"));
        if is_code { Ovmf::CodeOnly(path) } else { Ovmf::Whole(path) }
    }
}

/// Finds OVMF: `$PLURALITY_OVMF` if set (it must exist), else the first of [`OVMF_CANDIDATES`] that exists.
pub fn find_ovmf() -> Result<Ovmf, SetupError> {
    if let Some(path) = std::env::var_os(OVMF_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() { Ok(Ovmf::from_path(path)) } else { Err(SetupError::OvmfEnvMissing(path)) };
    }
    OVMF_CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file()).map(Ovmf::from_path).ok_or(SetupError::OvmfMissing)
}

/// Finds an executable on `PATH`, like a shell would. `None` when it is not there.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Where the guest's serial port goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serial {
    /// Stdin is a terminal: QEMU takes it over (`-serial mon:stdio`, Ctrl-A X quits, Ctrl-A C is the monitor).
    Terminal,
    /// Stdin is a pipe or file: QEMU's stdio is piped to the runner, which relays (`-serial stdio`; no monitor
    /// multiplexing, so a scripted 0x01 byte reaches the kernel instead of being eaten as Ctrl-A).
    Relay,
}

/// Everything besides [`Options`] that the QEMU command line depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The disk image to boot.
    pub image: PathBuf,
    /// OVMF, for `--uefi`.
    pub ovmf: Option<Ovmf>,
    /// Serial wiring.
    pub serial: Serial,
    /// Open a QEMU window (false: `-display none`).
    pub window: bool,
}

/// Is there a display to open a window on?
pub fn display_available() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()))
}

/// QEMU's option syntax splits on commas; a literal comma in a value is written twice.
fn escape_commas(path: &Path) -> OsString {
    let mut out = Vec::new();
    for &b in path.as_os_str().as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

/// `key=` followed by a path, comma-escaped, with an optional suffix (e.g. `,snapshot=on`).
fn keyed_path(prefix: &str, path: &Path, suffix: &str) -> OsString {
    let mut s = OsString::from(prefix);
    s.push(escape_commas(path));
    s.push(suffix);
    s
}

/// The QEMU arguments for one boot (without the program name). The user's `--qemu-arg`s come last so that they
/// can override single-valued options such as `-cpu` (QEMU takes the last one).
pub fn qemu_args(opts: &Options, plan: &Plan) -> Vec<OsString> {
    fn add(args: &mut Vec<OsString>, items: &[&str]) {
        args.extend(items.iter().map(OsString::from));
    }
    let mut args: Vec<OsString> = Vec::new();

    // `snapshot=on`: the guest's writes go to a temporary overlay, so the image is never modified and several
    // QEMUs (parallel tests) can boot it at once; without it QEMU takes a write lock and the second one fails.
    // `file.locking=off`: we never write the image, so we need no lock either, and a QEMU that someone started
    // on the same file without snapshot (holding the write lock) must not stop this boot.
    add(&mut args, &["-drive"]);
    args.push(keyed_path("format=raw,file=", &plan.image, ",snapshot=on,file.locking=off"));
    add(&mut args, &["-m", &format!("{}M", opts.memory_mib)]);
    add(&mut args, &["-smp", &opts.smp.to_string()]);
    // qemu64 has the local APIC the kernel needs and nothing TCG emulates slowly; SMEP and SMAP (which TCG
    // emulates, boot-facts.md) let the kernel forbid itself ring-3 pages. Override with --qemu-arg.
    add(&mut args, &["-cpu", "qemu64,+smep,+smap"]);
    // Without -no-reboot a triple fault reboots forever and a test could pass by accident.
    add(&mut args, &["-no-reboot"]);
    add(&mut args, &["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    match plan.serial {
        Serial::Terminal => add(&mut args, &["-serial", "mon:stdio"]),
        Serial::Relay => add(&mut args, &["-serial", "stdio"]),
    }
    if !plan.window {
        add(&mut args, &["-display", "none"]);
    }
    if opts.gdb {
        add(&mut args, &["-s", "-S"]);
    }
    if opts.icount {
        // The guest cannot see icount by itself: a fw_cfg file tells the kernel, so `bench` labels its unit
        // (guest instructions instead of TSC cycles).
        add(&mut args, &["-icount", "shift=0", "-fw_cfg", "name=opt/plurality/icount,string=1"]);
    }
    if let Some(mode) = opts.shell_protection {
        // Read by the console driver when it starts the shell.
        let file = format!("name=opt/plurality/shell-protection,string={mode}");
        add(&mut args, &["-fw_cfg", file.as_str()]);
    }
    if opts.firmware == Firmware::Uefi {
        match &plan.ovmf {
            Some(Ovmf::Whole(path)) => {
                add(&mut args, &["-bios"]);
                args.push(path.clone().into_os_string());
            }
            Some(Ovmf::CodeOnly(path)) => {
                add(&mut args, &["-drive"]);
                args.push(keyed_path("if=pflash,format=raw,readonly=on,file=", path, ""));
            }
            None => {}
        }
        // OVMF would otherwise try a network boot on the default NIC first, which costs seconds.
        add(&mut args, &["-net", "none"]);
    }
    args.extend(opts.qemu_args.iter().cloned());
    args
}

/// How a boot ended (QEMU ran).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel exited through the exit device with value 0.
    Shutdown,
    /// The kernel exited through the exit device with value 1.
    Panic,
    /// QEMU exited with status 0: a triple fault or reset under `-no-reboot`.
    Reset,
    /// Anything else; the text says what.
    Unexpected(String),
    /// `--timeout` expired and QEMU was killed.
    Timeout(std::time::Duration),
}

impl Outcome {
    /// The runner's exit status for this outcome (see `--help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Shutdown => 0,
            Outcome::Panic => 1,
            Outcome::Reset | Outcome::Unexpected(_) => 2,
            Outcome::Timeout(_) => 3,
        }
    }

    /// The line the runner prints on stderr, if any.
    pub fn message(&self) -> Option<String> {
        match self {
            Outcome::Shutdown => None,
            Outcome::Panic => Some("kernel panicked".to_owned()),
            Outcome::Reset => Some(
                "QEMU exited with status 0: triple fault or reset: the kernel did not exit through the \
                 exit device"
                    .to_owned(),
            ),
            Outcome::Unexpected(what) => Some(what.clone()),
            Outcome::Timeout(after) => {
                Some(format!("timeout: QEMU still running after {} s; killed it", after.as_secs_f64()))
            }
        }
    }
}

/// Is this line of QEMU's stderr an error report (as opposed to a warning or a note)?
///
/// QEMU prefixes its messages with its program name (`qemu-system-x86_64: ...`, possibly a full path).
pub fn is_qemu_error(line: &str) -> bool {
    let Some((program, rest)) = line.trim().split_once(": ") else {
        return false;
    };
    program.ends_with(QEMU)
        && !rest.starts_with("warning")
        && !rest.starts_with("terminating on signal")
        && !rest.starts_with("info")
}

/// Interprets QEMU's exit status. `qemu_error` is the first error line QEMU printed on stderr, if any;
/// `guest_spoke` is true when the guest is known to have written to the serial port.
pub fn interpret(status: ExitStatus, qemu_error: Option<String>, guest_spoke: bool) -> Result<Outcome, SetupError> {
    Ok(match status.code() {
        Some(1) => match qemu_error {
            // QEMU's own failures also exit with 1; they come before the guest ever runs.
            Some(line) if !guest_spoke => return Err(SetupError::QemuRefused(line)),
            _ => Outcome::Shutdown,
        },
        Some(3) => Outcome::Panic,
        Some(0) => Outcome::Reset,
        Some(code) if code & 1 == 1 => {
            Outcome::Unexpected(format!("unexpected QEMU exit status {code} (exit-device value {})", code >> 1))
        }
        Some(code) => Outcome::Unexpected(match qemu_error {
            Some(line) => format!("unexpected QEMU exit status {code}: {line}"),
            None => format!("unexpected QEMU exit status {code}"),
        }),
        None => Outcome::Unexpected(match status.signal() {
            Some(sig) => format!("QEMU was killed by signal {sig}"),
            None => "QEMU ended without an exit status".to_owned(),
        }),
    })
}

/// The lines the runner prints for `--gdb`: how to attach, and why `hbreak`.
pub fn gdb_instructions(kernel_elf: &Path) -> String {
    let elf = kernel_elf.display();
    format!(
        "QEMU starts halted and waits for gdb on localhost:1234. Attach from another terminal with\n\
         \n    gdb {elf} -ex 'target remote :1234'\n\n\
         The kernel is a static PIE that the bootloader relocates: its symbols need the load offset the bootloader\n\
         logs on the serial console (`virtual_address_offset: 0x...`), as in `symbol-file {elf} -o 0x...`.\n\
         Use hardware breakpoints (`hbreak _start`, then `continue`): software breakpoints are unreliable before\n\
         the kernel's paging is set up and in relocated code. `info functions NAME` shows the symbol names."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lossy(args: &[OsString]) -> Vec<String> {
        args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    fn plan(serial: Serial, window: bool) -> Plan {
        Plan { image: PathBuf::from("/t/bios.img"), ovmf: None, serial, window }
    }

    fn joined(opts: &Options, plan: &Plan) -> String {
        lossy(&qemu_args(opts, plan)).join(" ")
    }

    #[test]
    fn bios_defaults() {
        let line = joined(&Options::default(), &plan(Serial::Relay, false));
        assert_eq!(
            line,
            "-drive format=raw,file=/t/bios.img,snapshot=on,file.locking=off -m 256M -smp 1 -cpu qemu64,+smep,+smap -no-reboot \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04 -serial stdio -display none"
        );
    }

    #[test]
    fn terminal_window_gdb_icount_and_passthrough() {
        let opts = Options {
            smp: 4,
            memory_mib: 1024,
            gdb: true,
            icount: true,
            qemu_args: vec!["-cpu".into(), "max".into()],
            ..Options::default()
        };
        let line = joined(&opts, &plan(Serial::Terminal, true));
        assert!(line.contains("-serial mon:stdio"), "{line}");
        assert!(!line.contains("-display"), "{line}");
        assert!(line.contains("-m 1024M -smp 4"), "{line}");
        assert!(line.contains("-s -S"), "{line}");
        assert!(line.contains("-icount shift=0 -fw_cfg name=opt/plurality/icount,string=1"), "{line}");
        assert!(line.ends_with("-cpu max"), "user arguments must come last: {line}");
    }

    #[test]
    fn uefi_whole_and_code_only() {
        let opts = Options { firmware: Firmware::Uefi, ..Options::default() };
        let mut p = plan(Serial::Relay, false);
        p.ovmf = Some(Ovmf::from_path("/fw/OVMF.fd".into()));
        let line = joined(&opts, &p);
        assert!(line.contains("-bios /fw/OVMF.fd"), "{line}");
        assert!(line.contains("-net none"), "{line}");
        p.ovmf = Some(Ovmf::from_path("/fw/OVMF_CODE_4M.fd".into()));
        let line = joined(&opts, &p);
        assert!(line.contains("-drive if=pflash,format=raw,readonly=on,file=/fw/OVMF_CODE_4M.fd"), "{line}");
        // BIOS boots never get -net none or firmware flags.
        assert!(!joined(&Options::default(), &p).contains("-net"));
    }

    #[test]
    fn commas_in_paths_are_escaped() {
        let mut p = plan(Serial::Relay, false);
        p.image = PathBuf::from("/a,b/x.img");
        assert!(joined(&Options::default(), &p).contains("file=/a,,b/x.img,snapshot=on,"));
    }

    fn status(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(interpret(status(1), None, false).unwrap(), Outcome::Shutdown);
        assert_eq!(interpret(status(3), None, true).unwrap(), Outcome::Panic);
        assert_eq!(interpret(status(0), None, true).unwrap(), Outcome::Reset);
        assert_eq!(Outcome::Shutdown.exit_code(), 0);
        assert_eq!(Outcome::Panic.exit_code(), 1);
        assert_eq!(Outcome::Reset.exit_code(), 2);
        assert_eq!(Outcome::Timeout(std::time::Duration::from_secs(1)).exit_code(), 3);
        let odd = interpret(status(5), None, true).unwrap();
        assert_eq!(odd.exit_code(), 2);
        assert!(odd.message().unwrap().contains("exit-device value 2"));
        let killed = interpret(ExitStatus::from_raw(9), None, true).unwrap();
        assert!(killed.message().unwrap().contains("signal 9"));
        assert!(Outcome::Reset.message().unwrap().contains("triple fault"));
    }

    #[test]
    fn qemu_errors_are_not_clean_shutdowns() {
        let err = "qemu-system-x86_64: -foo: invalid option".to_owned();
        let refused = interpret(status(1), Some(err.clone()), false).unwrap_err();
        assert!(refused.to_string().contains("invalid option"), "{refused}");
        // Once the guest has run, status 1 is the kernel's clean shutdown.
        assert_eq!(interpret(status(1), Some(err), true).unwrap(), Outcome::Shutdown);
    }

    #[test]
    fn recognises_qemu_error_lines() {
        assert!(is_qemu_error("qemu-system-x86_64: -drive x: Could not open 'x'"));
        assert!(is_qemu_error("/usr/bin/qemu-system-x86_64: Failed to get \"write\" lock"));
        assert!(!is_qemu_error("qemu-system-x86_64: warning: TCG doesn't support requested feature"));
        assert!(!is_qemu_error("qemu-system-x86_64: terminating on signal 15 from pid 7"));
        assert!(!is_qemu_error("Is another process using the image?"));
        assert!(!is_qemu_error("(qemu) info cpus"));
    }

    #[test]
    fn ovmf_kind_from_file_name() {
        assert!(matches!(Ovmf::from_path("/x/OVMF.fd".into()), Ovmf::Whole(_)));
        assert!(matches!(Ovmf::from_path("/x/OVMF_CODE.fd".into()), Ovmf::CodeOnly(_)));
    }

    #[test]
    fn setup_errors_say_what_to_install() {
        assert!(SetupError::QemuMissing.to_string().contains("apt-get install qemu-system-x86"));
        assert!(SetupError::OvmfMissing.to_string().contains("apt-get install ovmf"));
        assert!(SetupError::OvmfMissing.to_string().contains(OVMF_ENV));
    }

    #[test]
    fn gdb_instructions_name_the_elf_and_hbreak() {
        let text = gdb_instructions(Path::new("/t/kernel"));
        assert!(text.contains("gdb /t/kernel -ex 'target remote :1234'"), "{text}");
        assert!(text.contains("hbreak"));
        assert!(text.contains("static PIE"));
    }
}
