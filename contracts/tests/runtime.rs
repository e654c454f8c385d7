//! Runtime behaviour of contract channels across threads: ping-pong, drop mid-protocol gives `Closed`, a send to
//! a closed peer returns the message, FIFO order, endpoints travelling inside messages, `try_recv`, `select`
//! readiness and fairness, and nothing hanging on a dead peer.

use channels::{
    Closed, ExAny, ExString, PeerClosed, Select2, SelectWithVec, TryRecv, select_vec, select_with_vec, select2,
};
use contracts::echo::{self, client, server, state};
use contracts::{contract, kv_store, name_service, service_provider};
use std::future::Future;
use std::thread;
use std::time::Duration;

contract! {
    /// Test contract: the client sends three items before the server acknowledges (capacity 3 to the server).
    pub contract Burst {
        in message Item(u64);
        in message Stop;
        out message Ack(u64);
        initial state S0 { Item -> S1, Stop -> Done }
        state S1 { Item -> S2 }
        state S2 { Item -> S3 }
        state S3 { Ack -> S0 }
        terminal state Done;
    }
}

/// The echo server loop used by several tests: answers until `Bye` or the client disappears.
fn serve_echo(mut server: echo::Server<state::Ready>) -> u64 {
    let mut served = 0;
    loop {
        match server.recv() {
            Ok(server::Ready::Ping(n, s)) => match s.send_pong(n) {
                Ok(s) => server = s,
                Err(_) => return served,
            },
            Ok(server::Ready::Say(text, s)) => match s.send_echoed(text) {
                Ok(s) => server = s,
                Err(_) => return served,
            },
            Ok(server::Ready::Bye(done)) => {
                done.close();
                return served;
            }
            Err(Closed) => return served,
        }
        served += 1;
    }
}

#[test]
fn ping_pong_across_threads() {
    let (mut client, server) = echo::channel();
    let handle = thread::spawn(move || serve_echo(server));
    for i in 0..1000u64 {
        let waiting = client.send_ping(i * 3).expect("server alive");
        match waiting.recv() {
            Ok(client::PingSent::Pong(n, c)) => {
                assert_eq!(n, i * 3);
                client = c;
            }
            Err(Closed) => panic!("server closed early"),
        }
    }
    let waiting = client.send_say(ExString::from("hello")).expect("server alive");
    let Ok(client::SaySent::Echoed(text, client)) = waiting.recv() else { panic!("no echo") };
    assert_eq!(text, "hello");
    client.send_bye().expect("server alive").close();
    assert_eq!(handle.join().expect("server thread"), 1001);
}

#[test]
fn dropping_client_mid_protocol_gives_server_closed() {
    let (client, server) = echo::channel();
    let waiting = client.send_ping(7).expect("server alive");
    drop(waiting); // the client vanishes while the server owes it a Pong
    let Ok(server::Ready::Ping(7, owes)) = server.recv() else { panic!("queued ping must still arrive") };
    // The reply goes nowhere: the message comes back in the error.
    let error = owes.send_pong(99).expect_err("client is gone");
    let PeerClosed(echo::msg::Pong(n)) = error;
    assert_eq!(n, 99);
}

#[test]
fn receive_after_peer_drop_is_closed_not_a_hang() {
    let (client, server) = echo::channel();
    let waiting = client.send_ping(1).expect("server alive");
    // The server takes the ping and dies without answering, a little later, from another thread.
    let handle = thread::spawn(move || {
        let Ok(server::Ready::Ping(_, owes)) = server.recv() else { panic!("ping expected") };
        thread::sleep(Duration::from_millis(20));
        drop(owes);
    });
    assert!(matches!(waiting.recv(), Err(Closed)), "a blocked receive must wake up with Closed");
    handle.join().expect("server thread");
}

#[test]
fn send_to_closed_peer_returns_the_message() {
    let (client, server) = echo::channel();
    drop(server);
    assert!(client.is_peer_closed());
    let error = client.send_say(ExString::from("lost?")).expect_err("server is gone");
    assert_eq!(error.into_inner().0, "lost?");
}

#[test]
fn messages_sent_before_a_drop_are_delivered_first() {
    let (client, server) = burst::channel();
    let client = client.send_item(1).and_then(|c| c.send_item(2)).and_then(|c| c.send_item(3)).expect("alive");
    drop(client);
    let mut got = Vec::new();
    let Ok(burst::server::S0::Item(a, s)) = server.recv() else { panic!("first item") };
    got.push(a);
    let Ok(burst::server::S1::Item(b, s)) = s.recv() else { panic!("second item") };
    got.push(b);
    let Ok(burst::server::S2::Item(c, s)) = s.recv() else { panic!("third item") };
    got.push(c);
    assert_eq!(got, [1, 2, 3]);
    assert!(s.send_ack(3).is_err(), "the client is gone");
}

