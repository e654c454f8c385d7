//! Console commands that talk to SIPs over contract channels: `echo`, `ping`, `fault`, `kv`.
//!
//! Each creates an Echo channel, spawns a SIP with the server end as its startup value, and speaks the client
//! side from the console thread, which shows the contracts working across the SIP boundary, and what a peer sees
//! when the SIP on the other end fails.

use super::shell::CommandError;
use crate::sync::IrqMutex;
use crate::{println, sched, sip, time};
use alloc::format;
use alloc::string::String;
use channels::{Closed, ExString, TryRecv};
use contracts::echo::{self, client, state};
use contracts::kv_store;
use sip_runtime::Startup;

/// Spawns `service` with `args` and the server end of a new Echo channel; returns its pid and the client end.
fn connect(service: &str, args: &str) -> Result<(u64, echo::Client<state::Ready>), CommandError> {
    let (client, server) = echo::channel();
    let startup = Startup::new(server).map_err(|_| CommandError::Invalid("exchange heap exhausted".into()))?;
    let id = sip::spawn_with(service, args, None, Some(startup))
        .map_err(|(e, _)| CommandError::Invalid(format!("cannot spawn '{service}': {e}")))?;
    Ok((id.0, client))
}

/// `echo TEXT...`: the echo SIP sends the text back.
pub fn echo_command(args: &[&str]) -> Result<(), CommandError> {
    if args.is_empty() {
        return Err(CommandError::Usage("echo TEXT..."));
    }
    let (id, client) = connect("echo", "")?;
    let text = ExString::from(args.join(" ").as_str());
    let owed = client.send_say(text).map_err(|_| CommandError::Invalid("the echo SIP closed its end".into()))?;
    match owed.recv() {
        Ok(client::SaySent::Echoed(text, ready)) => {
            println!("{}", text.as_str());
            if let Ok(done) = ready.send_bye() {
                done.close();
            }
        }
        Err(Closed) => println!("error: the echo SIP closed the channel"),
    }
    sip::wait(id);
    Ok(())
}

/// `ping [N]`: N round trips to the echo SIP, with the average cost.
pub fn ping_command(args: &[&str]) -> Result<(), CommandError> {
    let count: u64 = match args {
        [] => 1000,
        [n] => {
            n.parse().ok().filter(|n| *n > 0).ok_or_else(|| CommandError::Invalid(format!("'{n}' is not a count")))?
        }
        _ => return Err(CommandError::Usage("ping [N]")),
    };
    let (id, mut client) = connect("echo", "")?;
    let start = crate::arch::cpu::rdtsc();
    let start_ns = time::uptime_nanos();
    for i in 0..count {
        let owed = client.send_ping(i).map_err(|_| CommandError::Invalid("the echo SIP closed its end".into()))?;
        match owed.recv() {
            Ok(client::PingSent::Pong(n, ready)) if n == i => client = ready,
            Ok(client::PingSent::Pong(n, _)) => return Err(CommandError::Invalid(format!("pong {n} for ping {i}"))),
            Err(Closed) => return Err(CommandError::Invalid("the echo SIP closed the channel".into())),
        }
    }
    let cycles = (crate::arch::cpu::rdtsc() - start) / count;
    let micros = (time::uptime_nanos() - start_ns) / count / 1000;
    if let Ok(done) = client.send_bye() {
        done.close();
    }
    sip::wait(id);
    println!("ping: {count} round trips to echo#{id}, {cycles} cycles ({micros} us) each");
    Ok(())
}

