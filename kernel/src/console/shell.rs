//! The kernel console's command interpreter: reads lines from serial and keyboard, runs commands.
//!
//! It lives in the kernel only until the SIP issue moves it into the `shell` service. Every input, however
//! bad, ends in either a command's output or a one-line `error:`, followed by a new prompt.

use super::channel_commands;
use super::keyboard::Decoder;
use super::line_editor::{Action, LineEditor};
use super::{framebuffer, keyboard, serial};
use crate::{memory, platform, println, time};
use x86_64::instructions::interrupts;

/// The prompt; the host test harness and the runner wait for it.
pub const PROMPT: &str = "plurality> ";

struct Command {
    name: &'static str,
    usage: &'static str,
    help: &'static str,
    run: fn(&[&str]) -> Result<(), CommandError>,
}

/// Why a command did not run.
#[derive(Debug)]
pub(super) enum CommandError {
    /// Wrong arguments; the usage line says what is expected.
    Usage(&'static str),
    /// An argument was understood but is not acceptable.
    Invalid(alloc::string::String),
}

const COMMANDS: &[Command] = &[
    Command { name: "help", usage: "help", help: "list commands", run: help },
    Command { name: "mem", usage: "mem", help: "physical frames and kernel heap in use", run: mem },
    Command { name: "cpus", usage: "cpus", help: "cores listed by the ACPI MADT", run: cpus },
    Command { name: "uptime", usage: "uptime", help: "time since boot and timer ticks", run: uptime },
    Command {
        name: "log",
        usage: "log [off|error|warn|info|debug|trace]",
        help: "show or set the log level",
        run: log_level,
    },
    Command { name: "ps", usage: "ps", help: "live SIPs: core, state, heap, threads", run: ps },
    Command { name: "spawn", usage: "spawn NAME [ARGS...]", help: "start a service as a new SIP", run: spawn },
    Command { name: "kill", usage: "kill PID", help: "end a SIP", run: kill },
    Command {
        name: "echo",
        usage: "echo TEXT...",
        help: "send text through an echo SIP",
        run: channel_commands::echo_command,
    },
    Command {
        name: "ping",
        usage: "ping [N]",
        help: "N message round trips to an echo SIP",
        run: channel_commands::ping_command,
    },
    Command {
        name: "kv",
        usage: "kv put KEY VALUE | get KEY | del KEY | list | quit",
        help: "a key-value store SIP (hashbrown)",
        run: channel_commands::kv_command,
    },
    Command {
        name: "fault",
        usage: "fault panic|overflow|quota|spin|drop|exit",
        help: "make a SIP fail mid-protocol; show what its peer sees",
        run: channel_commands::fault_command,
    },
    Command {
        name: "run",
        usage: "run NAME [ARGS...]",
        help: "spawn a service and wait until it ends",
        run: run_service,
    },
    Command {
        name: "repeat",
        usage: "repeat N COMMAND [ARGS...]",
        help: "run a command N times (stops at the first error)",
        run: repeat,
    },
    Command { name: "services", usage: "services", help: "registered service manifests", run: services },
    Command {
        name: "contracts",
        usage: "contracts",
        help: "every contract's states and messages",
        run: contracts_command,
    },
    Command {
        name: "channels",
        usage: "channels",
        help: "live channels and who holds each end",
        run: channels_command,
    },
    Command {
        name: "bench",
        usage: "bench [capacity]",
        help: "measure ABI call, yield, SIP create+exit (or SIP capacity)",
        run: bench,
    },
    Command { name: "selftest", usage: "selftest [FILTER]", help: "run the in-kernel self-tests", run: selftest },
    Command { name: "shutdown", usage: "shutdown", help: "power the machine off", run: shutdown },
    Command {
        name: "panic",
        usage: "panic [MESSAGE]",
        help: "debugging: deliberately panic the kernel",
        run: panic_command,
    },
];

/// Reads and runs commands forever.
pub fn run() -> ! {
    if let Some(id) = crate::sched::current_id() {
        super::READER.store(id.0, core::sync::atomic::Ordering::Relaxed);
    }
    let mut editor = LineEditor::new();
    let mut input = Input::new();
    crate::print!("{PROMPT}");
    loop {
        while let Some(byte) = input.next_byte() {
            handle(editor.feed(byte));
        }
        // Park until an input interrupt wakes us. Interrupts stay off between the check and the park, so a
        // byte that arrives in between is not missed (its wake-up finds us parked, or is remembered).
        interrupts::disable();
        if !serial::has_input() && !keyboard::has_input() {
            crate::sched::block_current();
        }
        interrupts::enable();
    }
}

/// Input from both devices as one byte stream: the serial port first, then keyboard characters as UTF-8.
struct Input {
    decoder: Decoder,
    pending: [u8; 4],
    next: usize,
    len: usize,
}

impl Input {
    fn new() -> Self {
        Self { decoder: Decoder::new(), pending: [0; 4], next: 0, len: 0 }
    }