#[test]
fn fifo_order_across_threads() {
    assert_eq!(<burst::Burst as channels::Contract>::TO_SERVER_CAPACITY, 3);
    assert_eq!(<burst::Burst as channels::Contract>::TO_CLIENT_CAPACITY, 1);
    let (mut client, server) = burst::channel();
    let handle = thread::spawn(move || {
        let mut server = server;
        let mut expected = 0u64;
        loop {
            let s1 = match server.recv() {
                Ok(burst::server::S0::Item(n, s)) => {
                    assert_eq!(n, expected);
                    s
                }
                Ok(burst::server::S0::Stop(done)) => {
                    done.close();
                    return expected;
                }
                Err(Closed) => panic!("client vanished"),
            };
            let Ok(burst::server::S1::Item(n, s2)) = s1.recv() else { panic!("item 2") };
            assert_eq!(n, expected + 1);
            let Ok(burst::server::S2::Item(n, s3)) = s2.recv() else { panic!("item 3") };
            assert_eq!(n, expected + 2);
            expected += 3;
            server = s3.send_ack(expected).expect("client alive");
        }
    });
    for round in 0..300u64 {
        let base = round * 3;
        let waiting = client
            .send_item(base)
            .and_then(|c| c.send_item(base + 1))
            .and_then(|c| c.send_item(base + 2))
            .expect("server alive");
        let Ok(burst::client::S3::Ack(acked, c)) = waiting.recv() else { panic!("ack") };
        assert_eq!(acked, base + 3);
        client = c;
    }
    client.send_stop().expect("server alive").close();
    assert_eq!(handle.join().expect("server thread"), 900);
}

#[test]
fn try_recv_gives_the_endpoint_back_when_empty() {
    let (client, server) = echo::channel();
    let server = match server.try_recv() {
        TryRecv::Empty(server) => server,
        _ => panic!("nothing was sent yet"),
    };
    let waiting = client.send_ping(5).expect("alive");
    let TryRecv::Message(server::Ready::Ping(5, owes)) = server.try_recv() else { panic!("ping is queued") };
    owes.send_pong(6).expect("alive");
    let TryRecv::Message(client::PingSent::Pong(6, client)) = waiting.try_recv() else { panic!("pong is queued") };
    drop(client);
}

#[test]
fn try_recv_reports_closed() {
    let (client, server) = echo::channel();
    drop(client);
    assert!(matches!(server.try_recv(), TryRecv::Closed));
}

contract! {
    /// Test contract: hands an echo server endpoint to the other side.
    pub contract Handoff {
        in message Take(echo::Server<echo::state::Ready>);
        out message Taken;
        initial state Ready { Take -> Taking }
        state Taking { Taken -> Ready }
    }
}

#[test]
fn endpoints_travel_inside_messages_across_threads() {
    let (handoff_client, handoff_server) = handoff::channel();
    // A worker thread receives echo server endpoints over the handoff channel and serves each.
    let worker = thread::spawn(move || {
        let mut handoff = handoff_server;
        let mut served = 0;
        while let Ok(handoff::server::Ready::Take(echo_server, owes)) = handoff.recv() {
            served += serve_echo(echo_server);
            match owes.send_taken() {
                Ok(next) => handoff = next,
                Err(_) => break,
            }
        }
        served
    });
    let mut handoff = handoff_client;
    for round in 0..3u64 {
        let (echo_client, echo_server) = echo::channel();
        let owed = handoff.send_take(echo_server).expect("worker alive");
        let Ok(client::PingSent::Pong(n, echo_client)) = echo_client.send_ping(round).expect("served").recv() else {
            panic!("the moved endpoint must answer")
        };
        assert_eq!(n, round);
        echo_client.send_bye().expect("served").close();
        let Ok(handoff::client::Taking::Taken(next)) = owed.recv() else { panic!("taken") };
        handoff = next;
    }
    drop(handoff);
    assert_eq!(worker.join().expect("worker"), 3);
}

