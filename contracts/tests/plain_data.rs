//! Which messages count as plain data: a send or receive of plain data skips the owner walk and its
//! uninterruptible section, so a value must be plain exactly when it holds no exchange-heap block and no
//! endpoint. Checks the leaves, the compound types, `#[derive(Exchangeable)]`, and a contract's wire enums (by
//! type and by variant), then that tracked variants still change owners when they travel next to plain ones.

use channels::host::{TrackingHeap, install_tracking, set_current_owner};
use channels::raw::RawEndpoint;
use channels::{ExBox, ExString, ExVec, Exchangeable, Owner};
use contracts::echo::{self, server};
use contracts::{Exchangeable, contract};
use std::thread;

#[derive(Exchangeable)]
struct PlainPoint {
    _x: i32,
    _y: (u8, [bool; 3]),
}

#[derive(Exchangeable)]
#[allow(dead_code, reason = "the variants only exist to be classified")]
enum Mixed {
    Plain(u64),
    Boxed(ExBox<u64>),
}

#[derive(Exchangeable)]
struct Empty;

contract! {
    /// Only plain payloads.
    pub contract Counter {
        in message Add(u64);
        out message Total(u64, bool);
        initial state Idle { Add -> Adding }
        state Adding { Total -> Idle }
    }
}

fn tracked<T: Exchangeable>() -> bool {
    T::__TRACKED
}

static HEAP: TrackingHeap = TrackingHeap::new();

/// Installs the owner-tracking heap. Every test calls it first: tests run in parallel, and the first exchange
/// allocation of the process would otherwise fix the default platform, which keeps no owner records.
fn setup() {
    let _ = install_tracking(&HEAP);
    let installed = channels::platform::current().heap as *const dyn channels::ExchangeHeap as *const u8;
    assert!(std::ptr::eq(installed, (&HEAP as *const TrackingHeap).cast()), "the tracking heap is installed");
}

#[test]
fn plain_leaves_and_their_combinations_are_untracked() {
    setup();
    assert!(!tracked::<u64>() && !tracked::<bool>() && !tracked::<char>() && !tracked::<()>());
    assert!(!tracked::<[u32; 4]>() && !tracked::<Option<u8>>() && !tracked::<Result<u8, i64>>());
    assert!(!tracked::<(u8, bool, [char; 2])>());
    assert!(!tracked::<PlainPoint>() && !tracked::<Empty>());
}

#[test]
fn anything_that_can_hold_a_block_or_an_endpoint_is_tracked() {
    setup();
    assert!(tracked::<ExBox<u8>>() && tracked::<ExVec<u8>>() && tracked::<ExString>());
    assert!(tracked::<RawEndpoint<u8, u8>>() && tracked::<echo::Client<echo::state::Ready>>());
    assert!(tracked::<Option<ExBox<u8>>>() && tracked::<Result<u8, ExString>>());
    assert!(tracked::<(u8, ExString)>() && tracked::<[ExVec<u8>; 2]>());
    assert!(tracked::<Mixed>(), "one tracked variant makes the type tracked");
    assert!(tracked::<channels::ExAny>());
}

#[test]
fn wire_enums_are_classified_by_type_and_by_variant() {
    setup();
    assert!(!tracked::<counter::ToServer>() && !tracked::<counter::ToClient>());
    assert!(tracked::<echo::ToServer>(), "Say carries an ExString");
    let ping = echo::ToServer::Ping(echo::msg::Ping(7));
    let say = echo::ToServer::Say(echo::msg::Say(ExString::from("hi")));
    assert!(!ping.__is_tracked(), "a plain variant of a tracked enum skips the walk");
    assert!(say.__is_tracked());
    assert!(Mixed::Plain(1).__is_tracked(), "a derived enum answers by type (the safe side)");
}

#[test]
fn tracked_variants_change_owner_between_plain_ones() {
    setup();
    set_current_owner(Owner(31));
    let (client, server) = echo::channel();
    let server = thread::spawn(move || {
        set_current_owner(Owner(32));
        let mut server = server;
        let mut owners = Vec::new();
        loop {
            match server.recv() {
                Ok(server::Ready::Ping(n, s)) => server = s.send_pong(n).expect("client alive"),
                Ok(server::Ready::Say(text, s)) => {
                    owners.push(
                        text.as_bytes().first().copied().zip(text.as_bytes().block().and_then(|b| HEAP.owner_of(b))),
                    );
                    server = s.send_echoed(text).expect("client alive");
                }
                Ok(server::Ready::Bye(done)) => {
                    done.close();
                    return owners;
                }
                Err(_) => panic!("client vanished"),
            }
        }
    });
    let mut client = client;
    for round in 0..3u8 {
        let said = ExString::from(if round == 1 { "b" } else { "a" });
        let Ok(echo::client::PingSent::Pong(n, c)) = client.send_ping(u64::from(round)).expect("alive").recv() else {
            panic!("no pong")
        };
        assert_eq!(n, u64::from(round));
        let Ok(echo::client::SaySent::Echoed(text, c)) = c.send_say(said).expect("alive").recv() else {
            panic!("no echo")
        };
        let block = text.as_bytes().block().expect("a non-empty string holds a block");
        assert_eq!(HEAP.owner_of(block), Some(Owner(31)), "the echoed text came back to the client");
        client = c;
    }
    client.send_bye().expect("alive").close();
    let owners = server.join().expect("server");
    assert_eq!(owners, [Some((b'a', Owner(32))), Some((b'b', Owner(32))), Some((b'a', Owner(32)))]);
}
