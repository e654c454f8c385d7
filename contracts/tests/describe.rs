//! The static descriptions `contract!` emits: states, messages, capacities and the Graphviz rendering.

use channels::{Contract, Direction};
use contracts::{echo, kv_store, stream};

#[test]
fn echo_is_described_faithfully() {
    let info = &echo::INFO;
    assert_eq!(info.name, "Echo");
    assert_eq!(info.states[info.initial].name, "Ready");
    let names: Vec<&str> = info.states.iter().map(|s| s.name).collect();
    assert_eq!(names, ["Ready", "PingSent", "SaySent", "Done"]);
    assert!(info.state("Done").is_some_and(|s| s.terminal));
    let ping = info.message("Ping").expect("declared");
    assert_eq!((ping.direction, ping.payload), (Direction::ToServer, &["u64"][..]));
    let ready = info.state("Ready").expect("declared");
    let edges: Vec<(&str, &str)> =
        ready.transitions.iter().map(|t| (info.messages[t.message].name, info.states[t.next].name)).collect();
    assert_eq!(edges, [("Ping", "PingSent"), ("Say", "SaySent"), ("Bye", "Done")]);
    assert_eq!(<echo::Echo as Contract>::INFO.states.len(), 4, "the trait exposes the same description");
}

#[test]
fn capacities_follow_the_longest_one_way_run() {
    assert_eq!((echo::INFO.to_server_capacity, echo::INFO.to_client_capacity), (1, 1));
    assert_eq!((kv_store::INFO.to_server_capacity, kv_store::INFO.to_client_capacity), (1, 1));
    // A read is answered by up to two chunks.
    assert_eq!((stream::INFO.to_server_capacity, stream::INFO.to_client_capacity), (1, 2));
    assert_eq!(<stream::Stream as Contract>::TO_CLIENT_CAPACITY, 2);
}

#[test]
fn dot_rendering_lists_states_and_labelled_edges() {
    let dot = echo::INFO.to_dot();
    assert!(dot.starts_with("digraph Echo {"));
    assert!(dot.contains("__start -> \"Ready\";"));
    assert!(dot.contains("\"Done\" [shape=doublecircle];"));
    assert!(dot.contains("\"Ready\" -> \"PingSent\" [label=\"Ping?(u64)\"];"));
    assert!(dot.contains("\"PingSent\" -> \"Ready\" [label=\"Pong!(u64)\"];"));
    assert!(dot.contains("\"Ready\" -> \"Done\" [label=\"Bye?\"];"));
    assert_eq!(dot.matches("->").count(), 1 + 5, "one start arrow and five transitions");
    assert!(dot.trim_end().ends_with('}'));
}

#[test]
fn every_system_contract_is_listed() {
    let names: Vec<&str> = contracts::all().iter().map(|c| c.name).collect();
    assert_eq!(names, ["Echo", "KvStore", "ServiceProvider", "NameService", "NameListener", "Console", "Stream"]);
    for info in contracts::all() {
        assert!(info.to_dot().contains(info.name));
    }
}

#[test]
fn the_documentation_shows_the_rendered_echo_graph() {
    let docs = include_str!("../../docs/contracts.md");
    let from = docs.find("<!-- echo-dot:start -->\n```dot\n").expect("start marker")
        + "<!-- echo-dot:start -->\n```dot\n".len();
    let to = from + docs[from..].find("```\n<!-- echo-dot:end -->").expect("end marker");
    assert_eq!(&docs[from..to], echo::INFO.to_dot(), "docs/contracts.md shows an outdated picture");
}