#[test]
fn select2_returns_the_ready_endpoint() {
    let (c1, s1) = echo::channel();
    let (c2, s2) = kv_store::channel();
    // Only the key-value client sends.
    let _c2 = c2.send_list().expect("alive");
    match select2(s1, s2) {
        Select2::Second(s1, Ok(kv_store::server::Ready::List(owes))) => {
            drop((s1, owes, c1));
        }
        _ => panic!("the kv endpoint is the ready one"),
    }
}

#[test]
fn select2_blocks_until_one_is_ready_and_reports_close() {
    let (c1, s1) = echo::channel();
    let (c2, s2) = echo::channel();
    let handle = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        drop(c2);
        c1
    });
    match select2(s1, s2) {
        Select2::Second(_, Err(Closed)) => {}
        _ => panic!("the second endpoint's peer closed"),
    }
    drop(handle.join().expect("thread"));
}

#[test]
fn select_does_not_starve_an_always_ready_endpoint() {
    // Two clients that always have a ping queued: the server must alternate between them.
    let (ca, sa) = echo::channel();
    let (cb, sb) = echo::channel();
    let (mut ca, mut cb) = (ca.send_ping(0).expect("alive"), cb.send_ping(0).expect("alive"));
    let (mut sa, mut sb) = (sa, sb);
    let mut picks = Vec::new();
    for _ in 0..20 {
        match select2(sa, sb) {
            Select2::First(Ok(server::Ready::Ping(n, owes)), rest) => {
                picks.push('a');
                sa = owes.send_pong(n).expect("alive");
                sb = rest;
                let Ok(client::PingSent::Pong(_, c)) = ca.recv() else { panic!("pong") };
                ca = c.send_ping(n + 1).expect("alive");
            }
            Select2::Second(rest, Ok(server::Ready::Ping(n, owes))) => {
                picks.push('b');
                sb = owes.send_pong(n).expect("alive");
                sa = rest;
                let Ok(client::PingSent::Pong(_, c)) = cb.recv() else { panic!("pong") };
                cb = c.send_ping(n + 1).expect("alive");
            }
            _ => panic!("only pings are sent"),
        }
    }
    let a = picks.iter().filter(|&&p| p == 'a').count();
    assert_eq!(a, 10, "both always ready, so each gets half: {picks:?}");
}

#[test]
fn select_vec_serves_many_clients_fairly() {
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for i in 0..4u64 {
        let (c, s) = echo::channel();
        clients.push(c.send_ping(i).expect("alive"));
        servers.push(s);
    }
    let mut seen = Vec::new();
    while let Some((_, result)) = select_vec(&mut servers) {
        let Ok(server::Ready::Ping(n, owes)) = result else { panic!("ping") };
        seen.push(n);
        drop(owes.send_pong(n).expect("alive"));
    }
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2, 3]);
    for (i, c) in clients.into_iter().enumerate() {
        let Ok(client::PingSent::Pong(n, _)) = c.recv() else { panic!("pong") };
        assert_eq!(n, i as u64);
    }
}

#[test]
fn select_with_vec_serves_a_listener_and_its_clients() {
    use kv_store::server as kv_server;
    // The listener is a kv channel (any contract will do); the members are echo sessions.
    let (listener_client, listener) = kv_store::channel();
    let mut sessions = Vec::new();
    let mut clients = Vec::new();
    for i in 0..3u64 {
        let (c, s) = echo::channel();
        clients.push(c.send_ping(i).expect("alive"));
        sessions.push(s);
    }
    let listener_client = listener_client.send_quit().expect("alive");
    let mut listener = Some(listener);
    let (mut pings, mut quits) = (Vec::new(), 0);
    while pings.len() < 3 || quits == 0 {
        let Some(first) = listener.take() else {
            // The listener fired (and was consumed): only members remain.
            let (_, result) = select_vec(&mut sessions).expect("members left");
            let Ok(server::Ready::Ping(n, owes)) = result else { panic!("ping") };
            pings.push(n);
            drop(owes.send_pong(n).expect("alive"));
            continue;
        };
        match select_with_vec(first, &mut sessions) {
            SelectWithVec::First(Ok(kv_server::Ready::Quit(done))) => {
                done.close();
                quits += 1;
            }
            SelectWithVec::First(_) => panic!("the listener only sends Quit"),
            SelectWithVec::Member(back, index, result) => {
                listener = Some(back);
                let Ok(server::Ready::Ping(n, owes)) = result else { panic!("ping") };
                assert!(index < 3 - pings.len(), "index {index} out of the remaining members");
                pings.push(n);
                drop(owes.send_pong(n).expect("alive"));
            }
        }
    }
    pings.sort_unstable();
    assert_eq!((pings, quits), (vec![0, 1, 2], 1));
    listener_client.close();
    // With nothing ready, a closed listener is reported rather than waited on.
    let (gone, listener) = kv_store::channel();
    drop(gone);
    let mut none: Vec<echo::Server<state::Ready>> = Vec::new();
    assert!(matches!(select_with_vec(listener, &mut none), SelectWithVec::First(Err(Closed))));
}

