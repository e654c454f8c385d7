//! What the typestate costs over the raw ring, measured in instructions rather than time.
//!
//! One thread plays both sides of a channel: the client sends one message, the server receives it and answers,
//! the client receives the answer, `N` times. `typed` does this through the `echo` contract's typed endpoints
//! (`send_ping`, the server's `try_recv` giving `Ping` and the endpoint in its next state, `send_pong`, the
//! client's `try_recv` giving `Pong`); `raw` does the same with the raw ring under it (`channels::raw::pair`
//! with the echo contract's own wire enums and ring capacities, through `channels::contract_pair`), `send` and
//! `try_recv`. `typed-local` and `raw-local` are the same two over a copy of the echo contract declared in this
//! file, whose ring functions are instantiated for this crate's types alone (so the compiler's inlining
//! decisions, which depend on how many callers a function has, may differ from the `echo` pair's: compare
//! `typed` with `raw` and `typed-local` with `raw-local`). `raw-u64` does them over a raw pair of `u64` rings
//! (no wire enums), and `rtrb` through two rtrb rings of `u64`, for scale. Every receive finds its message already queued, so nothing ever blocks or spins: the
//! program executes the message path and nothing else.
//!
//! Run it under callgrind, once with `N` round trips and once with none, and divide the difference by `N`:
//!
//! ```sh
//! export CARGO_TARGET_DIR=/tmp/target-tscost
//! cargo build --release -p contracts --example typestate_cost
//! BIN=$CARGO_TARGET_DIR/release/examples/typestate_cost
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p $BIN typed 100000
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p $BIN typed 0
//! # ... and the same with `raw`, `typed-local`, `raw-local` and `rtrb`; compare the `Collected` counts.
//! ```
//!
//! Why instruction counts: a few percent is below what wall-clock runs resolve on a shared VM (criterion's
//! two-thread round trips varied by -8 % to +15 % between runs), while callgrind counts the same instructions
//! on every run of the same binary. Instructions are not cycles (callgrind ignores caches, pipelining and branch
//! prediction), but on this single-threaded path the typestate can only cost through extra instructions, which
//! is what this counts. Results are in `docs/benchmarks.md` ("Typestate cost in instructions").

use channels::ExString;
use contracts::contract;
use contracts::echo;
use std::hint::black_box;
use std::process::ExitCode;

contract! {
    /// The echo contract again (same messages, states and wire types), declared in this crate.
    pub contract LocalEcho {
        in message Ping(u64);
        in message Say(ExString);
        in message Bye;
        out message Pong(u64);
        out message Echoed(ExString);
        initial state Ready { Ping -> PingSent, Say -> SaySent, Bye -> Done }
        state PingSent { Pong -> Ready }
        state SaySent { Echoed -> Ready }
        terminal state Done;
    }
}

/// Generates an `N`-round-trip function over the typed endpoints of an echo contract module.
macro_rules! typed_round_trips {
    ($name:ident, $contract:ident) => {
        /// `N` round trips through the typed echo endpoints; returns the sum of the answers.
        #[inline(never)]
        fn $name(rounds: u64) -> u64 {
            let (mut client, mut server) = $contract::channel();
            let mut sum = 0u64;
            for i in 0..rounds {
                let waiting = match client.send_ping(black_box(i)) {
                    Ok(waiting) => waiting,
                    Err(_) => panic!("server vanished"),
                };
                let (n, owes) = match server.try_recv() {
                    channels::TryRecv::Message($contract::server::Ready::Ping(n, owes)) => (n, owes),
                    _ => panic!("the ping is queued"),
                };
                server = match owes.send_pong(black_box(n)) {
                    Ok(server) => server,
                    Err(_) => panic!("client vanished"),
                };
                client = match waiting.try_recv() {
                    channels::TryRecv::Message($contract::client::PingSent::Pong(n, client)) => {
                        sum = sum.wrapping_add(black_box(n));
                        client
                    }
                    _ => panic!("the pong is queued"),
                };
            }
            drop(black_box(client));
            drop(black_box(server));
            sum
        }
    };
}

