//! The static description of a contract's state machine that `contract!` emits, for introspection (the shell's
//! `contracts` command), documentation and Graphviz rendering.
//!
//! Everything is `'static` data built in constants, so a description costs nothing until it is read.

use alloc::string::String;
use core::fmt::{self, Write};

/// Who sends a message, in Sing#'s terms relative to the exporting (server) side.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    /// Sing#'s `in`: the client (importer) sends, the server receives.
    ToServer,
    /// Sing#'s `out`: the server (exporter) sends, the client receives.
    ToClient,
}

/// One declared message.
#[derive(Debug)]
pub struct MessageInfo {
    /// The message's name.
    pub name: &'static str,
    /// Who sends it.
    pub direction: Direction,
    /// Its payload types, as written in the contract.
    pub payload: &'static [&'static str],
}

/// One transition: in some state, `message` leads to `next`.
#[derive(Debug)]
pub struct TransitionInfo {
    /// Index into [`ContractInfo::messages`].
    pub message: usize,
    /// Index into [`ContractInfo::states`].
    pub next: usize,
}

/// One state.
#[derive(Debug)]
pub struct StateInfo {
    /// The state's name.
    pub name: &'static str,
    /// Declared `terminal`: no messages, the endpoints may `close`.
    pub terminal: bool,
    /// What may happen in this state (all in one direction: the macro rejects races).
    pub transitions: &'static [TransitionInfo],
}

/// A contract's state machine.
#[derive(Debug)]
pub struct ContractInfo {
    /// The contract's name.
    pub name: &'static str,
    /// Index of the initial state in `states`.
    pub initial: usize,
    /// Every state, in declaration order.
    pub states: &'static [StateInfo],
    /// Every message, in declaration order.
    pub messages: &'static [MessageInfo],
    /// The most client-to-server messages in flight at once.
    pub to_server_capacity: usize,
    /// The most server-to-client messages in flight at once.
    pub to_client_capacity: usize,
}

impl ContractInfo {
    /// The state named `name`.
    pub fn state(&self, name: &str) -> Option<&StateInfo> {
        self.states.iter().find(|s| s.name == name)
    }

    /// The message named `name`.
    pub fn message(&self, name: &str) -> Option<&MessageInfo> {
        self.messages.iter().find(|m| m.name == name)
    }

    /// Writes the state machine as a Graphviz digraph. Edge labels use Sing#'s notation from the server's view:
    /// `Msg?` the server receives it, `Msg!` the server sends it.
    pub fn write_dot(&self, out: &mut impl Write) -> fmt::Result {
        writeln!(out, "digraph {} {{", self.name)?;
        writeln!(out, "    rankdir=LR;")?;
        writeln!(out, "    node [shape=ellipse, fontname=\"Helvetica\"];")?;
        writeln!(out, "    edge [fontname=\"Helvetica\"];")?;
        writeln!(out, "    __start [shape=point];")?;
        for (index, state) in self.states.iter().enumerate() {
            let shape = if state.terminal { "doublecircle" } else { "ellipse" };
            writeln!(out, "    \"{}\" [shape={shape}];", state.name)?;
            if index == self.initial {
                writeln!(out, "    __start -> \"{}\";", state.name)?;
            }
        }
        for state in self.states {
            for transition in state.transitions {
                let (Some(message), Some(next)) =
                    (self.messages.get(transition.message), self.states.get(transition.next))
                else {
                    continue;
                };
                let mark = match message.direction {
                    Direction::ToServer => '?',
                    Direction::ToClient => '!',
                };
                write!(out, "    \"{}\" -> \"{}\" [label=\"{}{mark}", state.name, next.name, message.name)?;
                if !message.payload.is_empty() {
                    write!(out, "({})", message.payload.join(", ").replace('"', "\\\""))?;
                }
                writeln!(out, "\"];")?;
            }
        }
        writeln!(out, "}}")
    }

    /// The state machine as a Graphviz digraph (see [`write_dot`](Self::write_dot)).
    pub fn to_dot(&self) -> String {
        let mut dot = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_dot(&mut dot);
        dot
    }
}