/// `fault KIND`: the fault injector gets an Echo server end, is sent a ping, and fails in way KIND; the console
/// reports what its side of the channel saw (for every real fault: `Closed`, never a hang).
pub fn fault_command(args: &[&str]) -> Result<(), CommandError> {
    let [kind] = args else { return Err(CommandError::Usage("fault panic|overflow|quota|spin|drop|exit")) };
    let (id, client) = connect("fault", kind)?;
    let owed = match client.send_ping(7) {
        Ok(owed) => owed,
        Err(_) => {
            println!("fault {kind}: the peer was gone before the ping (Closed)");
            return Ok(());
        }
    };
    // Wait up to a second for an answer or a close; a SIP that spins forever is killed then.
    let deadline = time::uptime_nanos() + 1_000_000_000;
    let mut owed = owed;
    let outcome: String = loop {
        match owed.try_recv() {
            TryRecv::Message(client::PingSent::Pong(n, _)) => break format!("answered pong {n}"),
            TryRecv::Closed => break "peer saw Closed".into(),
            TryRecv::Empty(again) => owed = again,
        }
        if time::uptime_nanos() > deadline {
            let _ = sip::kill(id);
            match owed.recv() {
                Ok(client::PingSent::Pong(n, _)) => break format!("answered pong {n} after the kill"),
                Err(Closed) => break "no answer in 1 s; killed it; peer saw Closed".into(),
            }
        }
        sched::sleep(5_000_000);
    };
    sip::wait(id);
    println!("fault {kind}: {outcome}");
    Ok(())
}

/// The console's connection to its key-value store SIP, made on first use and kept (the store lives on).
static KV: IrqMutex<Option<(u64, kv_store::Client<kv_store::state::Ready>)>> = IrqMutex::new(None);

/// `kv put KEY VALUE | get KEY | del KEY | list | quit`: talk to a kv SIP (started on first use).
pub fn kv_command(args: &[&str]) -> Result<(), CommandError> {
    const USAGE: &str = "kv put KEY VALUE... | get KEY | del KEY | list | quit";
    let (id, endpoint) = match KV.lock().take() {
        Some(connection) => connection,
        None => {
            let (client, server) = kv_store::channel();
            let startup = Startup::new(server).map_err(|_| CommandError::Invalid("exchange heap exhausted".into()))?;
            let id = sip::spawn_with("kv", "", None, Some(startup))
                .map_err(|(e, _)| CommandError::Invalid(format!("cannot spawn 'kv': {e}")))?;
            (id.0, client)
        }
    };
    let gone = || CommandError::Invalid("the kv SIP is gone (it will be restarted by the next kv command)".into());
    use kv_store::client::{Deleting, Getting, Listing, Putting};
    let ready = match args {
        ["put", key, value @ ..] if !value.is_empty() => {
            let bytes = channels::ExVec::from_slice(value.join(" ").as_bytes());
            match endpoint.send_put(ExString::from(*key), bytes).map_err(|_| gone())?.recv() {
                Ok(Putting::Stored(ready)) => (println!("stored {key}"), ready).1,
                Ok(Putting::Failed(e, ready)) => (println!("error: put {key}: {e:?}"), ready).1,
                Err(Closed) => return Err(gone()),
            }
        }
        ["get", key] => match endpoint.send_get(ExString::from(*key)).map_err(|_| gone())?.recv() {
            Ok(Getting::Value(value, ready)) => {
                println!("{}", String::from_utf8_lossy(value.as_slice()));
                ready
            }
            Ok(Getting::Failed(e, ready)) => (println!("error: get {key}: {e:?}"), ready).1,
            Err(Closed) => return Err(gone()),
        },
        ["del", key] => match endpoint.send_delete(ExString::from(*key)).map_err(|_| gone())?.recv() {
            Ok(Deleting::Deleted(ready)) => (println!("deleted {key}"), ready).1,
            Ok(Deleting::Failed(e, ready)) => (println!("error: del {key}: {e:?}"), ready).1,
            Err(Closed) => return Err(gone()),
        },
        ["list"] => match endpoint.send_list().map_err(|_| gone())?.recv() {
            Ok(Listing::Keys(keys, ready)) => {
                println!("{} keys", keys.len());
                keys.as_slice().iter().for_each(|k| println!("  {}", k.as_str()));
                ready
            }
            Err(Closed) => return Err(gone()),
        },
        ["quit"] => {
            if let Ok(done) = endpoint.send_quit() {
                done.close();
            }
            sip::wait(id);
            println!("kv#{id} ended");
            return Ok(());
        }
        _ => {
            *KV.lock() = Some((id, endpoint));
            return Err(CommandError::Usage(USAGE));
        }
    };
    *KV.lock() = Some((id, ready));
    Ok(())
}
