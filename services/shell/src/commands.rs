//! The shell's commands that do not speak a channel themselves: system, processes, contracts, channels.
//!
//! Output formats are the console's interface (README, tests/): change them together with the tests.

use crate::{Shell, channel_commands};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use sip_runtime::{EndHolder, LogFilter, MANIFESTS, ProcessState, Protection, RestartPolicy, SipId};

/// Why a command did not run.
#[derive(Debug)]
pub enum CommandError {
    /// Wrong arguments; the usage line says what is expected.
    Usage(&'static str),
    /// An argument was understood but is not acceptable, or the operation failed.
    Invalid(String),
}

/// One command.
pub struct Command {
    /// What the user types.
    pub name: &'static str,
    usage: &'static str,
    help: &'static str,
    /// What it does.
    pub run: fn(&mut Shell, &[&str]) -> Result<(), CommandError>,
}

/// Every command, in `help` order.
pub const COMMANDS: &[Command] = &[
    Command { name: "help", usage: "help", help: "list commands", run: help },
    Command { name: "mem", usage: "mem", help: "physical frames and kernel heap in use", run: mem },
    Command { name: "cpus", usage: "cpus", help: "cores: online or not, run queue, ticks", run: cpus },
    Command { name: "uptime", usage: "uptime", help: "time since boot and timer ticks", run: uptime },
    Command {
        name: "log",
        usage: "log [off|error|warn|info|debug|trace]",
        help: "show or set the log level",
        run: log_level,
    },
    Command { name: "ps", usage: "ps", help: "live SIPs: core, state, protection, heap, threads, channels", run: ps },
    Command {
        name: "spawn",
        usage: "spawn NAME [--core N] [--protection type|ring3|ring3-own] [ARGS...]",
        help: "start a service as a new SIP (on core N, or the least loaded), or a ring-3 program",
        run: spawn,
    },
    Command { name: "kill", usage: "kill PID", help: "end a SIP", run: kill },
    Command {
        name: "run",
        usage: "run NAME [--core N] [--protection type|ring3|ring3-own] [ARGS...]",
        help: "spawn a service (or a ring-3 program) and wait until it ends",
        run: run_service,
    },
    Command {
        name: "repeat",
        usage: "repeat N COMMAND [ARGS...]",
        help: "run a command N times (stops at the first error)",
        run: repeat,
    },
    Command {
        name: "replicas",
        usage: "replicas",
        help: "each core's replicas (process table, name registry): version and digest",
        run: replicas,
    },
    Command { name: "services", usage: "services", help: "registered service manifests", run: services },
    Command {
        name: "contracts",
        usage: "contracts [--dot NAME]",
        help: "every contract's states and messages, or one contract as a Graphviz digraph",
        run: contracts,
    },
    Command {
        name: "channels",
        usage: "channels",
        help: "live channels, who holds each end, and endpoints dropped mid-protocol",
        run: channels,
    },
    Command {
        name: "echo",
        usage: "echo [--protection type|ring3|ring3-own] [--async] [--core N] TEXT...",
        help: "send text through an echo SIP (in ring 0 or ring 3; a continuation with --async)",
        run: channel_commands::echo,
    },
    Command {
        name: "ping",
        usage: "ping [--protection type|ring3|ring3-own] [--async] [--core N] [N]",
        help: "N message round trips to an echo SIP (in ring 0 or ring 3; a continuation with --async)",
        run: channel_commands::ping,
    },
    Command {
        name: "kv",
        usage: "kv [--protection type|ring3|ring3-own] [--async] [--core N] put KEY VALUE | get KEY | del KEY | list \
                | quit",
        help: "a key-value store SIP (hashbrown; in ring 0 or ring 3; a continuation with --async)",
        run: channel_commands::kv,
    },
    Command {
        name: "names",
        usage: "names [lookup NAME TEXT... | unbind NAME | restart [--protection type|ring3|ring3-own]]",
        help: "name service: list bindings, talk to an Echo service by name, unbind, restart (in a mode)",
        run: channel_commands::names,
    },
    Command {
        name: "fault",
        usage: "fault panic|overflow|overflow-abi|overflow-alloc|overflow-tick|quota|spin|drop|exit [--core N]",
        help: "make a SIP fail mid-protocol; show what its peer sees",
        run: channel_commands::fault,
    },
    Command {
        name: "bench",
        usage: BENCH_USAGE,
        help: "measure ABI call, yield, ping-pong, SIP create+exit (or capacity, kills mid-flood, per protection mode, \
               against core count, thread SIPs against async SIPs)",
        run: bench,
    },
    Command { name: "selftest", usage: "selftest [FILTER]", help: "run the in-kernel self-tests", run: selftest },
    Command { name: "shutdown", usage: "shutdown", help: "power the machine off", run: shutdown },
    Command { name: "panic", usage: "panic [MESSAGE]", help: "debugging: deliberately panic the kernel", run: panic },
];

fn no_args(args: &[&str], usage: &'static str) -> Result<(), CommandError> {
    if args.is_empty() { Ok(()) } else { Err(CommandError::Usage(usage)) }
}

fn not_permitted() -> CommandError {
    CommandError::Invalid("not permitted (the shell's manifest lacks the capability)".into())
}

fn help(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "help")?;
    sh.say(format_args!("Commands:"));
    for c in COMMANDS {
        sh.say(format_args!("  {:<40} {}", c.usage, c.help));
    }
    Ok(())
}

