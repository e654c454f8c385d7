//! The shell: Plurality's user interface, as a SIP like any other.
//!
//! The kernel's console driver owns the devices (serial port, keyboard, framebuffer) and the line editor; it
//! hands this SIP the client end of a Console channel at spawn. The shell prints its prompt, asks for a line,
//! runs the command and writes the answer back over the channel. Everything else it does goes through its
//! `SipContext` (the kernel ABI): processes, memory, cores, self-tests, shutdown, and spawning the SIPs that the
//! channel commands talk to. If the shell dies, the console driver starts a new one.
//!
//! Not here: line editing and input errors (the driver answers those before a line reaches the shell), device
//! access, any kernel state.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod channel_commands;
mod commands;

use alloc::string::String;
use channels::{Closed, ExString};
use commands::{COMMANDS, CommandError};
use contracts::console::{self, client, state};
use core::fmt::{self, Write};
use sip_runtime::{Capability, RestartPolicy, SipContext, sip};

sip! {
    name: "shell",
    entry: main,
    exports: [],
    imports: ["Console", "Echo", "KvStore", "NameService"],
    heap_quota: 1 << 20,
    stack_size: 64 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [Capability::ProcessControl, Capability::SystemInfo, Capability::SystemAdmin],
}

/// The prompt; the host test harness and the runner wait for it.
pub const PROMPT: &str = "plurality> ";

/// The shell's state: its context, its console, and connections it keeps between commands.
pub struct Shell {
    ctx: SipContext,
    console: Option<console::Client<state::Ready>>,
    /// The kv SIP of the `kv` command: its id, protection, whether it is `kv-async`, and the client end.
    kv: Option<(
        sip_runtime::SipId,
        sip_runtime::Protection,
        bool,
        contracts::kv_store::Client<contracts::kv_store::state::Ready>,
    )>,
}

fn main(ctx: SipContext) {
    let Some(console) = ctx.take_startup::<console::Client<state::Ready>>() else {
        sip_runtime::warn!(ctx, "started without a console: nothing to do");
        return;
    };
    let mut shell = Shell { ctx, console: Some(console), kv: None };
    shell.say(format_args!("Plurality is up. Type 'help' for commands."));
    while let Some(line) = shell.prompt_and_read() {
        shell.execute(&line);
    }
}

impl Shell {
    /// Writes `text` to the console as it is. A console that went away ends the shell's output for good.
    fn write(&mut self, text: &str) {
        let Some(ready) = self.console.take() else { return };
        let Ok(owed) = ready.send_write(ExString::from(text)) else { return };
        if let Ok(client::Writing::Written(ready)) = owed.recv() {
            self.console = Some(ready);
        }
    }

    /// Writes a formatted line.
    fn say(&mut self, args: fmt::Arguments<'_>) {
        let mut text = String::new();
        let _ = text.write_fmt(args);
        text.push('\n');
        self.write(&text);
    }

    /// Prints the prompt and waits for the next line; `None` when the input has ended or the console is gone.
    fn prompt_and_read(&mut self) -> Option<String> {
        self.write(PROMPT);
        let ready = self.console.take()?;
        match ready.send_read_line().ok()?.recv() {
            Ok(client::Reading::Line(line, ready)) => {
                self.console = Some(ready);
                Some(String::from(line.as_str()))
            }
            Ok(client::Reading::EndOfInput(done)) => {
                done.close();
                None
            }
            Err(Closed) => None,
        }
    }

    fn execute(&mut self, line: &str) {
        let words: alloc::vec::Vec<&str> = line.split_whitespace().collect();
        let Some((&name, args)) = words.split_first() else { return };
        let Some(command) = COMMANDS.iter().find(|c| c.name == name) else {
            let shown: String = name.chars().take(40).collect();
            self.say(format_args!("error: unknown command '{shown}' (try 'help')"));
            return;
        };
        match (command.run)(self, args) {
            Ok(()) => {}
            Err(CommandError::Usage(usage)) => self.say(format_args!("error: usage: {usage}")),
            Err(CommandError::Invalid(why)) => self.say(format_args!("error: {why}")),
        }
    }
}