    fn next_byte(&mut self) -> Option<u8> {
        if let Some(b) = serial::poll() {
            return Some(b);
        }
        if self.next == self.len {
            let c = self.decoder.next_char()?;
            self.len = c.encode_utf8(&mut self.pending).len();
            self.next = 0;
        }
        self.next += 1;
        Some(self.pending[self.next - 1])
    }
}

fn echo(bytes: &[u8]) {
    serial::write_bytes(bytes);
    framebuffer::echo(bytes);
}

fn handle(action: Action) {
    match action {
        Action::None => {}
        Action::Echo(b) => echo(&[b]),
        Action::EraseChar => echo(b"\x08 \x08"),
        Action::EraseLine(columns) => (0..columns).for_each(|_| echo(b"\x08 \x08")),
        Action::Cancelled => {
            println!("^C");
            crate::print!("{PROMPT}");
        }
        Action::Line(line) => {
            println!();
            match line {
                Ok(line) => execute(&line),
                Err(e) => println!("error: {e}"),
            }
            crate::print!("{PROMPT}");
        }
    }
}

fn execute(line: &str) {
    let words: alloc::vec::Vec<&str> = line.split_whitespace().collect();
    let Some((&name, args)) = words.split_first() else { return };
    let Some(command) = COMMANDS.iter().find(|c| c.name == name) else {
        let shown: alloc::string::String = name.chars().take(40).collect();
        println!("error: unknown command '{shown}' (try 'help')");
        return;
    };
    match (command.run)(args) {
        Ok(()) => {}
        Err(CommandError::Usage(usage)) => println!("error: usage: {usage}"),
        Err(CommandError::Invalid(why)) => println!("error: {why}"),
    }
}

fn no_args(args: &[&str], usage: &'static str) -> Result<(), CommandError> {
    if args.is_empty() { Ok(()) } else { Err(CommandError::Usage(usage)) }
}

fn help(args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "help")?;
    println!("Commands:");
    for c in COMMANDS {
        println!("  {:<40} {}", c.usage, c.help);
    }
    Ok(())
}

fn mem(args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "mem")?;
    let frames = memory::frames::stats();
    let heap = memory::heap::stats();
    let mib = |frames: u64| frames * 4096 / (1024 * 1024);
    println!(
        "frames: {} total ({} MiB), {} used, {} free ({} MiB)",
        frames.total,
        mib(frames.total),
        frames.used(),
        frames.free,
        mib(frames.free)
    );
    println!("frames in use: {} for data, {} for page tables", frames.used_for_data(), frames.page_tables);
    println!(
        "heap: {} bytes used, {} bytes free, {} KiB mapped (limit {} MiB)",
        heap.used,
        heap.free,
        heap.mapped / 1024,
        heap.limit / (1024 * 1024)
    );
    let (blocks, bytes) = crate::ipc::exchange_heap::totals();
    println!("exchange heap: {bytes} bytes in {blocks} blocks; {} SIP arenas live", crate::sip::arena::live());
    Ok(())
}