fn mem(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "mem")?;
    let m = sh.ctx.memory();
    let mib = |frames: u64| frames * 4096 / (1024 * 1024);
    let used = m.frames_total - m.frames_free;
    sh.say(format_args!(
        "frames: {} total ({} MiB), {used} used, {} free ({} MiB)",
        m.frames_total,
        mib(m.frames_total),
        m.frames_free,
        mib(m.frames_free)
    ));
    sh.say(format_args!(
        "frames in use: {} for data, {} for page tables",
        used - m.page_table_frames,
        m.page_table_frames
    ));
    sh.say(format_args!(
        "heap: {} bytes used, {} bytes free, {} KiB mapped (limit {} MiB)",
        m.kernel_heap_used,
        m.kernel_heap_free,
        m.kernel_heap_mapped / 1024,
        m.kernel_heap_limit / (1024 * 1024)
    ));
    sh.say(format_args!(
        "exchange heap: {} bytes in {} blocks; {} SIP arenas live",
        m.exchange_used, m.exchange_blocks, m.arenas_live
    ));
    Ok(())
}

fn cpus(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "cpus")?;
    let all: Vec<_> = (0..).map_while(|i| sh.ctx.abi().cpu(i)).collect();
    if all.is_empty() {
        return Err(CommandError::Invalid("no ACPI MADT was found at boot".into()));
    }
    sh.say(format_args!("cpus: {} (ACPI MADT)", all.len()));
    for cpu in all {
        let state = if cpu.online {
            format!(
                "online{}, run queue {}, {} blocked, {} timer ticks",
                if cpu.boot { ", boot core" } else { "" },
                cpu.run_queue,
                cpu.blocked,
                cpu.timer_ticks
            )
        } else {
            "offline (did not start)".into()
        };
        sh.say(format_args!("  cpu {}: apic id {}, acpi id {}: {state}", cpu.index, cpu.apic_id, cpu.acpi_id));
    }
    Ok(())
}

fn uptime(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "uptime")?;
    let nanos = sh.ctx.now_nanos();
    let here = sh.ctx.abi().cpu(sh.ctx.abi().current_core());
    let (ticks, hz) = here.map_or((0, 0), |c| (c.timer_ticks, c.timer_hz));
    sh.say(format_args!(
        "up {}.{:03} s, {ticks} timer ticks on this core at {hz} Hz",
        nanos / 1_000_000_000,
        (nanos / 1_000_000) % 1000
    ));
    Ok(())
}

