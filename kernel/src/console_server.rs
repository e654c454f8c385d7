//! The console server: serves the Console contract to the shell SIP over the console's devices, restarting the
//! shell whenever it ends.
//!
//! This is glue at the top of the kernel: it needs the console (`console::reader` reads lines, `print` writes)
//! and the SIP layer (it spawns the shell and waits for its end). Input errors (an over-long line, control
//! bytes, invalid UTF-8) are the reader's to report: it prints one `error:` line and the shell gets an empty
//! line, so it simply prompts again. Ctrl-C likewise.

use crate::console::reader::Reader;
use crate::println;
use channels::{Closed, ExString};
use contracts::console::{self, server, state};
use sip_runtime::Startup;

/// Runs the console forever: start a shell, serve it until it ends, start another.
pub fn run() -> ! {
    // The name service comes up beside the console: the shell and every service may look names up.
    crate::sip::names::start();
    if let Some(id) = crate::sched::current_id() {
        crate::console::set_reader(id);
    }
    let mut reader = Reader::new();
    loop {
        let started = crate::time::uptime_nanos();
        match start_shell() {
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

fn start_shell() -> Result<(u64, console::Server<state::Ready>), sip_runtime::SpawnError> {
    let (client, server) = console::channel();
    let startup = Startup::new(client).map_err(|_| sip_runtime::SpawnError::OutOfMemory)?;
    let here = Some(crate::percpu::current_index());
    let id = crate::sip::spawn_with("shell", "", here, Some(startup)).map_err(|(e, _)| e)?;
    Ok((id.0, server))
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