fn cpus(args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "cpus")?;
    let Some(platform) = platform::acpi::platform() else {
        return Err(CommandError::Invalid("no ACPI MADT was found at boot".into()));
    };
    let me = crate::percpu::current();
    println!("cpus: {} (ACPI MADT)", platform.usable_processors().count());
    for (index, p) in platform.usable_processors().enumerate() {
        let state = if p.apic_id == me.apic_id {
            alloc::format!(
                "online, boot core, {} timer ticks",
                me.timer_ticks.load(core::sync::atomic::Ordering::Relaxed)
            )
        } else {
            "present, not started (single-kernel boot)".into()
        };
        println!("  cpu {index}: apic id {}, acpi id {}: {state}", p.apic_id, p.acpi_id);
    }
    Ok(())
}

fn uptime(args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "uptime")?;
    let nanos = time::uptime_nanos();
    let ticks = crate::percpu::current().timer_ticks.load(core::sync::atomic::Ordering::Relaxed);
    println!(
        "up {}.{:03} s, {ticks} timer ticks on this core at {} Hz",
        nanos / 1_000_000_000,
        (nanos / 1_000_000) % 1000,
        time::TIMER_HZ
    );
    Ok(())
}

fn log_level(args: &[&str]) -> Result<(), CommandError> {
    const USAGE: &str = "log [off|error|warn|info|debug|trace]";
    match args {
        [] => {
            println!("log level: {}", log::max_level());
            Ok(())
        }
        [level] => {
            let filter: log::LevelFilter = level
                .parse()
                .map_err(|_| CommandError::Invalid(alloc::format!("unknown log level '{level}'; {USAGE}")))?;
            log::set_max_level(filter);
            println!("log level: {filter}");
            Ok(())
        }
        _ => Err(CommandError::Usage(USAGE)),
    }
}

fn selftest(args: &[&str]) -> Result<(), CommandError> {
    match args {
        [] => crate::selftest::run(""),
        [filter] => crate::selftest::run(filter),
        _ => return Err(CommandError::Usage("selftest [FILTER]")),
    };
    Ok(())
}

fn shutdown(args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "shutdown")?;
    crate::power::shutdown()
}

fn panic_command(args: &[&str]) -> Result<(), CommandError> {
    if args.is_empty() {
        panic!("requested from the console");
    }
    panic!("{}", args.join(" "));
}

fn ps(args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "ps")?;
    println!(
        "{:>6}  {:<16} {:>4}  {:<8} {:>10} {:>10} {:>7} {:>8} {:>9}",
        "PID", "NAME", "CORE", "STATE", "HEAP", "QUOTA", "THREADS", "CHANNELS", "EXCHANGE"
    );
    let mut after = None;
    while let Some(id) = crate::sip::next_after(after) {
        after = Some(id);
        let Some(p) = crate::sip::info(id) else { continue };
        let state = match p.state {
            sip_runtime::ProcessState::Running => "running",
            sip_runtime::ProcessState::Blocked => "blocked",
        };
        println!(
            "{:>6}  {:<16} {:>4}  {:<8} {:>10} {:>10} {:>7} {:>8} {:>9}",
            p.id.0, p.name, p.core, state, p.heap_used, p.heap_quota, p.threads, p.channels, p.exchange_bytes
        );
    }
    Ok(())
}

fn spawn(args: &[&str]) -> Result<(), CommandError> {
    let [name, rest @ ..] = args else { return Err(CommandError::Usage("spawn NAME [ARGS...]")) };
    let joined = rest.join(" ");
    match crate::sip::spawn(name, &joined, None) {
        Ok(id) => {
            println!("spawned {name} as pid {}", id.0);
            Ok(())
        }
        Err(e) => Err(CommandError::Invalid(alloc::format!("cannot spawn '{name}': {e}"))),
    }
}

fn kill(args: &[&str]) -> Result<(), CommandError> {
    let [pid] = args else { return Err(CommandError::Usage("kill PID")) };
    let id: u64 = pid.parse().map_err(|_| CommandError::Invalid(alloc::format!("'{pid}' is not a process id")))?;
    crate::sip::kill(id).map_err(|e| CommandError::Invalid(alloc::format!("cannot kill {id}: {e}")))?;
    println!("killed {id}");
    Ok(())
}