fn log_level(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    const USAGE: &str = "log [off|error|warn|info|debug|trace]";
    let name = |level: LogFilter| match level {
        LogFilter::Off => "OFF",
        LogFilter::Error => "ERROR",
        LogFilter::Warn => "WARN",
        LogFilter::Info => "INFO",
        LogFilter::Debug => "DEBUG",
        LogFilter::Trace => "TRACE",
    };
    match args {
        [] => {
            let level = sh.ctx.abi().log_level();
            sh.say(format_args!("log level: {}", name(level)));
            Ok(())
        }
        [level] => {
            let filter = match level.to_ascii_lowercase().as_str() {
                "off" => LogFilter::Off,
                "error" => LogFilter::Error,
                "warn" => LogFilter::Warn,
                "info" => LogFilter::Info,
                "debug" => LogFilter::Debug,
                "trace" => LogFilter::Trace,
                _ => return Err(CommandError::Invalid(format!("unknown log level '{level}'; {USAGE}"))),
            };
            sh.ctx.abi().set_log_level(filter).map_err(|_| not_permitted())?;
            sh.say(format_args!("log level: {}", name(filter)));
            Ok(())
        }
        _ => Err(CommandError::Usage(USAGE)),
    }
}

fn selftest(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    let filter = match args {
        [] => "",
        [filter] => filter,
        _ => return Err(CommandError::Usage("selftest [FILTER]")),
    };
    // The kernel prints one line per test and the summary itself.
    sh.ctx.abi().run_selftests(filter).map_err(|_| not_permitted())?;
    Ok(())
}

fn shutdown(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "shutdown")?;
    sh.ctx.abi().shutdown();
    Err(not_permitted())
}

fn panic(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    let message = if args.is_empty() { String::from("requested from the console") } else { args.join(" ") };
    sh.ctx.abi().kernel_panic(&message);
    Err(not_permitted())
}

fn ps(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "ps")?;
    sh.say(format_args!(
        "{:>6}  {:<16} {:>4}  {:<8} {:<9} {:>10} {:>10} {:>7} {:>8} {:>9}",
        "PID", "NAME", "CORE", "STATE", "PROTECT", "HEAP", "QUOTA", "THREADS", "CHANNELS", "EXCHANGE"
    ));
    let all: Vec<_> = sh.ctx.processes().collect();
    for p in all {
        let state = match p.state {
            ProcessState::Running => "running",
            ProcessState::Blocked => "blocked",
        };
        sh.say(format_args!(
            "{:>6}  {:<16} {:>4}  {:<8} {:<9} {:>10} {:>10} {:>7} {:>8} {:>9}",
            p.id.0,
            p.name,
            p.core,
            state,
            p.protection.name(),
            p.heap_used,
            p.heap_quota,
            p.threads,
            p.channels,
            p.exchange_bytes
        ));
    }
    Ok(())
}

/// Starts `NAME [--core N] [--protection MODE] [ARGS...]` (the options in either order) on core N, or the least
/// loaded core: a service, or with `--protection ring3` or `ring3-own` a program or service of the ring-3 image.
fn start<'a>(sh: &Shell, args: &[&'a str], usage: &'static str) -> Result<(SipId, &'a str), CommandError> {
    let [name, rest @ ..] = args else { return Err(CommandError::Usage(usage)) };
    let mut rest: &[&str] = rest;
    let (mut core, mut protection) = (None, None);
    loop {
        match rest {
            &["--core", n, ref more @ ..] if core.is_none() => {
                let n = n.parse().map_err(|_| CommandError::Invalid(format!("'{n}' is not a core number")))?;
                core = Some(n);
                rest = more;
            }
            &["--protection", mode, ref more @ ..] if protection.is_none() => {
                let mode = Protection::from_name(mode).ok_or_else(|| {
                    CommandError::Invalid(format!("'{mode}' is not a protection mode (type, ring3, ring3-own)"))
                })?;
                protection = Some(mode);
                rest = more;
            }
            ["--core" | "--protection"] => return Err(CommandError::Usage(usage)),
            _ => break,
        }
    }
    let args = rest.join(" ");
    let spawned = match protection {
        None => sh.ctx.spawn(name, &args, core),
        Some(protection) => sh.ctx.abi().spawn_protected(name, &args, core, protection, None).map_err(|(e, _)| e),
    };
    let id = spawned.map_err(|e| CommandError::Invalid(format!("cannot spawn '{name}': {e}")))?;
    Ok((id, name))
}

fn spawn(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    let (id, name) = start(sh, args, "spawn NAME [--core N] [--protection type|ring3|ring3-own] [ARGS...]")?;
    sh.say(format_args!("spawned {name} as pid {}", id.0));
    Ok(())
}

