//! Which messages count as plain data: a send or receive of plain data skips the owner walk and its
//! uninterruptible section, so a value must be plain exactly when it holds no exchange-heap block and no
//! endpoint. Checks the leaves, the compound types, `#[derive(Exchangeable)]`, and a contract's wire enums (by
//! type and by variant), then that tracked variants still change owners when they travel next to plain ones.

use channels::host::{EXCHANGE, set_current_owner};
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

/// The host platform (the kernel's rules): what the tests below inspect.
fn setup() {
    let _ = channels::host::install_default();
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
    let (client_owner, server_owner) = (Owner::sip(31), Owner::sip(32));
    set_current_owner(client_owner);
    let (client, server) = echo::channel();
    // The server end goes to its owner as the kernel hands a SIP its first endpoint.
    // SAFETY: the test harness is the host's trusted base.
    let trusted = unsafe { channels::trusted::Trusted::new() };
    channels::trusted::give(&trusted, &server, client_owner, server_owner);
    let server = thread::spawn(move || {
        set_current_owner(server_owner);
        let mut server = server;
        let mut held = Vec::new();
        loop {
            match server.recv() {
                Ok(server::Ready::Ping(n, s)) => server = s.send_pong(n).expect("client alive"),
                Ok(server::Ready::Say(text, s)) => {
                    held.push((text.as_bytes().first().copied(), EXCHANGE.ledger().held_by(server_owner).0));
                    server = s.send_echoed(text).expect("client alive");
                }
                Ok(server::Ready::Bye(done)) => {
                    done.close();
                    return held;
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
        assert_eq!(text, if round == 1 { "b" } else { "a" });
        assert_eq!(EXCHANGE.ledger().held_by(client_owner).0, 1, "the echoed text came back to the client");
        client = c;
    }
    client.send_bye().expect("alive").close();
    let held = server.join().expect("server");
    assert_eq!(held, [(Some(b'a'), 1), (Some(b'b'), 1), (Some(b'a'), 1)], "each text was the server's in turn");
    assert_eq!(EXCHANGE.ledger().held_by(server_owner).0, 0);
}