#[test]
fn name_service_hands_out_connected_endpoints() {
    use name_service::{client as ns_client, server as ns_server};
    use service_provider::{client as sp_client, server as sp_server};

    // The echo service: a provider that takes each connection as an Echo server end and serves it on a thread;
    // an end of any other type is refused (and dropped).
    let (provider_client, provider_server) = service_provider::channel();
    let service = thread::spawn(move || {
        let mut provider = provider_server;
        let mut sessions = Vec::new();
        while let Ok(sp_server::Ready::Connect(end, owes)) = provider.recv() {
            let answered = match end.downcast::<echo::Server<state::Ready>>() {
                Ok(echo_server) => {
                    sessions.push(thread::spawn(move || serve_echo(echo_server)));
                    owes.send_accepted().ok()
                }
                Err(other) => {
                    // Dropped before the answer: the client checks that its end is closed once it is refused.
                    drop(other);
                    owes.send_refused().ok()
                }
            };
            match answered {
                Some(next) => provider = next,
                None => break,
            }
        }
        sessions.into_iter().map(|s| s.join().expect("session")).sum::<u64>()
    });

    // The name service: one client, a table of one provider; it forwards ends without knowing their type.
    let (ns_client_end, ns_server_end) = name_service::channel();
    let name_service = thread::spawn(move || {
        let mut ns = ns_server_end;
        let mut bound: Option<(ExString, service_provider::Client<service_provider::state::Ready>)> = None;
        loop {
            match ns.recv() {
                Ok(ns_server::Ready::Bind(name, _contract, provider, owes)) => {
                    ns = if bound.is_some() {
                        owes.send_bind_failed(contracts::NameError::AlreadyBound, provider).expect("client")
                    } else {
                        bound = Some((name, provider));
                        owes.send_bound().expect("client")
                    };
                }
                Ok(ns_server::Ready::Lookup(name, end, owes)) => {
                    let answer = match bound.take() {
                        Some((bound_name, provider)) if bound_name == name => {
                            let waiting = provider.send_connect(end).expect("provider alive");
                            let (answer, provider) = match waiting.recv() {
                                Ok(sp_client::Connecting::Accepted(provider)) => (Ok(()), provider),
                                Ok(sp_client::Connecting::Refused(provider)) => {
                                    (Err(contracts::NameError::Refused), provider)
                                }
                                Err(Closed) => panic!("provider alive"),
                            };
                            bound = Some((bound_name, provider));
                            answer
                        }
                        other => {
                            bound = other;
                            Err(contracts::NameError::NotFound)
                        }
                    };
                    ns = match answer {
                        Ok(()) => owes.send_found().expect("client"),
                        Err(e) => owes.send_lookup_failed(e).expect("client"),
                    };
                }
                Ok(ns_server::Ready::Unbind(_, owes)) => {
                    ns = owes.send_unbind_failed(contracts::NameError::NotOwner).expect("client");
                }
                Ok(ns_server::Ready::List(owes)) => {
                    ns = owes.send_names(ExString::from("echo")).expect("client");
                }
                Ok(ns_server::Ready::Quit(done)) => {
                    done.close();
                    return;
                }
                Err(Closed) => return,
            }
        }
    });

    let ns = ns_client_end;
    let bind = |name: &str, provider| (ExString::from(name), ExString::from("Echo"), provider);
    let (name, contract, provider) = bind("echo", provider_client);
    let Ok(ns_client::Binding::Bound(ns)) = ns.send_bind(name, contract, provider).expect("ns").recv() else {
        panic!("bind")
    };
    let (spare_client, _spare_server) = service_provider::channel();
    let (name, contract, provider) = bind("echo", spare_client);
    let Ok(ns_client::Binding::BindFailed(contracts::NameError::AlreadyBound, returned, ns)) =
        ns.send_bind(name, contract, provider).expect("ns").recv()
    else {
        panic!("a second bind fails and returns the endpoint")
    };
    drop(returned);
    let (unused, unused_server) = echo::channel();
    let Ok(ns_client::LookingUp::LookupFailed(contracts::NameError::NotFound, ns)) =
        ns.send_lookup(ExString::from("nope"), ExAny::new(unused_server).expect("heap")).expect("ns").recv()
    else {
        panic!("unknown names fail")
    };
    // The name service dropped the end it was given: the client's end sees Closed, nothing hangs.
    assert!(matches!(unused.send_ping(1).map(|owed| owed.recv()), Err(_) | Ok(Err(Closed))));
    // An end of the wrong contract is refused by the provider.
    let (kv_client, kv_server) = kv_store::channel();
    let Ok(ns_client::LookingUp::LookupFailed(contracts::NameError::Refused, ns)) =
        ns.send_lookup(ExString::from("echo"), ExAny::new(kv_server).expect("heap")).expect("ns").recv()
    else {
        panic!("a wrong-contract end is refused")
    };
    assert!(kv_client.is_peer_closed());
    let mut ns = ns;
    for i in 0..2u64 {
        let (echo_client, echo_server) = echo::channel();
        let Ok(ns_client::LookingUp::Found(next)) =
            ns.send_lookup(ExString::from("echo"), ExAny::new(echo_server).expect("heap")).expect("ns").recv()
        else {
            panic!("lookup")
        };
        ns = next;
        let Ok(client::PingSent::Pong(n, echo_client)) = echo_client.send_ping(40 + i).expect("echo").recv() else {
            panic!("the looked-up endpoint is connected")
        };
        assert_eq!(n, 40 + i);
        echo_client.send_bye().expect("echo").close();
    }
    ns.send_quit().expect("ns").close();
    name_service.join().expect("name service");
    // The name service dropped the provider endpoint on quit: the provider's receive sees Closed and ends.
    assert_eq!(service.join().expect("service"), 2);
}