fn replicas(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "replicas")?;
    let abi = sh.ctx.abi();
    let all: Vec<_> = (0..).map_while(|core| abi.replica(core)).collect();
    let online: Vec<_> = all.iter().filter(|r| r.online).collect();
    sh.say(format_args!("replicas on {} core(s): process table, name registry", online.len()));
    for r in &all {
        match r.online {
            true => sh.say(format_args!(
                "cpu {}: processes version {} digest {:#018x} ({} SIPs); names version {} digest {:#018x} ({} names)",
                r.core, r.version, r.digest, r.entries, r.names_version, r.names_digest, r.names
            )),
            false => sh.say(format_args!("cpu {}: offline", r.core)),
        }
    }
    let key = |r: &&sip_runtime::ReplicaInfo| (r.version, r.digest, r.names_version, r.names_digest);
    let agree = online.windows(2).all(|w| key(&w[0]) == key(&w[1]));
    sh.say(format_args!(
        "replicas: {}",
        if agree { "all equal" } else { "differ (updates still in flight, or a bug)" }
    ));
    Ok(())
}

fn kill(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    let [pid] = args else { return Err(CommandError::Usage("kill PID")) };
    let id: u64 = pid.parse().map_err(|_| CommandError::Invalid(format!("'{pid}' is not a process id")))?;
    sh.ctx.kill(SipId(id)).map_err(|e| CommandError::Invalid(format!("cannot kill {id}: {e}")))?;
    sh.say(format_args!("killed {id}"));
    Ok(())
}

fn run_service(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    let (id, _) = start(sh, args, "run NAME [--core N] [--protection type|ring3|ring3-own] [ARGS...]")?;
    let _ = sh.ctx.wait(id);
    Ok(())
}

fn repeat(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    const USAGE: &str = "repeat N COMMAND [ARGS...]";
    let [count, name, rest @ ..] = args else { return Err(CommandError::Usage(USAGE)) };
    let count: u64 = count.parse().map_err(|_| CommandError::Invalid(format!("'{count}' is not a count")))?;
    let command = COMMANDS
        .iter()
        .find(|c| c.name == *name && c.name != "repeat")
        .ok_or_else(|| CommandError::Invalid(format!("cannot repeat '{name}'")))?;
    for done in 0..count {
        (command.run)(sh, rest).map_err(|e| match e {
            CommandError::Usage(u) => CommandError::Usage(u),
            CommandError::Invalid(why) => CommandError::Invalid(format!("after {done} runs: {why}")),
        })?;
    }
    sh.say(format_args!("repeat: {count} runs of '{name}' done"));
    Ok(())
}

fn services(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "services")?;
    let contracts: Vec<&str> = contracts::all().iter().map(|c| c.name).collect();
    sh.say(format_args!("{:<20} {:>10} {:>8}  {:<24} {:<8} EXPORTS", "NAME", "QUOTA", "STACK", "RESTART", "MANIFEST"));
    for m in MANIFESTS.iter() {
        let restart = match m.restart {
            RestartPolicy::Never => String::from("never"),
            RestartPolicy::OnFailure { max_restarts, backoff_ms } => {
                format!("on failure, {max_restarts}x, {backoff_ms} ms")
            }
        };
        let check = if m.check(&contracts).is_ok() { "ok" } else { "invalid" };
        sh.say(format_args!(
            "{:<20} {:>10} {:>8}  {:<24} {:<8} {}",
            m.name,
            m.heap_quota,
            m.stack_size,
            restart,
            check,
            m.exports.join(", ")
        ));
    }
    Ok(())
}

