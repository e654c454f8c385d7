//! The console server: serves the Console contract to the shell SIP over the console's devices, restarting the
//! shell whenever it ends.
//!
//! This is glue at the top of the kernel: it needs the console (`console::reader` reads lines, `print` writes)
//! and the SIP layer (it spawns the shell and waits for its end). Input errors (an over-long line, control
//! bytes, invalid UTF-8) are the reader's to report: it prints one `error:` line and the shell gets an empty
//! line, so it simply prompts again. Ctrl-C likewise.
//!
//! The shell runs in the protection mode the runner's `--shell-protection` names (fw_cfg file
//! `opt/plurality/shell-protection`), else in its manifest's (`type`); its console crosses into ring 3 as its
//! startup value, as any contract end does.

use crate::console::reader::Reader;
use crate::println;
use channels::{Closed, ExString};
use contracts::console::{self, server, state};
use sip_runtime::{Protection, Startup};

/// Runs the console forever: start a shell, serve it until it ends, start another.
pub fn run() -> ! {
    // The name service comes up beside the console: the shell and every service may look names up.
    crate::sip::names::start();
    if let Some(id) = crate::sched::current_id() {
        crate::console::set_reader(id);
    }
    let protection = shell_protection();
    let mut reader = Reader::new();
    loop {
        let started = crate::time::uptime_nanos();
        match start_shell(protection) {
            Ok((id, endpoint)) => {
                serve(endpoint, &mut reader);
                crate::sip::wait(id);
                log::warn!("the shell (sip {id}) ended; starting a new one");
            }
            Err(e) => println!("error: cannot start the shell: {e}"),
        }
        // A shell that dies at once would otherwise be restarted in a tight loop.
        if crate::time::uptime_nanos() - started < 1_000_000_000 {
            crate::sched::sleep(1_000_000_000);
        }
    }
}

/// The mode the runner asked for the shell (`None`: its manifest's); a value that names no mode is reported.
fn shell_protection() -> Option<Protection> {
    let mut value = [0u8; 16];
    let len = crate::firmware::fw_cfg::read_file("opt/plurality/shell-protection", &mut value)?;
    let name = value.get(..len).and_then(|bytes| core::str::from_utf8(bytes).ok()).unwrap_or("?");
    match Protection::from_name(name.trim()) {
        Some(protection) => {
            log::info!("console: the shell runs in {protection}");
            Some(protection)
        }
        None => {
            log::warn!("console: '{name}' is no protection mode; the shell runs in its manifest's");
            None
        }
    }
}

fn start_shell(
    protection: Option<Protection>,
) -> Result<(u64, console::Server<state::Ready>), sip_runtime::SpawnError> {
    let (client, server) = console::channel();
    let startup = Startup::new(client).map_err(|_| sip_runtime::SpawnError::OutOfMemory)?;
    let here = Some(crate::percpu::current_index());
    let id = match protection {
        Some(protection) => crate::sip::spawn_protected("shell", "", here, protection, Some(startup)),
        None => crate::sip::spawn_with("shell", "", here, Some(startup)),
    };
    Ok((id.map_err(|(e, _)| e)?.0, server))
}

/// Answers the shell's requests until it quits or is gone.
fn serve(mut endpoint: console::Server<state::Ready>, reader: &mut Reader) {
    loop {
        let next = match endpoint.recv() {
            Ok(server::Ready::Write(text, owes)) => {
                crate::print!("{}", text.as_str());
                owes.send_written().ok()
            }
            Ok(server::Ready::ReadLine(owes)) => {
                let line = reader.read_line();
                owes.send_line(ExString::from(line.as_str())).ok()
            }
            Ok(server::Ready::Quit(done)) => {
                done.close();
                return;
            }
            Err(Closed) => return,
        };
        match next {
            Some(ready) => endpoint = ready,
            None => return,
        }
    }
}