#[test]
fn ex_any_gives_its_value_back_only_as_its_own_type() {
    let any = ExAny::new(ExString::from("hello")).expect("heap");
    assert!(any.is::<ExString>());
    let any = any.downcast::<u64>().expect_err("not a u64");
    assert_eq!(any.downcast::<ExString>().expect("an ExString").as_str(), "hello");
    // Dropping an erased endpoint closes it.
    let (client, server) = echo::channel();
    drop(ExAny::new(server).expect("heap"));
    assert!(client.is_peer_closed());
}

#[test]
fn stream_reads_chunks_until_the_end() {
    use contracts::stream::{self, client as sc, server as ss};
    let data: Vec<u8> = (0..=255).collect();
    let (client, server) = stream::channel();
    let served = data.clone();
    let handle = thread::spawn(move || {
        let Ok(ss::Start::Open(name, opening)) = server.recv() else { panic!("open") };
        assert_eq!(name, "bytes");
        let mut streaming = opening.send_opened(served.len() as u64).expect("client");
        let mut chunks = served.chunks(100);
        loop {
            let reading = match streaming.recv() {
                Ok(ss::Streaming::Read(max, r)) => {
                    assert_eq!(max, 100);
                    r
                }
                Ok(ss::Streaming::Close(done)) => return done.close(),
                Err(Closed) => panic!("client vanished"),
            };
            // Up to two chunks per read: the second may be in flight while the client consumes the first.
            let Some(first) = chunks.next() else { return reading.send_end().expect("client").close() };
            let second_owed = reading.send_chunk(channels::ExVec::from_slice(first)).expect("client");
            streaming = match chunks.next() {
                Some(second) => second_owed.send_chunk(channels::ExVec::from_slice(second)).expect("client"),
                None => return second_owed.send_end().expect("client").close(),
            };
        }
    });
    let Ok(sc::Opening::Opened(256, mut streaming)) = client.send_open(ExString::from("bytes")).expect("server").recv()
    else {
        panic!("opened")
    };
    let mut received = Vec::new();
    loop {
        let reading = streaming.send_read(100).expect("server");
        let second = match reading.recv() {
            Ok(sc::Reading::Chunk(chunk, second)) => {
                received.extend_from_slice(&chunk);
                second
            }
            Ok(sc::Reading::End(done)) => break done.close(),
            Err(Closed) => panic!("server vanished"),
        };
        streaming = match second.recv() {
            Ok(sc::SecondChunk::Chunk(chunk, next)) => {
                received.extend_from_slice(&chunk);
                next
            }
            Ok(sc::SecondChunk::End(done)) => break done.close(),
            Err(Closed) => panic!("server vanished"),
        };
    }
    assert_eq!(received, data);
    handle.join().expect("server thread");
}

