//! The kv service's channel loop on the host, both ways: `kv::serve` (and `kv::serve_async`, polled) runs on a std thread against a real `kv_store` channel
//! (the channel crate's host hooks: thread blocking, owner-tracking exchange heap), and the client side drives it
//! through put/get/delete/list, every `KvError`, `Quit`, and clients that vanish mid-protocol.
//!
//! Not here: the `Store` logic on its own (unit tests in src/lib.rs) or the service under the kernel (QEMU tests).
//!
//! Invariant checked: the server answers every request with what the contract allows, and returns (never hangs)
//! when the client quits or drops its endpoint in any state.

use channels::{Closed, ExString, ExVec};
use contracts::KvError;
use contracts::kv_store::{self, client, state};
use kv::{Limits, MAX_ENTRIES, MAX_KEY_LEN, MAX_VALUE_LEN, Store};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

type Client = kv_store::Client<state::Ready>;

/// How a test's server runs: `kv::serve` (a thread) or `kv::serve_async` (a continuation, polled on a thread).
type Serve = fn(kv_store::Server<state::Ready>) -> u64;

/// The continuation polled to its end on the calling thread: pending polls yield the thread (off a task runner,
/// a future receive asks to be polled again).
fn serve_async(server: kv_store::Server<state::Ready>) -> u64 {
    let mut future = std::pin::pin!(kv::serve_async(server));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(served) = future.as_mut().poll(&mut cx) {
            return served;
        }
        thread::yield_now();
    }
}

/// Runs `serve` on its own thread.
fn spawn_server(serve: Serve) -> (Client, JoinHandle<u64>) {
    let (client, server) = kv_store::channel();
    (client, thread::spawn(move || serve(server)))
}

/// Each check runs against both servers: the thread loop and the continuation keep the same contract.
macro_rules! both_ways {
    ($($check:ident),* $(,)?) => {
        mod threaded {
            $(#[test] fn $check() { super::$check(kv::serve) })*
        }
        mod continuation {
            $(#[test] fn $check() { super::$check(super::serve_async) })*
        }
    };
}

both_ways!(
    put_get_delete_list_and_quit,
    every_error_comes_back_typed,
    a_full_store_answers_store_full,
    client_dropped_while_ready_ends_the_server,
    client_dropped_before_any_request_ends_the_server,
    client_dropped_while_owed_an_answer_ends_the_server,
    a_second_conversation_does_not_see_the_first_ones_store,
);

/// Joins the server, failing the test (instead of hanging it) if the server has not returned within a few seconds.
fn join_within(handle: JoinHandle<u64>) -> u64 {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        // The receiver may have given up already; nothing to report then.
        let _ = tx.send(handle.join());
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(served)) => served,
        Ok(Err(_)) => panic!("server thread panicked"),
        Err(_) => panic!("server did not return: it hangs on a dead client"),
    }
}

fn put(c: Client, key: &str, value: &[u8]) -> (Client, Result<(), KvError>) {
    match c.send_put(ExString::from(key), ExVec::from_slice(value)).expect("server alive").recv() {
        Ok(client::Putting::Stored(c)) => (c, Ok(())),
        Ok(client::Putting::Failed(e, c)) => (c, Err(e)),
        Err(Closed) => panic!("server vanished during put"),
    }
}

fn get(c: Client, key: &str) -> (Client, Result<Vec<u8>, KvError>) {
    match c.send_get(ExString::from(key)).expect("server alive").recv() {
        Ok(client::Getting::Value(v, c)) => (c, Ok(v.to_vec())),
        Ok(client::Getting::Failed(e, c)) => (c, Err(e)),
        Err(Closed) => panic!("server vanished during get"),
    }
}

fn delete(c: Client, key: &str) -> (Client, Result<(), KvError>) {
    match c.send_delete(ExString::from(key)).expect("server alive").recv() {
        Ok(client::Deleting::Deleted(c)) => (c, Ok(())),
        Ok(client::Deleting::Failed(e, c)) => (c, Err(e)),
        Err(Closed) => panic!("server vanished during delete"),
    }
}

fn list(c: Client) -> (Client, Vec<String>) {
    match c.send_list().expect("server alive").recv() {
        Ok(client::Listing::Keys(keys, c)) => (c, keys.iter().map(|k| k.as_str().to_owned()).collect()),
        Err(Closed) => panic!("server vanished during list"),
    }
}

fn quit(c: Client) {
    c.send_quit().expect("server alive").close();
}

#[test]
fn the_manifest_exports_the_contracts_name() {
    // `sip!` takes the export as a string literal: keep it equal to the name the contract declares.
    assert_eq!(kv_store::INFO.name, "KvStore");
}

fn put_get_delete_list_and_quit(serve: Serve) {
    let (c, server) = spawn_server(serve);
    let (c, r) = put(c, "b", b"2");
    assert_eq!(r, Ok(()));
    let (c, r) = put(c, "a", b"1");
    assert_eq!(r, Ok(()));
    let (c, r) = put(c, "c", b"");
    assert_eq!(r, Ok(()));
    let (c, r) = get(c, "a");
    assert_eq!(r, Ok(b"1".to_vec()));
    let (c, r) = put(c, "a", b"one");
    assert_eq!(r, Ok(()), "replacing a value");
    let (c, r) = get(c, "a");
    assert_eq!(r, Ok(b"one".to_vec()));
    let (c, r) = get(c, "c");
    assert_eq!(r, Ok(Vec::new()), "an empty value is a value");
    let (c, keys) = list(c);
    assert_eq!(keys, ["a", "b", "c"], "sorted");
    let (c, r) = delete(c, "b");
    assert_eq!(r, Ok(()));
    let (c, keys) = list(c);
    assert_eq!(keys, ["a", "c"]);
    quit(c);
    assert_eq!(join_within(server), 10, "every request but Quit is counted");
}

