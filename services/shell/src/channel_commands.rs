//! Shell commands that talk to SIPs over contract channels: `echo`, `ping`, `fault`, `kv`, `names`.
//!
//! Most create a channel, spawn a SIP with the server end as its startup value, and speak the client side,
//! which shows contracts working between SIPs, and what a peer sees when the SIP on the other end fails.
//! `names` goes through the name service instead: the server end reaches a SIP that bound a name.

use crate::Shell;
use crate::commands::CommandError;
use alloc::format;
use alloc::string::String;
use channels::{Closed, ExString, ExVec, TryRecv};
use contracts::echo::{self, client, state};
use contracts::kv_store;
use sip_runtime::{Protection, SipId};

/// Spawns `service` with `args` and the server end of a new Echo channel, on `core` or the least loaded core;
/// returns its pid and the client end.
fn connect(
    sh: &Shell,
    service: &str,
    args: &str,
    core: Option<u32>,
) -> Result<(SipId, echo::Client<state::Ready>), CommandError> {
    connect_protected(sh, service, args, core, Protection::Type)
}

/// [`connect`] with the SIP under `protection`: the same contract, whichever side of the ring boundary it is on.
fn connect_protected(
    sh: &Shell,
    service: &str,
    args: &str,
    core: Option<u32>,
    protection: Protection,
) -> Result<(SipId, echo::Client<state::Ready>), CommandError> {
    let (client, server) = echo::channel();
    let id = sh
        .ctx
        .spawn_protected_with(service, args, core, protection, server)
        .map_err(|(e, _)| CommandError::Invalid(format!("cannot spawn '{service}' ({protection}): {e}")))?;
    Ok((id, client))
}

/// How a channel command's SIP runs: its protection, and whether it is the service's async variant (a
/// continuation on its core's runner, docs/thread-models.md: `echo-async`, `kv-async`).
struct Mode {
    protection: Protection,
    asynchronous: bool,
    /// `--core N`: where to start the SIP (default: the least loaded core).
    core: Option<u32>,
}

impl Mode {
    /// The service to spawn for `base` in this mode.
    fn service(&self, base: &str) -> String {
        if self.asynchronous { format!("{base}-async") } else { String::from(base) }
    }
}

/// Splits leading `--protection MODE`, `--async` and `--core N` options (in any order) off `args`.
fn mode_options<'a, 'b>(mut args: &'a [&'b str]) -> Result<(Mode, &'a [&'b str]), CommandError> {
    let mut mode = Mode { protection: Protection::Type, asynchronous: false, core: None };
    loop {
        match args {
            ["--core", n, rest @ ..] => {
                let core = n.parse().map_err(|_| CommandError::Invalid(format!("'{n}' is not a core")))?;
                mode.core = Some(core);
                args = rest;
            }
            ["--protection", name, rest @ ..] => {
                mode.protection = Protection::from_name(name).ok_or_else(|| {
                    CommandError::Invalid(format!("'{name}' is not a protection (type, ring3, ring3-own)"))
                })?;
                args = rest;
            }
            ["--async", rest @ ..] => {
                mode.asynchronous = true;
                args = rest;
            }
            _ => return Ok((mode, args)),
        }
    }
}

fn closed() -> CommandError {
    CommandError::Invalid("the echo SIP closed the channel".into())
}

/// `echo [--protection MODE] [--async] [--core N] TEXT...`: the echo SIP (under MODE; `echo-async` with
/// `--async`; on core N) sends the text back.
pub fn echo(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    let (mode, args) = mode_options(args)?;
    if args.is_empty() {
        return Err(CommandError::Usage("echo [--protection type|ring3|ring3-own] [--async] [--core N] TEXT..."));
    }
    let (id, client) = connect_protected(sh, &mode.service("echo"), "", mode.core, mode.protection)?;
    let owed = client.send_say(ExString::from(args.join(" ").as_str())).map_err(|_| closed())?;
    let result = match owed.recv() {
        Ok(client::SaySent::Echoed(text, ready)) => {
            sh.say(format_args!("{}", text.as_str()));
            if let Ok(done) = ready.send_bye() {
                done.close();
            }
            Ok(())
        }
        Err(Closed) => Err(closed()),
    };
    let _ = sh.ctx.wait(id);
    result
}