#[test]
fn kv_store_answers_with_values_and_errors() {
    use contracts::KvError;
    use contracts::kv_store::{client as kc, server as ks};
    let (client, server) = kv_store::channel();
    let handle = thread::spawn(move || {
        let mut table: Vec<(ExString, channels::ExVec<u8>)> = Vec::new();
        let mut server = server;
        loop {
            server = match server.recv() {
                Ok(ks::Ready::Put(key, value, owes)) if key.len() > 16 => {
                    drop(value);
                    owes.send_failed(KvError::KeyTooLong).expect("client")
                }
                Ok(ks::Ready::Put(key, value, owes)) => {
                    table.retain(|(k, _)| *k != key);
                    table.push((key, value));
                    owes.send_stored().expect("client")
                }
                Ok(ks::Ready::Get(key, owes)) => match table.iter().find(|(k, _)| *k == key) {
                    Some((_, v)) => owes.send_value(v.clone()).expect("client"),
                    None => owes.send_failed(KvError::NotFound).expect("client"),
                },
                Ok(ks::Ready::Delete(key, owes)) => {
                    let before = table.len();
                    table.retain(|(k, _)| *k != key);
                    if table.len() < before {
                        owes.send_deleted().expect("client")
                    } else {
                        owes.send_failed(KvError::NotFound).expect("client")
                    }
                }
                Ok(ks::Ready::List(owes)) => {
                    let mut keys: Vec<ExString> = table.iter().map(|(k, _)| k.clone()).collect();
                    keys.sort();
                    owes.send_keys(keys.into_iter().collect()).expect("client")
                }
                Ok(ks::Ready::Quit(done)) => return done.close(),
                Err(Closed) => return,
            };
        }
    });
    let put = |c: kv_store::Client<kv_store::state::Ready>, k: &str, v: &[u8]| match c
        .send_put(ExString::from(k), channels::ExVec::from_slice(v))
        .expect("server")
        .recv()
    {
        Ok(kc::Putting::Stored(c)) => (c, Ok(())),
        Ok(kc::Putting::Failed(e, c)) => (c, Err(e)),
        Err(Closed) => panic!("server vanished"),
    };
    let (c, r) = put(client, "b", b"2");
    assert_eq!(r, Ok(()));
    let (c, r) = put(c, "a", b"1");
    assert_eq!(r, Ok(()));
    let (c, r) = put(c, "a-key-that-is-far-too-long", b"x");
    assert_eq!(r, Err(KvError::KeyTooLong));
    let Ok(kc::Getting::Value(v, c)) = c.send_get(ExString::from("a")).expect("server").recv() else { panic!("get") };
    assert_eq!(v.as_slice(), b"1");
    let Ok(kc::Deleting::Deleted(c)) = c.send_delete(ExString::from("a")).expect("server").recv() else {
        panic!("delete")
    };
    let Ok(kc::Getting::Failed(KvError::NotFound, c)) = c.send_get(ExString::from("a")).expect("server").recv() else {
        panic!("gone")
    };
    let Ok(kc::Listing::Keys(keys, c)) = c.send_list().expect("server").recv() else { panic!("list") };
    assert_eq!(keys.iter().map(|k| k.as_str()).collect::<Vec<_>>(), ["b"]);
    c.send_quit().expect("server").close();
    handle.join().expect("server thread");
}

#[test]
fn select3_mixes_contracts_and_hands_back_the_others() {
    use channels::{Select3, select3};
    let (c1, s1) = echo::channel();
    let (c2, s2) = kv_store::channel();
    let (c3, s3) = contracts::console::channel();
    let _c3 = c3.send_write(ExString::from("hi")).expect("alive");
    let (s1, s2) = match select3(s1, s2, s3) {
        Select3::Third(s1, s2, Ok(contracts::console::server::Ready::Write(text, owes))) => {
            assert_eq!(text, "hi");
            drop(owes);
            (s1, s2)
        }
        _ => panic!("only the console client sent"),
    };
    let (_c4, s4) = echo::channel();
    drop(c1);
    match select3(s4, s2, s1) {
        Select3::Third(_, _, Err(Closed)) => {}
        _ => panic!("the first echo client is gone, the others are silent"),
    }
    drop(c2);
}

