//! Two-thread round trips of the contract channel against rtrb, as ratios measured side by side: the figure
//! behind "round trip no slower than the fastest peer" in docs/benchmarks.md ("Channels (host)").
//!
//! Why not criterion alone: on a small shared VM a two-thread ping-pong has modes that last a whole process
//! (where the two threads' vCPUs happen to run decides between about 60, 90 and 470 ns for the same code), so
//! one criterion run per contender compares modes more than channels. Here every trial runs every contender
//! once, back to back in a rotating order, and divides each time by rtrb's time in the same trial; the trials
//! are spread over several processes, and the report is the median ratio with its quartiles and how many trials
//! each contender won. A ratio at or below 1 is "no slower than rtrb".
//!
//! Contenders:
//! - `contract (ping-pong)`: a contract whose two messages carry one `u64` each, the payload every peer carries;
//! - `contract (echo)`: the `echo` system contract's `Ping`/`Pong`, whose wire enums also have a variant that
//!   carries an exchange-heap string (so a 32-byte message and an ownership check on every receive);
//! - `raw ring (u64)`: the ring under the contract channel, without typestate;
//! - `rtrb`: spinning on both sides, as in the criterion suite.
//!
//! ```sh
//! cargo run --release -p contracts --example round_trip_ratios -- 12 7
//! ```
//! (12 processes of 7 trials each, 200,000 timed round trips per contender per trial; about a minute.)

use channels::raw::pair;
use contracts::contract;
use contracts::echo::{self, client, server};
use std::hint::black_box;
use std::process::{Command, ExitCode};
use std::thread;
use std::time::Instant;

/// Timed round trips per contender per trial (after as many untimed ones).
const ROUND_TRIPS: u64 = 200_000;

contract! {
    /// A number there and back: the contract channel with the peers' payload.
    pub contract PingPong {
        in message Ping(u64);
        out message Pong(u64);
        initial state Ready { Ping -> Waiting }
        state Waiting { Pong -> Ready }
    }
}