/// `ping [--protection MODE] [--async] [--core N] [N]`: N round trips to the echo SIP (under MODE;
/// `echo-async` with `--async`; on core N), with the average cost.
pub fn ping(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    let (mode, args) = mode_options(args)?;
    let protection = mode.protection;
    let count: u64 = match args {
        [] => 1000,
        [n] => {
            n.parse().ok().filter(|n| *n > 0).ok_or_else(|| CommandError::Invalid(format!("'{n}' is not a count")))?
        }
        _ => return Err(CommandError::Usage("ping [--protection type|ring3|ring3-own] [--async] [--core N] [N]")),
    };
    let service = mode.service("echo");
    let (id, mut client) = connect_protected(sh, &service, "", mode.core, protection)?;
    let (start, start_ns) = (sh.ctx.cycles(), sh.ctx.now_nanos());
    for i in 0..count {
        match client.send_ping(i).map_err(|_| closed())?.recv() {
            Ok(client::PingSent::Pong(n, ready)) if n == i => client = ready,
            Ok(client::PingSent::Pong(n, _)) => return Err(CommandError::Invalid(format!("pong {n} for ping {i}"))),
            Err(Closed) => return Err(closed()),
        }
    }
    let cycles = (sh.ctx.cycles() - start) / count;
    let micros = (sh.ctx.now_nanos() - start_ns) / count / 1000;
    if let Ok(done) = client.send_bye() {
        done.close();
    }
    let _ = sh.ctx.wait(id);
    sh.say(format_args!(
        "ping: {count} round trips to {service}#{} ({protection}), {cycles} cycles ({micros} us) each",
        id.0
    ));
    Ok(())
}

/// `fault KIND`: the fault injector gets an Echo server end, is sent a ping, and fails in way KIND; the shell
/// reports what its side of the channel saw (for every real fault: `Closed`, never a hang).
pub fn fault(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    const USAGE: &str =
        "fault panic|overflow|overflow-abi|overflow-alloc|overflow-tick|quota|spin|drop|exit [--core N]";
    let (kind, core) = match args {
        [kind] => (*kind, None),
        [kind, "--core", n] => {
            (*kind, Some(n.parse().map_err(|_| CommandError::Invalid(format!("'{n}' is not a core")))?))
        }
        _ => return Err(CommandError::Usage(USAGE)),
    };
    let (id, client) = connect(sh, "fault", kind, core)?;
    let Ok(mut owed) = client.send_ping(7) else {
        sh.say(format_args!("fault {kind}: the peer was gone before the ping (Closed)"));
        return Ok(());
    };
    // Wait up to a second for an answer or a close; a SIP that spins forever is killed then.
    let deadline = sh.ctx.now_nanos() + 1_000_000_000;
    let outcome: String = loop {
        match owed.try_recv() {
            TryRecv::Message(client::PingSent::Pong(n, _)) => break format!("answered pong {n}"),
            TryRecv::Closed => break "peer saw Closed".into(),
            TryRecv::Empty(again) => owed = again,
        }
        if sh.ctx.now_nanos() > deadline {
            let _ = sh.ctx.kill(id);
            match owed.recv() {
                Ok(client::PingSent::Pong(n, _)) => break format!("answered pong {n} after the kill"),
                Err(Closed) => break "no answer in 1 s; killed it; peer saw Closed".into(),
            }
        }
        sh.ctx.sleep_ms(5);
    };
    let _ = sh.ctx.wait(id);
    sh.say(format_args!("fault {kind}: {outcome}"));
    Ok(())
}

/// `kv [--protection MODE] [--async] [--core N] put KEY VALUE | get KEY | del KEY | list | quit`: talk to a kv
/// SIP (started on first use, under MODE, `kv-async` with `--async`, on core N, then kept until `quit`).
pub fn kv(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    const USAGE: &str = "kv [--protection type|ring3|ring3-own] [--async] [--core N] put KEY VALUE... | get KEY | del KEY \
                         | list | quit";
    use kv_store::client::{Deleting, Getting, Listing, Putting};
    let gone = || CommandError::Invalid("the kv SIP is gone (it will be restarted by the next kv command)".into());
    let chosen = matches!(args, ["--protection" | "--async", ..]);
    let (options, args) = mode_options(args)?;
    let protection = options.protection;
    let (id, mode, asynchronous, endpoint) = match sh.kv.take() {
        Some((id, mode, asynchronous, endpoint))
            if chosen && (mode != protection || asynchronous != options.asynchronous) =>
        {
            sh.kv = Some((id, mode, asynchronous, endpoint));
            let kind = if asynchronous { "kv-async" } else { "kv" };
            return Err(CommandError::Invalid(format!("{kind}#{} runs under {mode}: 'kv quit' first", id.0)));
        }
        Some(connection) => connection,
        None => {
            let (client, server) = kv_store::channel();
            let service = options.service("kv");
            let id = sh
                .ctx
                .spawn_protected_with(&service, "", options.core, protection, server)
                .map_err(|(e, _)| CommandError::Invalid(format!("cannot spawn '{service}' ({protection}): {e}")))?;
            (id, protection, options.asynchronous, client)
        }
    };
    let ready = match args {
        ["put", key, value @ ..] if !value.is_empty() => {
            let bytes = ExVec::from_slice(value.join(" ").as_bytes());
            match endpoint.send_put(ExString::from(*key), bytes).map_err(|_| gone())?.recv() {
                Ok(Putting::Stored(ready)) => {
                    sh.say(format_args!("stored {key}"));
                    ready
                }
                Ok(Putting::Failed(e, ready)) => {
                    sh.say(format_args!("error: put {key}: {e:?}"));
                    ready
                }
                Err(Closed) => return Err(gone()),
            }
        }
        ["get", key] => match endpoint.send_get(ExString::from(*key)).map_err(|_| gone())?.recv() {
            Ok(Getting::Value(value, ready)) => {
                sh.say(format_args!("{}", String::from_utf8_lossy(value.as_slice())));
                ready
            }
            Ok(Getting::Failed(e, ready)) => {
                sh.say(format_args!("error: get {key}: {e:?}"));
                ready
            }
            Err(Closed) => return Err(gone()),
        },
        ["del", key] => match endpoint.send_delete(ExString::from(*key)).map_err(|_| gone())?.recv() {
            Ok(Deleting::Deleted(ready)) => {
                sh.say(format_args!("deleted {key}"));
                ready
            }
            Ok(Deleting::Failed(e, ready)) => {
                sh.say(format_args!("error: del {key}: {e:?}"));
                ready
            }
            Err(Closed) => return Err(gone()),
        },
        ["list"] => match endpoint.send_list().map_err(|_| gone())?.recv() {
            Ok(Listing::Keys(keys, ready)) => {
                sh.say(format_args!("{} keys", keys.len()));
                for key in keys.as_slice() {
                    sh.say(format_args!("  {}", key.as_str()));
                }
                ready
            }
            Err(Closed) => return Err(gone()),
        },
        ["quit"] => {
            if let Ok(done) = endpoint.send_quit() {
                done.close();
            }
            let _ = sh.ctx.wait(id);
            sh.say(format_args!("kv#{} ended", id.0));
            return Ok(());
        }
        _ => {
            sh.kv = Some((id, mode, asynchronous, endpoint));
            return Err(CommandError::Usage(USAGE));
        }
    };
    sh.kv = Some((id, mode, asynchronous, ready));
    Ok(())
}

