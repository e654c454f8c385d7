//! Channel benchmarks between two threads: round-trip ping-pong and one-way throughput of the contract channel,
//! the raw ring under it, crossbeam-channel (bounded), flume (bounded), `std::sync::mpsc::sync_channel` and rtrb,
//! all in the same run. The typestate's cost is the contract channel's time over the raw ring's on the same
//! pattern. Results and the command are published in `docs/benchmarks.md` ("Channels (host)").

use channels::Closed;
use channels::raw::pair;
use contracts::contract;
use contracts::echo::{self, client, server, state};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

/// Messages per one-way iteration batch (capacity of the compared bounded channels).
const ONE_WAY_CAPACITY: usize = 64;

contract! {
    /// Benchmark contract: eight items, then an acknowledgement (window of eight in flight).
    pub contract Pipe {
        in message Item(u64);
        out message Ack;
        initial state W0 { Item -> W1 }
        state W1 { Item -> W2 }
        state W2 { Item -> W3 }
        state W3 { Item -> W4 }
        state W4 { Item -> W5 }
        state W5 { Item -> W6 }
        state W6 { Item -> W7 }
        state W7 { Item -> W8 }
        state W8 { Ack -> W0 }
    }
}

contract! {
    /// Benchmark contract: a number there and back, the payload the peers carry (the like-for-like round trip).
    pub contract PingPong {
        in message Ping(u64);
        out message Pong(u64);
        initial state Ready { Ping -> Waiting }
        state Waiting { Pong -> Ready }
    }
}

/// Round trip through a pair of bounded channels of a peer crate (crossbeam, flume and std share `send`/`recv`).
macro_rules! peer_round_trip {
    ($group:expr, $name:literal, $make:expr) => {
        $group.bench_function($name, |b| {
            let (to_server, from_client) = $make;
            let (to_client, from_server) = $make;
            let server = thread::spawn(move || {
                while let Ok(n) = from_client.recv() {
                    if to_client.send(n).is_err() {
                        return;
                    }
                }
            });
            let mut client = Some((to_server, from_server));
            b.iter_custom(|iters| {
                timed(iters, &mut client, |c, i| {
                    c.0.send(i).expect("server alive");
                    black_box(c.1.recv().expect("server alive"));
                    c
                })
            });
            drop(client);
            server.join().expect("server");
        });
    };
}

/// One-way throughput through one bounded channel of a peer crate.
macro_rules! peer_one_way {
    ($group:expr, $name:literal, $make:expr) => {
        $group.bench_function($name, |b| {
            b.iter_custom(|iters| {
                let (tx, rx) = $make;
                let receiver = thread::spawn(move || {
                    for _ in 0..iters {
                        black_box(rx.recv().expect("sender alive"));
                    }
                });
                let start = Instant::now();
                for i in 0..iters {
                    tx.send(i).expect("receiver alive");
                }
                receiver.join().expect("receiver");
                start.elapsed()
            });
        });
    };
}