fn every_error_comes_back_typed(serve: Serve) {
    let (c, server) = spawn_server(serve);
    let long_key = "k".repeat(MAX_KEY_LEN + 1);
    let (c, r) = get(c, "absent");
    assert_eq!(r, Err(KvError::NotFound));
    let (c, r) = delete(c, "absent");
    assert_eq!(r, Err(KvError::NotFound));
    let (c, r) = put(c, &long_key, b"x");
    assert_eq!(r, Err(KvError::KeyTooLong));
    let (c, r) = get(c, &long_key);
    assert_eq!(r, Err(KvError::KeyTooLong));
    let (c, r) = delete(c, &long_key);
    assert_eq!(r, Err(KvError::KeyTooLong));
    let (c, r) = put(c, "big", &vec![0; MAX_VALUE_LEN + 1]);
    assert_eq!(r, Err(KvError::ValueTooLarge));
    let (c, r) = put(c, "max", &vec![9; MAX_VALUE_LEN]);
    assert_eq!(r, Ok(()), "the limit itself is allowed");
    let (c, r) = get(c, "max");
    assert_eq!(r, Ok(vec![9; MAX_VALUE_LEN]));
    let (c, keys) = list(c);
    assert_eq!(keys, ["max"], "failed puts stored nothing");
    quit(c);
    assert_eq!(join_within(server), 9);
}

fn a_full_store_answers_store_full(serve: Serve) {
    let (mut c, server) = spawn_server(serve);
    for i in 0..MAX_ENTRIES {
        let (next, r) = put(c, &format!("key{i:03}"), &[i as u8]);
        assert_eq!(r, Ok(()), "key {i}");
        c = next;
    }
    let (c, r) = put(c, "one-more", b"x");
    assert_eq!(r, Err(KvError::StoreFull));
    let (c, r) = put(c, "key000", b"replaced");
    assert_eq!(r, Ok(()), "replacing has room in a full store");
    let (c, r) = delete(c, "key001");
    assert_eq!(r, Ok(()));
    let (c, r) = put(c, "one-more", b"x");
    assert_eq!(r, Ok(()), "a delete makes room");
    let (c, keys) = list(c);
    assert_eq!(keys.len(), MAX_ENTRIES);
    assert!(keys.is_sorted());
    quit(c);
    join_within(server);
}

#[test]
fn serve_store_keeps_the_store_for_the_caller() {
    let (c, server) = kv_store::channel();
    let handle = thread::spawn(move || {
        let mut store = Store::with_limits(Limits { max_key_len: 3, max_value_len: 3, max_entries: 1 });
        let served = kv::serve_store(server, &mut store);
        (served, store.keys().into_iter().map(str::to_owned).collect::<Vec<_>>())
    });
    let (c, r) = put(c, "abcd", b"x");
    assert_eq!(r, Err(KvError::KeyTooLong));
    let (c, r) = put(c, "a", b"abcd");
    assert_eq!(r, Err(KvError::ValueTooLarge));
    let (c, r) = put(c, "a", b"abc");
    assert_eq!(r, Ok(()));
    let (c, r) = put(c, "b", b"x");
    assert_eq!(r, Err(KvError::StoreFull));
    quit(c);
    let (served, keys) = handle.join().expect("server thread");
    assert_eq!((served, keys), (4, vec!["a".to_owned()]));
}

fn client_dropped_while_ready_ends_the_server(serve: Serve) {
    let (c, server) = spawn_server(serve);
    let (c, _) = put(c, "a", b"1");
    drop(c);
    assert_eq!(join_within(server), 1);
}

fn client_dropped_before_any_request_ends_the_server(serve: Serve) {
    let (c, server) = spawn_server(serve);
    drop(c);
    assert_eq!(join_within(server), 0);
}

fn client_dropped_while_owed_an_answer_ends_the_server(serve: Serve) {
    // The client sends each kind of request and vanishes before the answer: the server's send fails (the reply
    // comes back to it), and it must return instead of waiting for a next request that never comes.
    type Send = fn(Client) -> Box<dyn std::any::Any>;
    let requests: [(&str, Send); 4] = [
        ("get", |c| Box::new(c.send_get(ExString::from("a")).expect("alive"))),
        ("put", |c| Box::new(c.send_put(ExString::from("a"), ExVec::from_slice(b"1")).expect("alive"))),
        ("delete", |c| Box::new(c.send_delete(ExString::from("a")).expect("alive"))),
        ("list", |c| Box::new(c.send_list().expect("alive"))),
    ];
    for (what, send) in requests {
        let (c, server) = spawn_server(serve);
        let (c, _) = put(c, "a", b"1");
        drop(send(c));
        // The put before is counted; the request in flight may or may not be, depending on whether the server
        // answered before the drop (the answer then sits unread in the dead channel).
        let served = join_within(server);
        assert!((1..=2).contains(&served), "{what}: served {served}");
    }
}

fn a_second_conversation_does_not_see_the_first_ones_store(serve: Serve) {
    // Each `serve` starts from an empty store: nothing leaks between spawns.
    let (c, server) = spawn_server(serve);
    let (c, _) = put(c, "secret", b"1");
    quit(c);
    join_within(server);
    let (c, server) = spawn_server(serve);
    let (c, keys) = list(c);
    assert!(keys.is_empty());
    quit(c);
    join_within(server);
}