/// `names [lookup NAME TEXT... | unbind NAME | restart [--protection MODE]]`: list the name service's
/// bindings, echo text through the Echo service bound to NAME, remove a name the shell bound, or start this
/// core's name service again (in a protection mode).
pub fn names(sh: &mut Shell, args: &[&str]) -> Result<(), CommandError> {
    const USAGE: &str = "names [lookup NAME TEXT... | unbind NAME | restart [--protection type|ring3|ring3-own]]";
    let failed = |what: &str, name: &str, e: contracts::NameError| CommandError::Invalid(format!("{what} {name}: {e}"));
    match args {
        [] => {
            let listing = sh.ctx.names().map_err(|e| CommandError::Invalid(format!("names: {e}")))?;
            if listing.is_empty() {
                sh.say(format_args!("no names bound"));
                return Ok(());
            }
            sh.say(format_args!("{:<24} {:>6} {:>5}  CONTRACT", "NAME", "PID", "CORE"));
            for line in listing.lines() {
                let mut fields = line.split_whitespace();
                let (name, pid, contract, core) = (fields.next(), fields.next(), fields.next(), fields.next());
                let pid = pid.and_then(|p| p.strip_prefix("sip#")).unwrap_or("?");
                let core = core.and_then(|c| c.strip_prefix("cpu#")).unwrap_or("?");
                sh.say(format_args!("{:<24} {pid:>6} {core:>5}  {}", name.unwrap_or("?"), contract.unwrap_or("?")));
            }
            Ok(())
        }
        ["lookup", name, text @ ..] if !text.is_empty() => {
            let (client, server) = echo::channel();
            sh.ctx.lookup(name, server).map_err(|e| failed("lookup", name, e))?;
            let owed = client.send_say(ExString::from(text.join(" ").as_str())).map_err(|_| closed())?;
            match owed.recv() {
                Ok(client::SaySent::Echoed(reply, ready)) => {
                    sh.say(format_args!("{name} answered: {}", reply.as_str()));
                    if let Ok(done) = ready.send_bye() {
                        done.close();
                    }
                    Ok(())
                }
                Err(Closed) => Err(closed()),
            }
        }
        ["unbind", name] => {
            sh.ctx.unbind(name).map_err(|e| failed("unbind", name, e))?;
            sh.say(format_args!("unbound {name}"));
            Ok(())
        }
        ["restart", rest @ ..] => {
            let protection = match rest {
                [] => Protection::Type,
                ["--protection", mode] => Protection::from_name(mode).ok_or(CommandError::Usage(USAGE))?,
                _ => return Err(CommandError::Usage(USAGE)),
            };
            let running = sh.ctx.abi().restart_names(protection).map_err(|e| CommandError::Invalid(format!("{e}")))?;
            if running == protection {
                sh.say(format_args!("the name service runs in {running} (its names were released)"));
            } else {
                sh.say(format_args!(
                    "the name service could not start in {protection} (see the log): it runs in {running}"
                ));
            }
            Ok(())
        }
        _ => Err(CommandError::Usage(USAGE)),
    }
}
