//! The echo service: answers every `Ping` with a `Pong` and every `Say` with an `Echoed` (the Echo contract).
//!
//! Spawned with an Echo server end as its startup value (the console's `echo` and `ping` commands, the
//! ping-pong benchmark), it serves that one channel until the client says `Bye` or goes away; with the
//! arguments `yields N` it first yields N times before each answer (a slow peer: the benchmark's "receiver
//! parks" row, whose every receive has to park). Spawned without one (`spawn echo [NAME]`), it binds NAME
//! (default `echo`) in the name service and serves every client that looks the name up, all at once; if the
//! name service restarts, it binds the name again.
//!
//! `echo-async` is the same service as a continuation (docs/thread-models.md): it serves the endpoint it is
//! spawned with by awaiting each request (`recv_async`), with the same answers ([`answer`]), and holds no
//! stack while it waits; with the argument `hand-over` it makes a thread's yield before each answer (a blocking
//! call inside a poll: `bench models` measures the hand-over it causes). Spawned without one (`spawn echo-async
//! [NAME]`), it binds NAME (default `echo-async`) with the name service's async calls and serves every client
//! that looks it up, all at once, awaiting whichever speaks next (`select_with_vec_async`), as `echo` does on a
//! thread.
//!
//! The contract makes the protocol a matter of types: the server can only answer a `Ping` with a `Pong`, a
//! `Say` with an `Echoed`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use channels::{Closed, SelectWithVec, select_with_vec, select_with_vec_async};
use contracts::echo::{self, server, state};
use contracts::service_provider;
use sip_runtime::{RestartPolicy, SipContext, sip};