/// A send and the receive it leads to as one operation (`send_<message>_and_recv`: L4's call on the client,
/// reply-and-wait on the server): the same conversation as the two steps; a peer gone before the send gives the
/// message back (`NotSent`), one gone after it is `Closed` (the message was sent).
#[test]
fn send_and_recv_is_a_call_and_a_reply_and_wait() {
    let (client, server) = echo::channel();
    let server_thread = thread::spawn(move || {
        let Ok(mut request) = server.recv() else { return 0 };
        let mut answered = 0;
        loop {
            request = match request {
                server::Ready::Ping(n, owes) => match owes.send_pong_and_recv(n + 1) {
                    Ok(next) => next,
                    Err(failed) => return answered + u32::from(failed.was_sent()),
                },
                server::Ready::Say(text, owes) => match owes.send_echoed_and_recv(text) {
                    Ok(next) => next,
                    Err(failed) => return answered + u32::from(failed.was_sent()),
                },
                server::Ready::Bye(done) => {
                    done.close();
                    return answered;
                }
            };
            answered += 1;
        }
    });
    let mut client = client;
    for i in 0..100 {
        let Ok(client::PingSent::Pong(n, next)) = client.send_ping_and_recv(i) else { panic!("pong {i}") };
        assert_eq!(n, i + 1);
        client = next;
    }
    let Ok(client::SaySent::Echoed(text, client)) = client.send_say_and_recv(ExString::from("hi")) else {
        panic!("echoed")
    };
    assert_eq!(text.as_str(), "hi");
    client.send_bye().expect("server there").close();
    assert_eq!(server_thread.join().expect("server"), 101);

    // The peer gone before the send: the message comes back.
    let (client, server) = echo::channel();
    drop(server);
    match client.send_say_and_recv(ExString::from("back")) {
        Err(channels::CallFailed::NotSent(message)) => assert_eq!(message.0.as_str(), "back"),
        Err(channels::CallFailed::Closed) => panic!("expected NotSent, got Closed"),
        Ok(_) => panic!("expected NotSent, got an answer"),
    }

    // The peer gone after taking the request: sent, and no answer.
    let (client, server) = echo::channel();
    let server_thread = thread::spawn(move || drop(server.recv()));
    match client.send_ping_and_recv(5) {
        Err(failed) => assert!(failed.was_sent(), "{failed:?}"),
        Ok(_) => panic!("an answer from a server that dropped its end"),
    }
    server_thread.join().expect("server");
}

/// `channels::send_then_recv` is public (the typed endpoints' `send_<message>_and_recv` call it), so a hostile
/// service can call it with a raw endpoint of its own and a "next" endpoint that is not that raw endpoint's. It
/// gains nothing: the send goes out on its raw endpoint (which, having no protocol, could send it anyway), and the
/// receive is the typed receive of the endpoint it handed back, so an honest peer on that endpoint only ever sees
/// its contract kept.
#[test]
fn send_then_recv_with_a_foreign_next_endpoint_keeps_every_protocol() {
    let (own_client, own_server) = channels::contract_pair::<echo::Echo>();
    let (client, server) = echo::channel();
    let honest = thread::spawn(move || serve_echo(server));
    let waiting = client.send_ping(41).expect("server there");
    let outcome =
        channels::send_then_recv(own_client, echo::msg::Ping(7), 0, echo::ToServer::Ping, move |_own_raw_dropped| {
            waiting
        });
    // The typed receive of the foreign endpoint: its own server's answer to its own Ping.
    let Ok(client::PingSent::Pong(41, client)) = outcome else { panic!("not the honest server's Pong") };
    // The stray Ping went to the attacker's own channel.
    let mut own_server = own_server;
    assert!(matches!(own_server.try_recv(), Ok(echo::ToServer::Ping(echo::msg::Ping(7)))));
    client.send_bye().expect("server there").close();
    assert_eq!(honest.join().expect("honest server"), 1);
}

/// Polls `future` to its end on this thread, as an executor with a plain (token-less) waker does: the receive
/// then asks to be polled again while nothing is there.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::yield_now();
    }
}

#[test]
fn a_typed_receive_as_a_future_serves_the_same_contract() {
    let (client, server) = echo::channel();
    // The server as a future, the client a thread: one channel, both kinds of receive.
    let peer = thread::spawn(move || {
        let Ok(owed) = client.send_ping(41) else { panic!("server gone") };
        let Ok(client::PingSent::Pong(n, ready)) = owed.recv() else { panic!("no pong") };
        assert_eq!(n, 41);
        ready.send_bye().expect("server alive");
    });
    let served = block_on(async move {
        let mut server = server;
        let mut served = 0;
        loop {
            match server.recv_async().await {
                Ok(server::Ready::Ping(n, owes)) => match owes.send_pong(n) {
                    Ok(next) => server = next,
                    Err(_) => return served,
                },
                Ok(server::Ready::Bye(done)) => {
                    done.close();
                    return served + 1;
                }
                Ok(server::Ready::Say(..)) | Err(Closed) => return served,
            }
            served += 1;
        }
    });
    peer.join().expect("client");
    assert_eq!(served, 2, "a ping answered, then the bye");
}

