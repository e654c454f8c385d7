//! Dropping an endpoint mid-protocol is visible: a drop outside a terminal state while the peer is there is
//! counted for its contract (`channels::tracked`, the host platform's count), and nothing else is — not a drop
//! in a terminal state, not a drop after the peer left, not an endpoint that moved on to its next state or
//! travelled inside a message.
//!
//! Each test declares its own contract, so the per-contract counts of tests running in parallel do not mix.

use channels::host::mid_protocol_drops;
use channels::{Closed, PeerClosed};
use contracts::contract;

/// Declares a contract named `$name`: a question, its answer, then the end.
macro_rules! question_and_answer {
    ($name:ident) => {
        contract! {
            /// A question, its answer, then the end.
            pub contract $name {
                in message Ask(question: u64);
                out message Answer(answer: u64);
                initial state Asking { Ask? -> Answering }
                state Answering { Answer! -> Finished }
                terminal state Finished;
            }
        }
    };
}

question_and_answer!(DropAsk);

#[test]
fn a_drop_in_a_non_terminal_state_with_the_peer_there_is_counted_once_per_endpoint() {
    let (client, server) = drop_ask::channel();
    assert_eq!(mid_protocol_drops("DropAsk"), 0);
    drop(client);
    assert_eq!(mid_protocol_drops("DropAsk"), 1, "the client hung up in Asking");
    // The server's peer is gone now: its drop is the end of a conversation the client ended.
    drop(server);
    assert_eq!(mid_protocol_drops("DropAsk"), 1);
}

question_and_answer!(DropDone);

#[test]
fn moving_on_finishing_and_seeing_closed_are_not_counted() {
    let (client, server) = drop_done::channel();
    let client = client.send_ask(7).expect("server there");
    let Ok(drop_done::server::Asking::Ask { question, endpoint }) = server.recv() else { panic!("ask") };
    let server = endpoint.send_answer(question * 6).expect("client there");
    let Ok(drop_done::client::Answering::Answer { answer, endpoint: client }) = client.recv() else { panic!("answer") };
    assert_eq!(answer, 42);
    client.close();
    drop(server);
    assert_eq!(mid_protocol_drops("DropDone"), 0, "both ends finished");

    // The server leaves first (that one counts); the client's receive sees `Closed`, which does not.
    let (client, server) = drop_done::channel();
    let client = client.send_ask(1).expect("server there");
    drop(server);
    assert_eq!(mid_protocol_drops("DropDone"), 1);
    assert!(matches!(client.recv(), Err(Closed)));
    assert_eq!(mid_protocol_drops("DropDone"), 1);

    // A send to a gone peer gives the message back and drops the endpoint without counting.
    let (client, server) = drop_done::channel();
    drop(server);
    assert!(matches!(client.send_ask(2), Err(PeerClosed(_))));
    assert_eq!(mid_protocol_drops("DropDone"), 2, "only the server's drop");
}