sip! {
    name: "echo",
    entry: main,
    exports: ["Echo", "ServiceProvider"],
    imports: ["NameService"],
    heap_quota: 64 * 1024,
    stack_size: 16 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

sip! {
    name: "echo-async",
    entry: async main_async,
    exports: ["Echo", "ServiceProvider"],
    imports: ["NameService"],
    heap_quota: 16 * 1024,
    stack_size: 16 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

fn main(ctx: SipContext) {
    match ctx.take_startup::<echo::Server<state::Ready>>() {
        Some(endpoint) => {
            let Some(yields) = yields_before_answer(ctx.args()) else {
                // The endpoint goes with this SIP: the client sees `Closed`.
                return sip_runtime::warn!(ctx, "usage with a startup endpoint: [yields N]");
            };
            // Without yields, the plain loop (the ping-pong benchmark measures it): a closure that yields zero
            // times would still cost a test per request.
            let served = match yields {
                0 => serve(endpoint),
                n => serve_with(endpoint, || (0..n).for_each(|_| ctx.yield_now())),
            };
            sip_runtime::debug!(ctx, "served {served} requests");
        }
        None => serve_named(&ctx),
    }
}

/// How often to yield before each answer: `""` is none, `yields N` is N; anything else is `None`.
fn yields_before_answer(args: &str) -> Option<u32> {
    match args.split_whitespace().collect::<Vec<_>>().as_slice() {
        [] => Some(0),
        ["yields", n] => n.parse().ok(),
        _ => None,
    }
}

/// How often a bind is tried before giving up (the name service may be restarting).
const BIND_ATTEMPTS: u32 = 10;

/// Binds the name from the arguments and serves every client that looks it up.
fn serve_named(ctx: &SipContext) {
    let name = name_from(ctx, "echo");
    let Some(mut provider) = bind(ctx, name) else { return };
    sip_runtime::info!(ctx, "serving '{name}'");
    let mut sessions: Vec<echo::Server<state::Ready>> = Vec::new();
    loop {
        provider = match serve_one(select_with_vec(provider, &mut sessions), &mut sessions) {
            Some(next) => next,
            None => match bind(ctx, name) {
                Some(next) => next,
                None => return,
            },
        };
    }
}

/// The name a named echo binds: its arguments, or `default`.
fn name_from<'a>(ctx: &'a SipContext, default: &'a str) -> &'a str {
    match ctx.args().trim() {
        "" => default,
        name => name,
    }
}

/// A named echo's provider endpoint.
type Provider = service_provider::Server<service_provider::state::Ready>;

/// Handles what a named echo's select took: a new client joins `sessions`, a request is answered (its session
/// goes back unless it said `Bye`). The provider endpoint comes back, or `None` if the name service is gone and
/// the name must be bound again.
fn serve_one(
    fired: SelectWithVec<Provider, echo::Server<state::Ready>>,
    sessions: &mut Vec<echo::Server<state::Ready>>,
) -> Option<Provider> {
    match fired {
        SelectWithVec::First(Ok(service_provider::server::Ready::Connect(end, owes))) => {
            let (session, next) = sip_runtime::accept::<echo::Server<state::Ready>>(end, owes);
            sessions.extend(session);
            next.ok()
        }
        SelectWithVec::First(Err(Closed)) => None,
        SelectWithVec::Member(next, _, request) => {
            sessions.extend(request.ok().and_then(answer));
            Some(next)
        }
    }
}

/// Binds `name` to this SIP, retrying while the name service is unavailable.
fn bind(ctx: &SipContext, name: &str) -> Option<Provider> {
    for _ in 0..BIND_ATTEMPTS {
        match ctx.bind(name, "Echo") {
            Ok(provider) => return Some(provider),
            Err(contracts::NameError::Unavailable) => ctx.sleep_ms(200),
            Err(e) => {
                sip_runtime::warn!(ctx, "cannot bind '{name}': {e}");
                return None;
            }
        }
    }
    sip_runtime::warn!(ctx, "cannot bind '{name}': the name service stays unavailable");
    None
}

/// The entry of `echo-async`: serves the startup endpoint as [`serve_async`], or without one a name.
async fn main_async(ctx: SipContext) {
    let Some(endpoint) = ctx.take_startup::<echo::Server<state::Ready>>() else {
        // Boxed: a future is as large as its largest state, and the named server's (its sessions, its select,
        // a bind) would otherwise make every blocked `echo-async` bigger, named or not (`bench models`).
        return Box::pin(serve_named_async(&ctx)).await;
    };
    let served = match ctx.args().trim() {
        "" => serve_async(endpoint, || {}).await,
        // A thread's yield before every answer: the runner is switched out inside the poll and hands the core's
        // tasks over (what preempting a continuation costs: `bench models`).
        "hand-over" => serve_async(endpoint, || ctx.yield_now()).await,
        // The endpoint goes with this SIP: the client sees `Closed`.
        _ => return sip_runtime::warn!(ctx, "usage: echo-async [hand-over]"),
    };
    sip_runtime::debug!(ctx, "served {served} requests");
}

/// [`serve_named`] as a continuation: the name is bound with `bind_async`, and the next client or request is
/// awaited with `select_with_vec_async` (no stack is held while all are quiet).
async fn serve_named_async(ctx: &SipContext) {
    let name = name_from(ctx, "echo-async");
    let Some(mut provider) = bind_async(ctx, name).await else { return };
    sip_runtime::info!(ctx, "serving '{name}'");
    let mut sessions: Vec<echo::Server<state::Ready>> = Vec::new();
    loop {
        provider = match serve_one(select_with_vec_async(provider, &mut sessions).await, &mut sessions) {
            Some(next) => next,
            None => match bind_async(ctx, name).await {
                Some(next) => next,
                None => return,
            },
        };
    }
}

/// [`bind`] as a continuation: the name service is asked with `bind_async`, and a pause between attempts is an
/// async sleep.
async fn bind_async(ctx: &SipContext, name: &str) -> Option<Provider> {
    for _ in 0..BIND_ATTEMPTS {
        match ctx.bind_async(name, "Echo").await {
            Ok(provider) => return Some(provider),
            Err(contracts::NameError::Unavailable) => ctx.sleep_async(200).await,
            Err(e) => {
                sip_runtime::warn!(ctx, "cannot bind '{name}': {e}");
                return None;
            }
        }
    }
    sip_runtime::warn!(ctx, "cannot bind '{name}': the name service stays unavailable");
    None
}

/// [`serve_with`] as a continuation: awaits each request, runs `before_answer`, answers it as [`serve`] does,
/// until `Bye` or until the client is gone; returns how many requests were answered.
pub async fn serve_async(mut endpoint: echo::Server<state::Ready>, before_answer: impl Fn()) -> u64 {
    let mut served = 0;
    loop {
        let Ok(request) = endpoint.recv_async().await else { return served };
        before_answer();
        match answer(request) {
            Some(next) => endpoint = next,
            None => return served,
        }
        served += 1;
    }
}

/// Answers one request; the session comes back unless the client said `Bye` or is gone. Always inlined: it is
/// on the ping-pong benchmark's path, and with three callers the compiler would otherwise make it a call.
#[inline(always)]
fn answer(request: server::Ready) -> Option<echo::Server<state::Ready>> {
    match request {
        server::Ready::Ping(n, owes) => owes.send_pong(n).ok(),
        server::Ready::Say(text, owes) => owes.send_echoed(text).ok(),
        server::Ready::Bye(done) => {
            done.close();
            None
        }
    }
}

/// Answers requests until `Bye` or until the client is gone; returns how many were answered.
pub fn serve(endpoint: echo::Server<state::Ready>) -> u64 {
    serve_with(endpoint, || {})
}

/// [`serve`], running `before_answer` after each request arrives and before it is answered.
///
/// Each answer and the next request are one step (`send_<message>_and_recv`): one kernel call in ring 3 (reply
/// and wait, as an L4 server does), the send and the receive in ring 0.
pub fn serve_with(endpoint: echo::Server<state::Ready>, before_answer: impl Fn()) -> u64 {
    let Ok(mut request) = endpoint.recv() else { return 0 };
    let mut served = 0;
    loop {
        before_answer();
        // Answered, and the client left without another request (or the answer did not go out): done.
        request = match request {
            server::Ready::Ping(n, owes) => match owes.send_pong_and_recv(n) {
                Ok(next) => next,
                Err(failed) => return served + u64::from(failed.was_sent()),
            },
            server::Ready::Say(text, owes) => match owes.send_echoed_and_recv(text) {
                Ok(next) => next,
                Err(failed) => return served + u64::from(failed.was_sent()),
            },
            server::Ready::Bye(done) => {
                done.close();
                return served;
            }
        };
        served += 1;
    }
}