typed_round_trips!(typed, echo);
typed_round_trips!(typed_local, local_echo);

/// Generates an `N`-round-trip function over the raw ring with an echo contract's wire types and capacities.
macro_rules! raw_round_trips {
    ($name:ident, $contract:ident, $marker:ident) => {
        /// `N` round trips through the raw ring with the echo wire types; returns the sum of the answers.
        #[inline(never)]
        fn $name(rounds: u64) -> u64 {
            let (mut client, mut server) = channels::contract_pair::<$contract::$marker>();
            let mut sum = 0u64;
            for i in 0..rounds {
                if client.send($contract::ToServer::Ping($contract::msg::Ping(black_box(i)))).is_err() {
                    panic!("server vanished");
                }
                let n = match server.try_recv() {
                    Ok($contract::ToServer::Ping($contract::msg::Ping(n))) => n,
                    _ => panic!("the ping is queued"),
                };
                if server.send($contract::ToClient::Pong($contract::msg::Pong(black_box(n)))).is_err() {
                    panic!("client vanished");
                }
                match client.try_recv() {
                    Ok($contract::ToClient::Pong($contract::msg::Pong(n))) => sum = sum.wrapping_add(black_box(n)),
                    _ => panic!("the pong is queued"),
                }
            }
            drop(black_box(client));
            drop(black_box(server));
            sum
        }
    };
}

raw_round_trips!(raw, echo, Echo);
raw_round_trips!(raw_local, local_echo, LocalEcho);

/// `N` round trips through the raw ring carrying plain `u64`s both ways (capacity 1 each, as the criterion
/// benchmark's `raw ring (u64)`): what the echo wire types add over the bare ring, and the bare ring against rtrb.
#[inline(never)]
fn raw_u64_round_trips(rounds: u64) -> u64 {
    let (mut client, mut server) = channels::raw::pair::<u64, u64>(1, 1);
    let mut sum = 0u64;
    for i in 0..rounds {
        if client.send(black_box(i)).is_err() {
            panic!("server vanished");
        }
        let n = server.try_recv().expect("the ping is queued");
        if server.send(black_box(n)).is_err() {
            panic!("client vanished");
        }
        sum = sum.wrapping_add(black_box(client.try_recv().expect("the pong is queued")));
    }
    drop(black_box(client));
    drop(black_box(server));
    sum
}

/// `N` round trips through two rtrb rings of `u64` (the spinning peer of the criterion benchmark), for scale: what
/// a ring without blocking, closing or exchange-heap ownership executes.
#[inline(never)]
fn rtrb_round_trips(rounds: u64) -> u64 {
    let (mut to_server, mut from_client) = rtrb::RingBuffer::<u64>::new(1);
    let (mut to_client, mut from_server) = rtrb::RingBuffer::<u64>::new(1);
    let mut sum = 0u64;
    for i in 0..rounds {
        to_server.push(black_box(i)).expect("room");
        let n = from_client.pop().expect("the ping is queued");
        to_client.push(black_box(n)).expect("room");
        sum = sum.wrapping_add(black_box(from_server.pop().expect("the pong is queued")));
    }
    sum
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args.get(2).and_then(|n| n.parse::<u64>().ok());
    let sum = match (args.get(1).map(String::as_str), rounds) {
        (Some("typed"), Some(rounds)) => typed(black_box(rounds)),
        (Some("typed-local"), Some(rounds)) => typed_local(black_box(rounds)),
        (Some("raw"), Some(rounds)) => raw(black_box(rounds)),
        (Some("raw-local"), Some(rounds)) => raw_local(black_box(rounds)),
        (Some("raw-u64"), Some(rounds)) => raw_u64_round_trips(black_box(rounds)),
        (Some("rtrb"), Some(rounds)) => rtrb_round_trips(black_box(rounds)),
        _ => {
            eprintln!("usage: typestate_cost typed|typed-local|raw|raw-local|raw-u64|rtrb N");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", black_box(sum));
    ExitCode::SUCCESS
}