/// Polls `future` on this thread, parking between polls (only a wake through this thread's token unparks it, as
/// a task's runner would be), with a task waker for the thread's host token; its output and how often it was
/// polled.
fn run_as_task<F: std::future::Future>(future: F) -> (F::Output, u32) {
    // SAFETY: a test is trusted code: it makes a waker for its own thread's token only.
    let trusted = unsafe { channels::trusted::Trusted::new() };
    let waker = channels::tasks::task_waker(&trusted, channels::host::current_token());
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let mut polls = 0;
    loop {
        polls += 1;
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return (output, polls);
        }
        thread::park();
    }
}

/// Runs `work` on a thread of its own and fails if it has not finished within 10 s (a lost wake-up hangs it).
fn within(what: &str, work: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    let worker = thread::spawn(move || {
        work();
        let _ = done.send(());
    });
    match finished.recv_timeout(Duration::from_secs(10)) {
        Ok(()) => worker.join().expect("worker"),
        Err(_) => panic!("{what}: not finished after 10 s; a task missed its wake-up"),
    }
}

#[test]
fn select_with_vec_async_sleeps_until_a_member_fires_and_then_the_listener() {
    within("a future select woken by a member's ping, then the listener's quit", select_then_quit);
}

fn select_then_quit() {
    use channels::select_with_vec_async;
    use kv_store::server as kv_server;
    let (listener_client, listener) = kv_store::channel();
    let (client0, session0) = echo::channel();
    let (client1, session1) = echo::channel();
    let (done, finished) = std::sync::mpsc::channel();
    let server = thread::spawn(move || {
        let mut sessions = vec![session0, session1];
        // Nothing is there: the select registers its token in all three rings and the thread parks.
        let (fired, polls) = run_as_task(select_with_vec_async(listener, &mut sessions));
        let SelectWithVec::Member(listener, 1, Ok(server::Ready::Ping(n, owes))) = fired else {
            panic!("the second member's ping should fire")
        };
        drop(owes.send_pong(n + 1).expect("alive"));
        let (fired, _) = run_as_task(select_with_vec_async(listener, &mut sessions));
        let quit = matches!(fired, SelectWithVec::First(Ok(kv_server::Ready::Quit(_))));
        let _ = done.send((n, polls, quit, sessions.len()));
    });
    thread::sleep(Duration::from_millis(50));
    let answered = client1.send_ping(7).expect("alive").recv();
    let Ok(client::PingSent::Pong(8, _)) = answered else { panic!("the session was not answered") };
    thread::sleep(Duration::from_millis(50));
    let _listener_client = listener_client.send_quit().expect("alive");
    let (n, polls, quit, left) = finished.recv().expect("the server thread panicked");
    server.join().expect("server");
    assert_eq!(n, 7);
    assert!(polls >= 2, "the select should have waited for the ping, polled {polls} times");
    assert!(quit, "the listener's Quit should fire second");
    assert_eq!(left, 1, "the member that fired leaves the vector, the other stays");
    drop(client0);
}

#[test]
fn a_select_with_vec_async_dropped_while_it_waits_leaves_the_rings_usable() {
    use channels::select_with_vec_async;
    let (listener_client, listener) = kv_store::channel();
    let (client, session) = echo::channel();
    let mut sessions = vec![session];
    {
        // SAFETY: a test is trusted code: it makes a waker for its own thread's token only.
        let trusted = unsafe { channels::trusted::Trusted::new() };
        let waker = channels::tasks::task_waker(&trusted, channels::host::current_token());
        let mut select = select_with_vec_async(listener, &mut sessions);
        let pending = std::pin::Pin::new(&mut select).poll(&mut std::task::Context::from_waker(&waker));
        assert!(pending.is_pending(), "nothing was sent yet");
        // Dropped while registered: its token comes out of both rings, and the listener with it.
    }
    drop(listener_client);
    let _sent = client.send_ping(3).expect("alive");
    let (_, fired) = select_vec(&mut sessions).expect("one member");
    assert!(matches!(fired, Ok(server::Ready::Ping(3, _))), "a blocking select after the drop sees the ping");
}