/// Runs `client_round` `iters` times on the client end kept in `client` (its server thread runs meanwhile),
/// timing only the rounds.
fn timed<C>(iters: u64, client: &mut Option<C>, mut client_round: impl FnMut(C, u64) -> C) -> Duration {
    let mut current = client.take().expect("client endpoint present between batches");
    let start = Instant::now();
    for i in 0..iters {
        current = client_round(current, i);
    }
    let elapsed = start.elapsed();
    *client = Some(current);
    elapsed
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");
    group.throughput(Throughput::Elements(1));

    // The contract channel: typed echo, one Ping and one Pong per round.
    group.bench_function("contract (echo)", |b| {
        let (client, server) = echo::channel();
        let server = thread::spawn(move || {
            let mut server = server;
            while let Ok(server::Ready::Ping(n, s)) = server.recv() {
                match s.send_pong(n) {
                    Ok(next) => server = next,
                    Err(_) => return,
                }
            }
        });
        let mut client: Option<echo::Client<state::Ready>> = Some(client);
        b.iter_custom(|iters| {
            timed(iters, &mut client, |c, i| match c.send_ping(i).map(|w| w.recv()) {
                Ok(Ok(client::PingSent::Pong(n, c))) => {
                    black_box(n);
                    c
                }
                _ => panic!("echo server vanished"),
            })
        });
        drop(client);
        server.join().expect("server");
    });

    // The contract channel with the peers' payload: one `u64` each way.
    group.bench_function("contract (ping-pong u64)", |b| {
        let (client, server) = ping_pong::channel();
        let server = thread::spawn(move || {
            let mut server = server;
            while let Ok(ping_pong::server::Ready::Ping(n, s)) = server.recv() {
                match s.send_pong(n) {
                    Ok(next) => server = next,
                    Err(_) => return,
                }
            }
        });
        let mut client: Option<ping_pong::Client<ping_pong::state::Ready>> = Some(client);
        b.iter_custom(|iters| {
            timed(iters, &mut client, |c, i| match c.send_ping(i).map(|w| w.recv()) {
                Ok(Ok(ping_pong::client::Waiting::Pong(n, c))) => {
                    black_box(n);
                    c
                }
                _ => panic!("ping-pong server vanished"),
            })
        });
        drop(client);
        server.join().expect("server");
    });

    // The raw ring with the echo contract's own wire messages and capacities, no typestate: the difference to
    // the line above is what the typestate costs.
    group.bench_function("raw ring (echo wire types)", |b| {
        let (client, mut server) = channels::contract_pair::<echo::Echo>();
        let server = thread::spawn(move || {
            while let Ok(echo::ToServer::Ping(echo::msg::Ping(n))) = server.recv() {
                if server.send(echo::ToClient::Pong(echo::msg::Pong(n))).is_err() {
                    return;
                }
            }
        });
        let mut client = Some(client);
        b.iter_custom(|iters| {
            timed(iters, &mut client, |mut c, i| {
                if c.send(echo::ToServer::Ping(echo::msg::Ping(i))).is_err() {
                    panic!("server vanished");
                }
                match c.recv() {
                    Ok(echo::ToClient::Pong(echo::msg::Pong(n))) => black_box(n),
                    _ => panic!("server vanished"),
                };
                c
            })
        });
        drop(client);
        server.join().expect("server");
    });

    // The raw ring carrying plain `u64`s, like the peers below.
    group.bench_function("raw ring (u64)", |b| {
        let (client, mut server) = pair::<u64, u64>(1, 1);
        let server = thread::spawn(move || {
            while let Ok(n) = server.recv() {
                if server.send(n).is_err() {
                    return;
                }
            }
        });
        let mut client = Some(client);
        b.iter_custom(|iters| {
            timed(iters, &mut client, |mut c, i| {
                if c.send(i).is_err() {
                    panic!("server vanished");
                }
                match c.recv() {
                    Ok(n) => black_box(n),
                    Err(Closed) => panic!("server vanished"),
                };
                c
            })
        });
        drop(client);
        server.join().expect("server");
    });

    // The blocking peers: one bounded channel each way, the same loop for every crate.
    peer_round_trip!(group, "crossbeam-channel bounded(1)", crossbeam_channel::bounded::<u64>(1));
    peer_round_trip!(group, "flume bounded(1)", flume::bounded::<u64>(1));
    peer_round_trip!(group, "std sync_channel(1)", std::sync::mpsc::sync_channel::<u64>(1));

    // rtrb has no blocking: both sides spin (its intended use is real-time audio).
    group.bench_function("rtrb (spinning)", |b| {
        let (mut to_server, mut from_client) = rtrb::RingBuffer::<u64>::new(1);
        let (mut to_client, mut from_server) = rtrb::RingBuffer::<u64>::new(1);
        let server = thread::spawn(move || {
            loop {
                match from_client.pop() {
                    Ok(u64::MAX) => return,
                    Ok(n) => {
                        while to_client.push(n).is_err() {
                            std::hint::spin_loop();
                        }
                    }
                    Err(_) => std::hint::spin_loop(),
                }
            }
        });
        b.iter(|| {
            while to_server.push(7).is_err() {
                std::hint::spin_loop();
            }
            loop {
                if let Ok(n) = from_server.pop() {
                    break black_box(n);
                }
                std::hint::spin_loop();
            }
        });
        while to_server.push(u64::MAX).is_err() {
            std::hint::spin_loop();
        }
        server.join().expect("server");
    });
    group.finish();
}

