//! The echo service: serves one Echo channel, handed to it at spawn, until the client says `Bye` or goes away.
//!
//! It is the peer of the console's `echo` and `ping` commands and of the ping-pong benchmark. The contract makes
//! the protocol a matter of types: the server can only answer a `Ping` with a `Pong`, a `Say` with an `Echoed`.
#![no_std]
#![forbid(unsafe_code)]

use contracts::echo::{self, server, state};
use sip_runtime::{RestartPolicy, SipContext, sip};

sip! {
    name: "echo",
    entry: main,
    exports: ["Echo"],
    imports: [],
    heap_quota: 64 * 1024,
    stack_size: 16 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

fn main(ctx: SipContext) {
    match ctx.take_startup::<echo::Server<state::Ready>>() {
        Some(endpoint) => {
            let served = serve(endpoint);
            sip_runtime::debug!(ctx, "served {served} requests");
        }
        None => sip_runtime::warn!(ctx, "spawned without an Echo endpoint: nothing to serve"),
    }
}

/// Answers requests until `Bye` or until the client is gone; returns how many were answered.
pub fn serve(mut endpoint: echo::Server<state::Ready>) -> u64 {
    let mut served = 0;
    loop {
        let next = match endpoint.recv() {
            Ok(server::Ready::Ping(n, owes)) => owes.send_pong(n).ok(),
            Ok(server::Ready::Say(text, owes)) => owes.send_echoed(text).ok(),
            Ok(server::Ready::Bye(done)) => {
                done.close();
                return served;
            }
            Err(channels::Closed) => None,
        };
        match next {
            Some(ready) => endpoint = ready,
            None => return served,
        }
        served += 1;
    }
}