fn services(args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "services")?;
    let contracts: alloc::vec::Vec<&str> = contracts::all().iter().map(|c| c.name).collect();
    println!("{:<20} {:>10} {:>8}  {:<24} {:<8} EXPORTS", "NAME", "QUOTA", "STACK", "RESTART", "MANIFEST");
    for m in sip_runtime::MANIFESTS.iter() {
        let restart = match m.restart {
            sip_runtime::RestartPolicy::Never => alloc::string::String::from("never"),
            sip_runtime::RestartPolicy::OnFailure { max_restarts, backoff_ms } => {
                alloc::format!("on failure, {max_restarts}x, {backoff_ms} ms")
            }
        };
        let check = if m.check(&contracts).is_ok() { "ok" } else { "invalid" };
        println!(
            "{:<20} {:>10} {:>8}  {:<24} {:<8} {}",
            m.name,
            m.heap_quota,
            m.stack_size,
            restart,
            check,
            m.exports.join(", ")
        );
    }
    Ok(())
}

fn run_service(args: &[&str]) -> Result<(), CommandError> {
    let [name, rest @ ..] = args else { return Err(CommandError::Usage("run NAME [ARGS...]")) };
    let id = crate::sip::spawn(name, &rest.join(" "), None)
        .map_err(|e| CommandError::Invalid(alloc::format!("cannot spawn '{name}': {e}")))?;
    crate::sip::wait(id.0);
    Ok(())
}

fn repeat(args: &[&str]) -> Result<(), CommandError> {
    const USAGE: &str = "repeat N COMMAND [ARGS...]";
    let [count, name, rest @ ..] = args else { return Err(CommandError::Usage(USAGE)) };
    let count: u64 = count.parse().map_err(|_| CommandError::Invalid(alloc::format!("'{count}' is not a count")))?;
    let command = COMMANDS
        .iter()
        .find(|c| c.name == *name && c.name != "repeat")
        .ok_or_else(|| CommandError::Invalid(alloc::format!("cannot repeat '{name}'")))?;
    for done in 0..count {
        (command.run)(rest).map_err(|e| match e {
            CommandError::Usage(u) => CommandError::Usage(u),
            CommandError::Invalid(why) => CommandError::Invalid(alloc::format!("after {done} runs: {why}")),
        })?;
    }
    println!("repeat: {count} runs of '{name}' done");
    Ok(())
}

fn bench(args: &[&str]) -> Result<(), CommandError> {
    match args {
        [] | ["capacity"] => run_service(&[&["bench"], args].concat()),
        _ => Err(CommandError::Usage("bench [capacity]")),
    }
}

fn contracts_command(args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "contracts")?;
    for info in contracts::all() {
        println!(
            "{}: {} states, {} messages; at most {} in flight to the server, {} to the client",
            info.name,
            info.states.len(),
            info.messages.len(),
            info.to_server_capacity,
            info.to_client_capacity
        );
        for (index, state) in info.states.iter().enumerate() {
            let mark = if index == info.initial {
                " (initial)"
            } else if state.terminal {
                " (terminal)"
            } else {
                ""
            };
            let moves: alloc::vec::Vec<alloc::string::String> = state
                .transitions
                .iter()
                .map(|t| {
                    let message = &info.messages[t.message];
                    let arrow = match message.direction {
                        channels::Direction::ToServer => "client sends",
                        channels::Direction::ToClient => "server sends",
                    };
                    alloc::format!("{arrow} {} -> {}", message.name, info.states[t.next].name)
                })
                .collect();
            println!("  {}{mark}: {}", state.name, if moves.is_empty() { "-".into() } else { moves.join("; ") });
        }
    }
    Ok(())
}

fn channels_command(args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "channels")?;
    let describe = |side: Option<channels::Owner>| -> alloc::string::String {
        match side {
            None => "closed".into(),
            Some(channels::Owner::KERNEL) => "kernel".into(),
            Some(channels::Owner::IN_TRANSIT) => "in transit".into(),
            Some(channels::Owner(id)) => match crate::sip::manifest_of(id) {
                Some(m) => alloc::format!("{}#{id}", m.name),
                None => alloc::format!("#{id}"),
            },
        }
    };
    let live = crate::ipc::exchange_heap::channels();
    println!("{} channels", live.len());
    for (core, [a, b]) in live {
        println!("  {core:#x}: {} <-> {}", describe(a), describe(b));
    }
    Ok(())
}
