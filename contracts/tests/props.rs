//! Property tests: random batch sizes and random timing on two threads; the server sees every item exactly once
//! and in order, and no direction ever holds more messages than the capacity the macro computed.

use channels::{Closed, Contract};
use contracts::contract;
use proptest::prelude::*;
use std::thread;

contract! {
    /// Test contract: the client sends one to three items, then `Flush`; the server acknowledges the batch.
    pub contract Batch {
        in message Item(u64);
        in message Flush;
        in message Stop;
        out message Ack(u64);
        initial state S0 { Item -> S1, Stop -> Done }
        state S1 { Item -> S2, Flush -> Acking }
        state S2 { Item -> S3, Flush -> Acking }
        state S3 { Flush -> Acking }
        state Acking { Ack -> S0 }
        terminal state Done;
    }
}

/// Burns a little time so that the two threads interleave differently from case to case.
fn jitter(amount: u8) {
    match amount % 4 {
        0 => {}
        1 => thread::yield_now(),
        _ => {
            for _ in 0..u32::from(amount) * 8 {
                std::hint::spin_loop();
            }
        }
    }
}

fn run(batches: Vec<u8>, client_jitter: Vec<u8>, server_jitter: Vec<u8>) -> Result<(), TestCaseError> {
    let capacity = <batch::Batch as Contract>::TO_SERVER_CAPACITY;
    prop_assert_eq!(capacity, 4, "three items and a flush may be in flight");
    let (client, server) = batch::channel();
    let server_thread = thread::spawn(move || -> Result<Vec<u64>, String> {
        let mut server = server;
        let mut seen = Vec::new();
        let mut step = 0usize;
        let mut tick = |seen_queued: usize| -> Result<(), String> {
            if seen_queued > capacity {
                return Err(format!("{seen_queued} queued, capacity {capacity}"));
            }
            jitter(server_jitter.get(step % server_jitter.len().max(1)).copied().unwrap_or(0));
            step += 1;
            Ok(())
        };
        loop {
            tick(server.queued())?;
            let state = match server.recv() {
                Ok(batch::server::S0::Item(n, s)) => {
                    seen.push(n);
                    s
                }
                Ok(batch::server::S0::Stop(done)) => {
                    done.close();
                    return Ok(seen);
                }
                Err(Closed) => return Err("client vanished".into()),
            };
            tick(state.queued())?;
            let acking = match state.recv() {
                Ok(batch::server::S1::Item(n, s2)) => {
                    seen.push(n);
                    tick(s2.queued())?;
                    match s2.recv() {
                        Ok(batch::server::S2::Item(n, s3)) => {
                            seen.push(n);
                            tick(s3.queued())?;
                            match s3.recv() {
                                Ok(batch::server::S3::Flush(a)) => a,
                                Err(Closed) => return Err("client vanished".into()),
                            }
                        }
                        Ok(batch::server::S2::Flush(a)) => a,
                        Err(Closed) => return Err("client vanished".into()),
                    }
                }
                Ok(batch::server::S1::Flush(a)) => a,
                Err(Closed) => return Err("client vanished".into()),
            };
            server = match acking.send_ack(seen.len() as u64) {
                Ok(s) => s,
                Err(_) => return Err("client vanished".into()),
            };
        }
    });

    let mut client = client;
    let mut next = 0u64;
    for (round, &size) in batches.iter().enumerate() {
        let size = 1 + size % 3;
        let j = |k: usize| client_jitter.get((round + k) % client_jitter.len().max(1)).copied().unwrap_or(0);
        let s1 = client.send_item(next).map_err(|_| TestCaseError::fail("server vanished"))?;
        next += 1;
        prop_assert!(s1.in_flight() <= capacity);
        jitter(j(0));
        let acking = if size == 1 {
            s1.send_flush().map_err(|_| TestCaseError::fail("server vanished"))?
        } else {
            let s2 = s1.send_item(next).map_err(|_| TestCaseError::fail("server vanished"))?;
            next += 1;
            prop_assert!(s2.in_flight() <= capacity);
            jitter(j(1));
            if size == 2 {
                s2.send_flush().map_err(|_| TestCaseError::fail("server vanished"))?
            } else {
                let s3 = s2.send_item(next).map_err(|_| TestCaseError::fail("server vanished"))?;
                next += 1;
                prop_assert!(s3.in_flight() <= capacity);
                jitter(j(2));
                s3.send_flush().map_err(|_| TestCaseError::fail("server vanished"))?
            }
        };
        prop_assert!(acking.in_flight() <= capacity);
        match acking.recv() {
            Ok(batch::client::Acking::Ack(count, c)) => {
                prop_assert_eq!(count, next, "the server acknowledges everything sent so far");
                client = c;
            }
            Err(Closed) => return Err(TestCaseError::fail("server vanished")),
        }
    }
    client.send_stop().map_err(|_| TestCaseError::fail("server vanished"))?.close();
    let seen =
        server_thread.join().map_err(|_| TestCaseError::fail("server panicked"))?.map_err(TestCaseError::fail)?;
    let expected: Vec<u64> = (0..next).collect();
    prop_assert_eq!(seen, expected, "in order, nothing lost, nothing duplicated");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn two_threads_preserve_order_and_respect_capacity(
        batches in prop::collection::vec(any::<u8>(), 1..40),
        client_jitter in prop::collection::vec(any::<u8>(), 1..16),
        server_jitter in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        run(batches, client_jitter, server_jitter)?;
    }
}