fn one_way(c: &mut Criterion) {
    let mut group = c.benchmark_group("one_way");
    group.throughput(Throughput::Elements(1));

    // The contract channel: eight items per acknowledgement (the protocol bounds the queue).
    group.bench_function("contract (window 8 + ack)", |b| {
        let (client, server) = pipe::channel();
        let server = thread::spawn(move || {
            let mut server = server;
            loop {
                macro_rules! take {
                    ($endpoint:expr, $state:ident) => {
                        match $endpoint.recv() {
                            Ok(pipe::server::$state::Item(n, next)) => {
                                black_box(n);
                                next
                            }
                            Err(Closed) => return,
                        }
                    };
                }
                let s = take!(server, W0);
                let s = take!(s, W1);
                let s = take!(s, W2);
                let s = take!(s, W3);
                let s = take!(s, W4);
                let s = take!(s, W5);
                let s = take!(s, W6);
                let s = take!(s, W7);
                server = match s.send_ack() {
                    Ok(next) => next,
                    Err(_) => return,
                };
            }
        });
        let mut client = Some(client);
        b.iter_custom(|iters| {
            let rounds = iters.div_ceil(8);
            let elapsed = timed(rounds, &mut client, |c, i| {
                let sent = c
                    .send_item(i)
                    .and_then(|c| c.send_item(i))
                    .and_then(|c| c.send_item(i))
                    .and_then(|c| c.send_item(i))
                    .and_then(|c| c.send_item(i))
                    .and_then(|c| c.send_item(i))
                    .and_then(|c| c.send_item(i))
                    .and_then(|c| c.send_item(i));
                match sent.map(|w| w.recv()) {
                    Ok(Ok(pipe::client::W8::Ack(c))) => c,
                    _ => panic!("server vanished"),
                }
            });
            // Scale to the requested number of messages.
            elapsed.mul_f64(iters as f64 / (rounds * 8) as f64)
        });
        drop(client);
        server.join().expect("server");
    });

    // The raw ring under the same window-of-eight pattern and wire types: the typestate's overhead on streaming.
    group.bench_function("raw ring (window 8 + ack, pipe wire types)", |b| {
        let (client, mut server) = channels::contract_pair::<pipe::Pipe>();
        let server = thread::spawn(move || {
            loop {
                for _ in 0..8 {
                    match server.recv() {
                        Ok(pipe::ToServer::Item(pipe::msg::Item(n))) => {
                            black_box(n);
                        }
                        Err(Closed) => return,
                    }
                }
                if server.send(pipe::ToClient::Ack(pipe::msg::Ack)).is_err() {
                    return;
                }
            }
        });
        let mut client = Some(client);
        b.iter_custom(|iters| {
            let rounds = iters.div_ceil(8);
            let elapsed = timed(rounds, &mut client, |mut c, i| {
                for _ in 0..8 {
                    if c.send(pipe::ToServer::Item(pipe::msg::Item(i))).is_err() {
                        panic!("server vanished");
                    }
                }
                if c.recv().is_err() {
                    panic!("server vanished");
                }
                c
            });
            elapsed.mul_f64(iters as f64 / (rounds * 8) as f64)
        });
        drop(client);
        server.join().expect("server");
    });

    // Plain streaming into a bounded queue of 64: the raw ring and the peers.
    group.bench_function("raw ring (64)", |b| {
        b.iter_custom(|iters| {
            let (mut tx, mut rx) = pair::<u64, ()>(ONE_WAY_CAPACITY, 0);
            let receiver = thread::spawn(move || {
                for _ in 0..iters {
                    black_box(rx.recv().expect("sender alive"));
                }
            });
            let start = Instant::now();
            for i in 0..iters {
                if tx.send(i).is_err() {
                    panic!("receiver vanished");
                }
            }
            receiver.join().expect("receiver");
            start.elapsed()
        });
    });

    peer_one_way!(group, "crossbeam-channel bounded(64)", crossbeam_channel::bounded::<u64>(ONE_WAY_CAPACITY));
    peer_one_way!(group, "flume bounded(64)", flume::bounded::<u64>(ONE_WAY_CAPACITY));
    peer_one_way!(group, "std sync_channel(64)", std::sync::mpsc::sync_channel::<u64>(ONE_WAY_CAPACITY));

    group.bench_function("rtrb (64, spinning)", |b| {
        b.iter_custom(|iters| {
            let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(ONE_WAY_CAPACITY);
            let receiver = thread::spawn(move || {
                let mut received = 0;
                while received < iters {
                    match rx.pop() {
                        Ok(n) => {
                            black_box(n);
                            received += 1;
                        }
                        Err(_) => std::hint::spin_loop(),
                    }
                }
            });
            let start = Instant::now();
            for i in 0..iters {
                while tx.push(i).is_err() {
                    std::hint::spin_loop();
                }
            }
            receiver.join().expect("receiver");
            start.elapsed()
        });
    });
    group.finish();
}

criterion_group!(benches, round_trip, one_way);
criterion_main!(benches);