/// One contender: its name, and one trial of it (nanoseconds per round trip).
type Contender = (&'static str, fn() -> f64);

/// The contenders, in report order; rtrb is the reference every ratio divides by.
const CONTENDERS: [Contender; 4] = [
    ("contract (ping-pong)", ping_pong_contract),
    ("contract (echo)", echo_contract),
    ("raw ring (u64)", raw_ring),
    ("rtrb", rtrb_spinning),
];
const RTRB: usize = 3;

/// Runs `round` (one round trip with number `i`) untimed, then timed; nanoseconds per round trip.
fn time(mut round: impl FnMut(u64)) -> f64 {
    (0..ROUND_TRIPS).for_each(&mut round);
    let start = Instant::now();
    (0..ROUND_TRIPS).for_each(&mut round);
    start.elapsed().as_nanos() as f64 / ROUND_TRIPS as f64
}

/// One trial of a contract whose client sends `Ping(u64)` and whose server answers `Pong(u64)`: `$channel`
/// makes the pair, `$ping` is the server's receive variant, `$pong` the client's.
macro_rules! contract_round_trip {
    ($name:ident, $channel:path, $ping:path, $pong:path) => {
        fn $name() -> f64 {
            let (client, server) = $channel();
            let server = thread::spawn(move || {
                let mut server = server;
                while let Ok($ping(n, ready)) = server.recv() {
                    match ready.send_pong(n) {
                        Ok(next) => server = next,
                        Err(_) => return,
                    }
                }
            });
            let mut client = Some(client);
            let ns = time(|i| {
                let ready = client.take().expect("client endpoint");
                match ready.send_ping(i).map(|waiting| waiting.recv()) {
                    Ok(Ok($pong(n, ready))) => {
                        black_box(n);
                        client = Some(ready);
                    }
                    _ => panic!("server vanished"),
                }
            });
            drop(client);
            server.join().expect("server");
            ns
        }
    };
}

contract_round_trip!(
    ping_pong_contract,
    ping_pong::channel,
    ping_pong::server::Ready::Ping,
    ping_pong::client::Waiting::Pong
);
contract_round_trip!(echo_contract, echo::channel, server::Ready::Ping, client::PingSent::Pong);

fn raw_ring() -> f64 {
    let (mut client, mut server) = pair::<u64, u64>(1, 1);
    let server = thread::spawn(move || {
        while let Ok(n) = server.recv() {
            if server.send(n).is_err() {
                return;
            }
        }
    });
    let ns = time(|i| {
        assert!(client.send(i).is_ok(), "server vanished");
        black_box(client.recv().expect("server vanished"));
    });
    drop(client);
    server.join().expect("server");
    ns
}

fn rtrb_spinning() -> f64 {
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
    let ns = time(|i| {
        while to_server.push(i).is_err() {
            std::hint::spin_loop();
        }
        loop {
            match from_server.pop() {
                Ok(n) => {
                    black_box(n);
                    break;
                }
                Err(_) => std::hint::spin_loop(),
            }
        }
    });
    while to_server.push(u64::MAX).is_err() {
        std::hint::spin_loop();
    }
    server.join().expect("server");
    ns
}

/// One process's trials: prints one line per trial, every contender's nanoseconds in `CONTENDERS` order.
fn child(trials: usize) {
    for trial in 0..trials {
        let mut times = [0.0; CONTENDERS.len()];
        for k in 0..CONTENDERS.len() {
            let index = (k + trial) % CONTENDERS.len();
            times[index] = (CONTENDERS[index].1)();
        }
        println!("{}", times.map(|t| t.to_string()).join(" "));
    }
}

/// The value at fraction `q` of the sorted `values`.
fn quantile(values: &[f64], q: f64) -> f64 {
    values[((values.len() - 1) as f64 * q).round() as usize]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(7));
        return ExitCode::SUCCESS;
    }
    let processes: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(12);
    let trials: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(7);
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("error: cannot find this program's own path to start its trial processes");
        return ExitCode::FAILURE;
    };
    let mut rows: Vec<[f64; CONTENDERS.len()]> = Vec::new();
    for _ in 0..processes {
        let output = match Command::new(&exe).arg("--child").arg(trials.to_string()).output() {
            Ok(output) if output.status.success() => output,
            Ok(output) => {
                eprintln!("error: a trial process failed: {}", String::from_utf8_lossy(&output.stderr));
                return ExitCode::FAILURE;
            }
            Err(error) => {
                eprintln!("error: cannot start a trial process: {error}");
                return ExitCode::FAILURE;
            }
        };
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let times: Vec<f64> = line.split_whitespace().filter_map(|t| t.parse().ok()).collect();
            if let Ok(row) = times.try_into() {
                rows.push(row);
            }
        }
    }
    if rows.is_empty() {
        eprintln!("error: no trials");
        return ExitCode::FAILURE;
    }
    println!("{} trials in {processes} processes, {ROUND_TRIPS} round trips each", rows.len());
    println!("{:22} {:>10} {:>16} {:>24} {:>10}", "", "median ns", "ratio to rtrb", "(quartiles)", "wins");
    for (index, (name, _)) in CONTENDERS.iter().enumerate() {
        let mut ns: Vec<f64> = rows.iter().map(|row| row[index]).collect();
        let mut ratios: Vec<f64> = rows.iter().map(|row| row[index] / row[RTRB]).collect();
        ns.sort_by(f64::total_cmp);
        ratios.sort_by(f64::total_cmp);
        let wins = ratios.iter().filter(|&&r| r <= 1.0).count();
        println!(
            "{name:22} {:>10.1} {:>16.3} {:>24} {:>10}",
            quantile(&ns, 0.5),
            quantile(&ratios, 0.5),
            format!("({:.3} .. {:.3})", quantile(&ratios, 0.25), quantile(&ratios, 0.75)),
            if index == RTRB { String::from("-") } else { format!("{wins}/{}", rows.len()) },
        );
    }
    ExitCode::SUCCESS
}