fn contracts(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    const USAGE: &str = "contracts [--dot NAME]";
    match args {
        [] => {}
        ["--dot", name] => {
            let info = contract_named(name)?;
            for line in info.to_dot().lines() {
                sh.say(format_args!("{line}"));
            }
            return Ok(());
        }
        // `--dot` alone: say which names there are rather than only the usage line.
        ["--dot"] => {
            return Err(CommandError::Invalid(format!("usage: {USAGE}; NAME is one of {}", contract_names())));
        }
        _ => return Err(CommandError::Usage(USAGE)),
    }
    for info in contracts::all() {
        sh.say(format_args!(
            "{}: {} states, {} messages; at most {} in flight to the server, {} to the client; {} dropped \
             mid-protocol",
            info.name,
            info.states.len(),
            info.messages.len(),
            info.to_server_capacity,
            info.to_client_capacity,
            sh.ctx.abi().mid_protocol_drops(info.name)
        ));
        for (index, state) in info.states.iter().enumerate() {
            let mark = if index == info.initial {
                " (initial)"
            } else if state.terminal {
                " (terminal)"
            } else {
                ""
            };
            let moves: Vec<String> = state
                .transitions
                .iter()
                .map(|t| {
                    let message = &info.messages[t.message];
                    let arrow = match message.direction {
                        channels::Direction::ToServer => "client sends",
                        channels::Direction::ToClient => "server sends",
                    };
                    format!("{arrow} {} -> {}", message.name, info.states[t.next].name)
                })
                .collect();
            let moves = if moves.is_empty() { String::from("-") } else { moves.join("; ") };
            sh.say(format_args!("  {}{mark}: {moves}", state.name));
        }
    }
    Ok(())
}

/// The system contract called `name`: its exact name, or else the one contract whose name matches ignoring case
/// (so `contracts --dot kvstore` works; a case-insensitive match that is not unique is refused).
fn contract_named(name: &str) -> Result<&'static channels::ContractInfo, CommandError> {
    let all = contracts::all();
    if let Some(info) = all.iter().find(|info| info.name == name) {
        return Ok(info);
    }
    let mut folded = all.iter().filter(|info| info.name.eq_ignore_ascii_case(name));
    match (folded.next(), folded.next()) {
        (Some(info), None) => Ok(info),
        _ => {
            // Like an unknown command: the echo of what was typed is bounded.
            let shown: String = name.chars().take(40).collect();
            Err(CommandError::Invalid(format!("no contract named '{shown}' (known: {})", contract_names())))
        }
    }
}

/// The system contracts' names, comma-separated, in `contracts` order.
fn contract_names() -> String {
    contracts::all().iter().map(|info| info.name).collect::<Vec<_>>().join(", ")
}

fn channels(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    no_args(args, "channels")?;
    let processes: Vec<_> = sh.ctx.processes().collect();
    let describe = |end: EndHolder| -> String {
        match end {
            EndHolder::Closed => "closed".into(),
            EndHolder::Kernel => "kernel".into(),
            EndHolder::InTransit => "in transit".into(),
            EndHolder::Sip(id) => match processes.iter().find(|p| p.id == id) {
                Some(p) => format!("{}#{}", p.name, id.0),
                None => format!("#{}", id.0),
            },
        }
    };
    let mut live = Vec::new();
    let mut after = None;
    while let Some(channel) = sh.ctx.abi().channel_after(after) {
        after = Some(channel.id);
        live.push(format!("  #{}: {} <-> {}", channel.id, describe(channel.ends[0]), describe(channel.ends[1])));
    }
    sh.say(format_args!("{} channels", live.len()));
    for line in live {
        sh.say(format_args!("{line}"));
    }
    // Endpoints dropped outside a terminal state while their peer was there (each is logged at debug level).
    let drops: Vec<String> = contracts::all()
        .iter()
        .map(|info| (info.name, sh.ctx.abi().mid_protocol_drops(info.name)))
        .filter(|(_, count)| *count > 0)
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    let drops = if drops.is_empty() { String::from("none") } else { drops.join(", ") };
    sh.say(format_args!("dropped mid-protocol: {drops}"));
    Ok(())
}

const BENCH_USAGE: &str = "bench [capacity|kills|throughput|protection|scale|models [capacity]]";

fn bench(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    match args {
        // The benchmark runs beside the shell, on its core: "same core" figures mean the shell's core.
        []
        | ["capacity"]
        | ["kills"]
        | ["throughput"]
        | ["protection"]
        | ["scale"]
        | ["models"]
        | ["models", "capacity"] => {
            let here = format!("{}", sh.ctx.abi().current_core());
            run_service(sh, &[&["bench", "--core", here.as_str()], args].concat())
        }
        _ => Err(CommandError::Usage(BENCH_USAGE)),
    }
}
