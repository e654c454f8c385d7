//! Messages crossing between ring 0 and ring 3 on the host platform: derived types and contracts' wire enums
//! survive their byte form, hostile bytes for every contract give a `WireError` and never a panic or a leak,
//! depth is bounded however deep the data, a ring-3 SIP's endpoints (in a `HandleTable`) speak to typed ring-0
//! endpoints through bytes, endpoints travel inside messages and `ExAny`s, and the registries `contract!` fills
//! name what may cross.
//!
//! Every test acts for its own owner, so the ledger's per-owner charges show what it leaked.

use channels::host::{EXCHANGE, set_current_owner};
use channels::proxy::{HandleTable, RecvFailure, SendFailure};
use channels::wire::{
    CHANNELS, Endpoints, MAX_DEPTH, NoEndpoints, VALUES, WireError, channel_crossing, decode, encode,
};
use channels::{Closed, ContractPair, ExAny, ExBox, ExString, ExVec, Exchangeable, Owner};
use contracts::echo::{self, client as echo_client, state as echo_state};
use contracts::{
    Exchangeable, KvError, NameError, console, kv_store, name_listener, name_service, service_provider, stream,
};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use std::any::type_name;
use std::fmt::Debug;
use std::thread;
use std::time::Instant;

// --- helpers ----------------------------------------------------------------------------------------------------

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Acts for a fresh `owner` and checks at the end that it pays for nothing and holds no channel side.
struct Account(Owner);

impl Account {
    fn new(id: u64) -> Self {
        let owner = Owner::sip(id);
        set_current_owner(owner);
        Self(owner)
    }

    fn assert_clean(&self, what: &str) {
        assert_eq!(EXCHANGE.ledger().charged(self.0), (0, 0), "{what}: blocks still charged to {:?}", self.0);
        assert_eq!(EXCHANGE.ledger().sides_held_by(self.0), 0, "{what}: channel sides still held");
    }
}

/// Runs a property with the owner already set (values are made by the strategy, so the owner must be set
/// before generation, not in the body), then checks nothing leaked.
fn check<S: Strategy>(id: u64, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let account = Account::new(id);
    let mut runner = TestRunner::new(config(cases));
    if let Err(failure) = runner.run(&strategy, test) {
        panic!("{failure}");
    }
    drop(runner);
    account.assert_clean("property");
}

fn enc<T: Exchangeable>(value: T) -> Vec<u8> {
    encode(value, &mut NoEndpoints).expect("encodes")
}

fn dec<T: Exchangeable>(bytes: &[u8]) -> Result<T, WireError> {
    decode(bytes, &mut NoEndpoints)
}

fn round_trip<T: Exchangeable + Clone + PartialEq + Debug>(value: T) -> Result<(), TestCaseError> {
    let copy = value.clone();
    let bytes = enc(value);
    let back: T = dec(&bytes).map_err(|e| TestCaseError::fail(format!("decode of {copy:?}: {e:?}")))?;
    prop_assert_eq!(&back, &copy);
    prop_assert_eq!(enc(back), bytes);
    Ok(())
}

fn handle_of(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().expect("four bytes"))
}

/// Puts an endpoint (a typed one, or anything holding endpoints) into `table`; its last handle.
fn hold_in<T: Exchangeable>(table: &mut HandleTable, value: T) -> u32 {
    handle_of(&encode(value, table).expect("held"))
}

fn recv_encoded(table: &mut HandleTable, handle: u32, room: usize) -> Result<Vec<u8>, RecvFailure> {
    table.with(handle, |end, rest| end.try_recv_encoded(rest, room)).expect("handle held")
}

fn send_encoded(table: &mut HandleTable, handle: u32, bytes: &[u8]) -> Result<(), SendFailure> {
    table.with(handle, |end, rest| end.send_encoded(bytes, rest)).expect("handle held")
}

fn tag(tag: u32) -> Vec<u8> {
    tag.to_le_bytes().to_vec()
}

fn text(text: &str) -> Vec<u8> {
    [&(text.len() as u32).to_le_bytes()[..], text.as_bytes()].concat()
}

/// A table holding `value`'s endpoint, with a free slot under a lower handle: a `put` while that endpoint is in
/// use (`HandleTable::with`) then lands in the free slot, whether or not `with` leaves the endpoint's own slot
/// looking free (see `an_endpoint_received_by_a_ring3_sip_gets_a_new_handle`).
fn table_with_hole<T: Exchangeable>(value: T) -> (HandleTable, u32) {
    let mut table = HandleTable::new(16);
    let (_client, server) = echo::channel();
    let hole = hold_in(&mut table, server);
    let handle = hold_in(&mut table, value);
    assert!(hole < handle);
    table.close(hole).expect("held");
    (table, handle)
}

// --- derived types ----------------------------------------------------------------------------------------------

#[derive(Exchangeable, Clone, PartialEq, Debug)]
enum Shape {
    Empty,
    Circle(u32),
    Rect { w: u16, h: i16 },
    Path(ExVec<(i32, i32)>),
    Label(ExString, Option<ExBox<Shape>>),
}

#[derive(Exchangeable, Clone, PartialEq, Debug)]
struct Record {
    id: u64,
    name: ExString,
    tags: ExVec<ExString>,
    flag: bool,
    pair: (i16, char),
    shape: Option<ExBox<Shape>>,
    data: [u8; 3],
    unit: (),
    result: Result<Unit, KvError>,
}

#[derive(Exchangeable, Clone, Copy, PartialEq, Debug)]
struct Unit;

#[derive(Exchangeable, Clone, PartialEq, Debug)]
struct Wrap<T>(T, u8);

// `#[derive(Exchangeable)] enum Never {}` does not compile (E0004 in the generated `__visit`: `match self {}` on
// `&Never`); see the report.

fn shape() -> impl Strategy<Value = Shape> {
    let leaf = prop_oneof![
        Just(Shape::Empty),
        any::<u32>().prop_map(Shape::Circle),
        (any::<u16>(), any::<i16>()).prop_map(|(w, h)| Shape::Rect { w, h }),
        prop::collection::vec(any::<(i32, i32)>(), 0..8).prop_map(|p| Shape::Path(ExVec::from_slice(&p))),
    ];
    leaf.prop_recursive(6, 24, 2, |inner| {
        (any::<String>(), prop::option::of(inner))
            .prop_map(|(label, inner)| Shape::Label(ExString::from(label.as_str()), inner.map(ExBox::new)))
    })
}

fn record() -> impl Strategy<Value = Record> {
    (
        any::<u64>(),
        any::<String>(),
        prop::collection::vec(any::<String>(), 0..5),
        any::<(bool, i16, char, [u8; 3])>(),
        prop::option::of(shape()),
        prop::option::of(0u8..4),
    )
        .prop_map(|(id, name, tags, (flag, n, c, data), shape, error)| Record {
            id,
            name: ExString::from(name.as_str()),
            tags: tags.iter().map(|t| ExString::from(t.as_str())).collect(),
            flag,
            pair: (n, c),
            shape: shape.map(ExBox::new),
            data,
            unit: (),
            result: match error {
                None => Ok(Unit),
                Some(0) => Err(KvError::NotFound),
                Some(1) => Err(KvError::KeyTooLong),
                Some(2) => Err(KvError::ValueTooLarge),
                Some(_) => Err(KvError::StoreFull),
            },
        })
}

#[test]
fn derived_structs_and_enums_round_trip() {
    check(9101, 300, (record(), shape()), |(record, shape)| {
        round_trip(record.clone())?;
        round_trip(shape.clone())?;
        round_trip(Wrap(record, 7))?;
        round_trip(ExVec::from_iter([shape.clone(), shape]))?;
        round_trip(Wrap(Unit, 1))?;
        Ok(())
    });
}

#[test]
fn derived_types_have_the_documented_format() {
    let account = Account::new(9102);
    assert_eq!(enc(Shape::Empty), [0, 0, 0, 0], "an enum's variant index, four bytes");
    assert_eq!(enc(Shape::Circle(5)), [1, 0, 0, 0, 5, 0, 0, 0]);
    assert_eq!(enc(Shape::Rect { w: 1, h: -1 }), [2, 0, 0, 0, 1, 0, 0xff, 0xff], "fields in declaration order");
    assert_eq!(enc(Unit), [0u8; 0]);
    assert_eq!(enc(Wrap(3u16, 4)), [3, 0, 4]);
    assert_eq!(enc(KvError::StoreFull), [3, 0, 0, 0]);
    assert_eq!(dec::<Shape>(&[5, 0, 0, 0]), Err(WireError::BadValue), "no sixth variant");
    assert_eq!(dec::<Shape>(&[0, 0, 0, 1]), Err(WireError::BadValue), "a tag is all four bytes");
    assert_eq!(dec::<KvError>(&[4, 0, 0, 0]), Err(WireError::BadValue));
    assert_eq!(dec::<Shape>(&[1, 0, 0]), Err(WireError::Truncated));
    assert_eq!(dec::<Shape>(&[0, 0, 0, 0, 0]), Err(WireError::Trailing));
    account.assert_clean("format");
}

// --- contracts' wire enums --------------------------------------------------------------------------------------

#[test]
fn contract_messages_have_the_documented_format() {
    let account = Account::new(9103);
    assert_eq!(enc(echo::ToServer::Ping(echo::msg::Ping(7))), [tag(0), 7u64.to_le_bytes().to_vec()].concat());
    assert_eq!(enc(echo::ToServer::Say(echo::msg::Say(ExString::from("hi")))), [tag(1), text("hi")].concat());
    assert_eq!(enc(echo::ToServer::Bye(echo::msg::Bye)), tag(2));
    assert_eq!(enc(echo::ToClient::Pong(echo::msg::Pong(1))), [tag(0), 1u64.to_le_bytes().to_vec()].concat());
    // Tags count each direction's messages separately, in declaration order.
    assert_eq!(enc(kv_store::ToClient::Failed(kv_store::msg::Failed(KvError::KeyTooLong))), [tag(4), tag(1)].concat());
    assert_eq!(
        enc(kv_store::ToServer::Put(kv_store::msg::Put(ExString::from("k"), ExVec::from_slice(&[9u8])))),
        [tag(1), text("k"), vec![1, 0, 0, 0, 9]].concat()
    );
    assert_eq!(
        enc(name_service::ToClient::LookupFailed(name_service::msg::LookupFailed(NameError::Unavailable))),
        [tag(3), tag(5)].concat()
    );
    assert_eq!(enc(stream::ToServer::Read(stream::msg::Read(64))), [tag(1), tag(64)].concat());
    assert!(dec::<echo::ToServer>(&tag(3)).is_err(), "echo has three messages to the server");
    assert!(dec::<echo::ToClient>(&tag(2)).is_err(), "and two to the client");
    account.assert_clean("contract format");
}

/// A kv-store request or answer, described with plain data (built into a message inside the property).
#[derive(Clone, Debug)]
enum KvSpec {
    Get(String),
    Put(String, Vec<u8>),
    Keys(Vec<String>),
    Value(Vec<u8>),
    Failed(u8),
}

fn kv_spec() -> impl Strategy<Value = KvSpec> {
    prop_oneof![
        any::<String>().prop_map(KvSpec::Get),
        (any::<String>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(k, v)| KvSpec::Put(k, v)),
        prop::collection::vec(any::<String>(), 0..6).prop_map(KvSpec::Keys),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(KvSpec::Value),
        (0u8..4).prop_map(KvSpec::Failed),
    ]
}

#[test]
fn contract_messages_round_trip() {
    check(9104, 300, (kv_spec(), any::<u64>(), any::<String>()), |(spec, n, s)| {
        let ex = |t: &str| ExString::from(t);
        // Wire enums have no `PartialEq`: compare their byte forms, and the decoded fields where it matters.
        let bytes = match &spec {
            KvSpec::Get(k) => enc(kv_store::ToServer::Get(kv_store::msg::Get(ex(k)))),
            KvSpec::Put(k, v) => enc(kv_store::ToServer::Put(kv_store::msg::Put(ex(k), ExVec::from_slice(v)))),
            KvSpec::Keys(keys) => {
                enc(kv_store::ToClient::Keys(kv_store::msg::Keys(keys.iter().map(|k| ex(k)).collect())))
            }
            KvSpec::Value(v) => enc(kv_store::ToClient::Value(kv_store::msg::Value(ExVec::from_slice(v)))),
            KvSpec::Failed(e) => enc(kv_store::ToClient::Failed(kv_store::msg::Failed(match e {
                0 => KvError::NotFound,
                1 => KvError::KeyTooLong,
                2 => KvError::ValueTooLarge,
                _ => KvError::StoreFull,
            }))),
        };
        match &spec {
            KvSpec::Get(_) | KvSpec::Put(..) => {
                let back = dec::<kv_store::ToServer>(&bytes).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                if let (kv_store::ToServer::Put(kv_store::msg::Put(key, value)), KvSpec::Put(k, v)) = (&back, &spec) {
                    prop_assert_eq!(key.as_str(), k.as_str());
                    prop_assert_eq!(value.as_slice(), v.as_slice());
                }
                prop_assert_eq!(enc(back), bytes);
            }
            _ => {
                let back = dec::<kv_store::ToClient>(&bytes).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                if let (kv_store::ToClient::Keys(kv_store::msg::Keys(keys)), KvSpec::Keys(k)) = (&back, &spec) {
                    prop_assert!(keys.iter().map(|k| k.as_str()).eq(k.iter().map(String::as_str)));
                }
                prop_assert_eq!(enc(back), bytes);
            }
        }
        let ping = dec::<echo::ToServer>(&enc(echo::ToServer::Ping(echo::msg::Ping(n))));
        prop_assert!(matches!(ping, Ok(echo::ToServer::Ping(echo::msg::Ping(m))) if m == n));
        let said = dec::<echo::ToClient>(&enc(echo::ToClient::Echoed(echo::msg::Echoed(ExString::from(s.as_str())))));
        prop_assert!(matches!(said, Ok(echo::ToClient::Echoed(echo::msg::Echoed(t))) if t == s.as_str()));
        let line =
            dec::<console::ToClient>(&enc(console::ToClient::Line(console::msg::Line(ExString::from(s.as_str())))));
        prop_assert!(matches!(line, Ok(console::ToClient::Line(console::msg::Line(t))) if t == s.as_str()));
        Ok(())
    });
}

// --- hostile bytes for every contract ---------------------------------------------------------------------------

/// Decodes `bytes` as `T` without endpoints (what decodes must re-encode to the same bytes) and with `table`
/// (which may lose endpoints to a message that decodes, never gain any).
fn hostile<T: Exchangeable>(bytes: &[u8], table: &mut HandleTable) -> Result<(), TestCaseError> {
    if let Ok(value) = dec::<T>(bytes) {
        let again = encode(value, &mut NoEndpoints);
        prop_assert_eq!(again.as_deref(), Ok(bytes), "{}", type_name::<T>());
    }
    let before = table.len();
    let decoded = decode::<T>(bytes, table);
    prop_assert!(table.len() <= before, "decoding never adds to the table");
    drop(decoded);
    Ok(())
}

fn every_contract(bytes: &[u8], table: &mut HandleTable) -> Result<(), TestCaseError> {
    hostile::<echo::ToServer>(bytes, table)?;
    hostile::<echo::ToClient>(bytes, table)?;
    hostile::<kv_store::ToServer>(bytes, table)?;
    hostile::<kv_store::ToClient>(bytes, table)?;
    hostile::<name_service::ToServer>(bytes, table)?;
    hostile::<name_service::ToClient>(bytes, table)?;
    hostile::<service_provider::ToServer>(bytes, table)?;
    hostile::<service_provider::ToClient>(bytes, table)?;
    hostile::<name_listener::ToServer>(bytes, table)?;
    hostile::<name_listener::ToClient>(bytes, table)?;
    hostile::<console::ToServer>(bytes, table)?;
    hostile::<console::ToClient>(bytes, table)?;
    hostile::<stream::ToServer>(bytes, table)?;
    hostile::<stream::ToClient>(bytes, table)?;
    hostile::<Record>(bytes, table)?;
    hostile::<ExAny>(bytes, table)?;
    Ok(())
}

/// Bytes that start with a plausible tag, and whose 4-byte words are often small (lengths, handles, tags).
fn plausible_bytes() -> impl Strategy<Value = Vec<u8>> {
    (0u32..9, prop::collection::vec(prop_oneof![any::<u8>().prop_map(|b| [b, 0, 0, 0]), any::<[u8; 4]>()], 0..12))
        .prop_map(|(tag, words)| [&tag.to_le_bytes()[..], &words.concat()].concat())
}

#[test]
fn hostile_bytes_for_every_contract() {
    let account = Account::new(9110);
    let mut table = HandleTable::new(64);
    // Endpoints of several types under small handles, so forged handles sometimes name real (wrong) entries;
    // with no table left to take them from, `hostile` checks only what it can.
    let (_e, echo_server) = echo::channel();
    let (_n, ns_server) = name_service::channel();
    let (sp_client, _s) = service_provider::channel();
    for held in [hold_in(&mut table, echo_server), hold_in(&mut table, ns_server), hold_in(&mut table, sp_client)] {
        assert!(table.get(held).is_some());
    }
    let table = std::cell::RefCell::new(table);
    let mut runner = TestRunner::new(config(400));
    let strategy = prop_oneof![prop::collection::vec(any::<u8>(), 0..48), plausible_bytes()];
    runner
        .run(&strategy, |bytes| {
            let mut table = table.borrow_mut();
            // Messages that decode take their endpoints: keep some under small handles.
            while table.len() < 3 {
                let (_client, server) = echo::channel();
                hold_in(&mut table, server);
                let (_client, server) = name_service::channel();
                hold_in(&mut table, server);
            }
            every_contract(&bytes, &mut table)
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    drop((table, runner, _e, _n, _s));
    account.assert_clean("hostile bytes");
}

#[test]
fn mutated_contract_messages_never_panic() {
    let strategy = (kv_spec(), any::<prop::sample::Index>(), any::<u8>(), any::<prop::sample::Index>());
    check(9111, 400, strategy, |(spec, at, value, cut)| {
        let mut table = HandleTable::new(4);
        let bytes = match spec {
            KvSpec::Get(k) | KvSpec::Put(k, _) => {
                enc(name_service::ToServer::Unbind(name_service::msg::Unbind(ExString::from(k.as_str()))))
            }
            KvSpec::Keys(keys) => enc(kv_store::ToClient::Keys(kv_store::msg::Keys(
                keys.iter().map(|k| ExString::from(k.as_str())).collect(),
            ))),
            KvSpec::Value(v) => enc(stream::ToClient::Chunk(stream::msg::Chunk(ExVec::from_slice(&v)))),
            KvSpec::Failed(e) => {
                enc(name_service::ToClient::UnbindFailed(name_service::msg::UnbindFailed(if e % 2 == 0 {
                    NameError::NotOwner
                } else {
                    NameError::InvalidName
                })))
            }
        };
        let mut changed = bytes.clone();
        let index = at.index(changed.len());
        changed[index] = value;
        every_contract(&changed, &mut table)?;
        every_contract(&bytes[..cut.index(bytes.len())], &mut table)?;
        Ok(())
    });
}

// --- depth ------------------------------------------------------------------------------------------------------

#[derive(Exchangeable)]
enum List {
    Nil,
    Cons(u64, ExBox<List>),
}

fn list(length: u64) -> List {
    (0..length).fold(List::Nil, |tail, n| List::Cons(n, ExBox::new(tail)))
}

/// The bytes of a list of `length` nodes.
fn list_bytes(length: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(length * 12 + 4);
    for n in 0..length {
        bytes.extend_from_slice(&tag(1));
        bytes.extend_from_slice(&(n as u64).to_le_bytes());
    }
    bytes.extend_from_slice(&tag(0));
    bytes
}

fn list_length(mut list: &List) -> usize {
    let mut n = 0;
    while let List::Cons(_, next) = list {
        n += 1;
        list = next;
    }
    n
}

/// Runs `f` on a thread with a small stack (a recursion over the data would overflow it).
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    let joined = thread::Builder::new().stack_size(512 * 1024).spawn(f).expect("thread").join();
    if let Err(panic) = joined {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn a_list_crosses_up_to_max_depth() {
    let account = Account::new(9120);
    let depth = MAX_DEPTH as usize;
    let bytes = enc(list(depth as u64));
    assert_eq!(bytes.len(), depth * 12 + 4, "a tag and a number per node, then Nil's tag");
    let back: List = dec(&bytes).expect("MAX_DEPTH boxes decode");
    assert_eq!(list_length(&back), depth);
    drop(back);
    assert_eq!(encode(list(depth as u64 + 1), &mut NoEndpoints).err(), Some(WireError::TooDeep));
    assert_eq!(dec::<List>(&list_bytes(depth + 1)).err(), Some(WireError::TooDeep));
    account.assert_clean("max depth");
}

#[test]
fn a_hundred_thousand_deep_list_fails_cleanly_on_a_small_stack() {
    let owner = Owner::sip(9121);
    on_small_stack(move || {
        set_current_owner(owner);
        let started = Instant::now();
        let deep = list(100_000);
        assert_eq!(EXCHANGE.ledger().held_by(owner).0, 100_000);
        assert_eq!(encode(deep, &mut NoEndpoints).err(), Some(WireError::TooDeep));
        assert_eq!(EXCHANGE.ledger().charged(owner), (0, 0), "the list was freed, every node of it");
        // As bytes: as many nodes as fit in MAX_MESSAGE (a longer input is refused as TooLong before any decoding).
        assert_eq!(dec::<List>(&list_bytes(80_000)).err(), Some(WireError::TooDeep));
        // Inside a vector of lists, and inside a contract-shaped message (a tuple around a box).
        let nested = ExVec::from_iter([list(3), list(50_000)]);
        assert_eq!(encode((1u8, ExBox::new(nested)), &mut NoEndpoints).err(), Some(WireError::TooDeep));
        assert_eq!(EXCHANGE.ledger().charged(owner), (0, 0));
        assert!(started.elapsed().as_secs() < 10);
    });
}

#[derive(Exchangeable)]
enum Tree {
    Leaf(u8),
    Node(ExVec<Tree>),
}

#[test]
fn vectors_count_towards_the_depth() {
    let account = Account::new(9122);
    let tree = |depth: usize| (0..depth).fold(Tree::Leaf(1), |inner, _| Tree::Node(ExVec::from_iter([inner])));
    let bytes = enc(tree(MAX_DEPTH as usize));
    assert!(dec::<Tree>(&bytes).is_ok());
    assert_eq!(encode(tree(MAX_DEPTH as usize + 1), &mut NoEndpoints).err(), Some(WireError::TooDeep));
    // 100,000 nested one-element vectors, as bytes: refused at MAX_DEPTH, without recursing over the data.
    let mut bytes = Vec::new();
    for _ in 0..100_000 {
        bytes.extend_from_slice(&tag(1));
        bytes.extend_from_slice(&1u32.to_le_bytes());
    }
    bytes.extend_from_slice(&[0, 0, 0, 0, 1]);
    let account_id = account.0;
    on_small_stack(move || {
        set_current_owner(account_id);
        assert_eq!(dec::<Tree>(&bytes).err(), Some(WireError::TooDeep));
    });
    account.assert_clean("vector depth");
}

/// A tree of vectors of vectors 100,000 deep is dropped, and refused by the encoder (which then drops the rest),
/// in a loop on a small stack: the walk queues a vector's elements instead of visiting them where it stands.
/// (It used to recurse once per level and overflowed even an 8 MiB stack; a kernel that dropped such a message,
/// sent by a ring-0 SIP to a ring-3 one, would have overflowed its 16 KiB stack.)
#[test]
fn a_deep_tree_of_vectors_is_freed_without_recursing_over_the_data() {
    let owner = Owner::sip(9123);
    on_small_stack(move || {
        set_current_owner(owner);
        let tree = |depth: usize| (0..depth).fold(Tree::Leaf(1), |inner, _| Tree::Node(ExVec::from_iter([inner])));
        drop(tree(100_000));
        assert_eq!(EXCHANGE.ledger().charged(owner), (0, 0), "the tree was freed, every vector of it");
        assert_eq!(encode(tree(100_000), &mut NoEndpoints).err(), Some(WireError::TooDeep));
        assert_eq!(EXCHANGE.ledger().charged(owner), (0, 0), "the refused tree was freed, every vector of it");
    });
}

// --- the proxy: a ring-3 SIP on one end of a contract channel ---------------------------------------------------

#[test]
fn a_ring3_echo_server_answers_a_typed_client() {
    let account = Account::new(9130);
    let (client, server) = echo::channel();
    let mut table = HandleTable::new(8);
    let h = hold_in(&mut table, server);
    assert_eq!(table.len(), 1);
    assert_eq!(recv_encoded(&mut table, h, 1 << 16), Err(RecvFailure::Empty));

    let waiting = client.send_ping(7).expect("server alive");
    let bytes = recv_encoded(&mut table, h, 1 << 16).expect("the ping");
    assert!(matches!(decode::<echo::ToServer>(&bytes, &mut NoEndpoints), Ok(echo::ToServer::Ping(echo::msg::Ping(7)))));
    send_encoded(&mut table, h, &enc(echo::ToClient::Pong(echo::msg::Pong(7)))).expect("sent");
    let Ok(echo_client::PingSent::Pong(7, client)) = waiting.recv() else { panic!("the pong") };

    // A message larger than the room waits, the same message, for a larger one.
    let waiting = client.send_say(ExString::from("a line of text")).expect("server alive");
    let needed = 4 + 4 + "a line of text".len();
    assert_eq!(recv_encoded(&mut table, h, 4), Err(RecvFailure::TooSmall(needed)));
    assert_eq!(recv_encoded(&mut table, h, needed - 1), Err(RecvFailure::TooSmall(needed)));
    let bytes = recv_encoded(&mut table, h, needed).expect("fits now");
    let Ok(echo::ToServer::Say(echo::msg::Say(said))) = dec::<echo::ToServer>(&bytes) else { panic!("the say") };
    assert_eq!(said, "a line of text");
    // Bytes that are no message of the channel: refused, nothing sent, and that channel closed for both sides
    // (`SendFailure::Bad`). Each on an echo channel of its own, whose typed client then sees `Closed`.
    for garbage in [&tag(2)[..], &tag(0)[..2], &[tag(1), text("x"), vec![0]].concat(), &[tag(0), vec![0; 9]].concat()] {
        let (other, other_server) = echo::channel();
        let g = hold_in(&mut table, other_server);
        let owed = other.send_ping(1).expect("server alive");
        recv_encoded(&mut table, g, 64).expect("the ping");
        assert!(matches!(send_encoded(&mut table, g, garbage), Err(SendFailure::Bad(_))), "{garbage:?}");
        assert!(matches!(owed.recv(), Err(Closed)), "{garbage:?}");
        table.close(g).expect("held");
    }
    send_encoded(&mut table, h, &enc(echo::ToClient::Echoed(echo::msg::Echoed(said)))).expect("sent");
    let Ok(echo_client::SaySent::Echoed(text, client)) = waiting.recv() else { panic!("the echo") };
    assert_eq!(text, "a line of text");
    drop(text);

    let done = client.send_bye().expect("server alive");
    assert!(matches!(
        dec::<echo::ToServer>(&recv_encoded(&mut table, h, 64).expect("bye")),
        Ok(echo::ToServer::Bye(_))
    ));
    done.close();
    assert_eq!(recv_encoded(&mut table, h, 64), Err(RecvFailure::Closed));
    assert_eq!(send_encoded(&mut table, h, &enc(echo::ToClient::Pong(echo::msg::Pong(1)))), Err(SendFailure::Closed));
    assert!(table.get(h).expect("held").status().peer_closed);
    table.close(h).expect("held");
    assert!(table.is_empty());
    account.assert_clean("ring-3 echo server");
}

#[test]
fn a_ring3_peer_that_breaks_the_protocol_cannot_hurt_the_typed_side() {
    let account = Account::new(9131);
    let (client, server) = echo::channel();
    let mut table = HandleTable::new(8);
    let h = hold_in(&mut table, server);
    // An answer out of turn (an `Echoed` for a `Ping`): the typed client sees `Closed`, nothing else.
    let waiting = client.send_ping(1).expect("server alive");
    recv_encoded(&mut table, h, 64).expect("the ping");
    send_encoded(&mut table, h, &enc(echo::ToClient::Echoed(echo::msg::Echoed(ExString::from("no"))))).expect("sent");
    assert!(matches!(waiting.recv(), Err(Closed)));
    assert_eq!(recv_encoded(&mut table, h, 64), Err(RecvFailure::Closed));

    // More answers than the contract allows in flight: the ring is full, the channel breaks for both sides.
    let (client, server) = echo::channel();
    let h = hold_in(&mut table, server);
    let waiting = client.send_ping(2).expect("server alive");
    let pong = enc(echo::ToClient::Pong(echo::msg::Pong(2)));
    let mut results = Vec::new();
    for _ in 0..4 {
        results.push(send_encoded(&mut table, h, &pong));
    }
    assert_eq!(results[0], Ok(()));
    assert!(results.contains(&Err(SendFailure::Full)), "{results:?}");
    assert_eq!(results.last(), Some(&Err(SendFailure::Closed)));
    let Ok(echo_client::PingSent::Pong(2, client)) = waiting.recv() else { panic!("the first pong arrives") };
    assert!(client.is_peer_closed());
    drop((client, table));
    account.assert_clean("protocol breaker");
}

/// An endpoint received by a ring-3 SIP goes into its table under a handle of its own, and stays open.
#[test]
fn an_endpoint_received_by_a_ring3_sip_gets_a_new_handle() {
    let account = Account::new(9132);
    let (ns, ns_server) = name_service::channel();
    let mut table = HandleTable::new(8);
    let hn = hold_in(&mut table, ns_server);
    let (echo_client, echo_server) = echo::channel();
    let waiting = ns.send_lookup(ExString::from("echo"), ExAny::new(echo_server).expect("heap")).expect("alive");
    let bytes = recv_encoded(&mut table, hn, 4096).expect("the lookup");
    let outcome = (handle_of(&bytes) != hn, table.len(), echo_client.is_peer_closed());
    drop((waiting, echo_client, table));
    account.assert_clean("received endpoint");
    assert_eq!(outcome, (true, 2, false), "(a new handle, two endpoints held, the received one open)");
}

#[test]
fn endpoints_cross_inside_exany_both_ways() {
    let account = Account::new(9133);
    let (ns, ns_server) = name_service::channel();
    let (mut table, hn) = table_with_hole(ns_server);
    let held = table.len();

    // Ring 0 to ring 3: a lookup carrying the server end of a fresh echo channel.
    let (echo_client, echo_server) = echo::channel();
    let waiting = ns.send_lookup(ExString::from("echo"), ExAny::new(echo_server).expect("heap")).expect("alive");
    let bytes = recv_encoded(&mut table, hn, 4096).expect("the lookup");
    assert_eq!(table.len(), held + 1, "the echo server end is held for the SIP");
    let server_name = type_name::<echo::Server<echo_state::Ready>>();
    let expected_prefix = [tag(1), text("echo"), text(server_name)].concat();
    assert_eq!(&bytes[..expected_prefix.len()], expected_prefix, "Lookup, the name, the ExAny's type name");
    assert_eq!(bytes.len(), expected_prefix.len() + 4, "then the handle");
    let handle = handle_of(&bytes);
    let held_type = table.get(handle).expect("the handle names it").endpoint_type();
    assert_eq!(held_type, std::any::TypeId::of::<channels::raw::RawEndpoint<echo::ToClient, echo::ToServer>>());

    // Ring 3 to ring 0: `Moved` hands the same end back; forged handles first.
    let mut moved = [tag(4), 3u32.to_le_bytes().to_vec(), text(server_name), handle.to_le_bytes().to_vec()].concat();
    let (other_client, other_server) = echo::channel();
    let wrong = hold_in(&mut table, other_client); // an echo client end: the wrong side
    let before = table.len();
    // A bad send closes its channel: each forgery goes through a name-service channel of its own.
    // `bytes(own)` is the message, given the sending endpoint's own handle.
    let forge = |table: &mut HandleTable, bytes: &dyn Fn(u32) -> Vec<u8>| {
        let (ns, ns_server) = name_service::channel();
        let (_unused, unused_server) = echo::channel();
        let waiting = ns.send_lookup(ExString::from("x"), ExAny::new(unused_server).expect("heap")).expect("alive");
        // A hole under a lower handle, for the endpoint the lookup brings (see `table_with_hole`).
        let (_c, spare) = echo::channel();
        let hole = hold_in(table, spare);
        let own = hold_in(table, ns_server);
        table.close(hole).expect("held");
        let received = recv_encoded(table, own, 4096).expect("the lookup");
        table.close(handle_of(&received)).expect("the unused end, held");
        let result = send_encoded(table, own, &bytes(own));
        let closed = matches!(waiting.recv(), Err(Closed));
        table.close(own).expect("held");
        (result, closed)
    };
    let moved_to = |to: u32| [&moved[..moved.len() - 4], &to.to_le_bytes()].concat();
    for forged in [Some(77), Some(wrong), Some(u32::MAX), None] {
        let outcome = forge(&mut table, &|own| moved_to(forged.unwrap_or(own)));
        assert_eq!(outcome, (Err(SendFailure::Bad(WireError::BadHandle)), true), "{forged:?}");
        assert_eq!(table.len(), before, "a refused handle leaves the table unchanged ({forged:?})");
    }
    // The right handle under the name of another type (the client's): refused too.
    let client_name = type_name::<echo::Client<echo_state::Ready>>();
    let lying = [tag(4), tag(3), text(client_name), handle.to_le_bytes().to_vec()].concat();
    assert_eq!(forge(&mut table, &|_| lying.clone()), (Err(SendFailure::Bad(WireError::BadHandle)), true));
    assert_eq!(table.len(), before);
    let at = moved.len() - 4;
    moved[at..].copy_from_slice(&handle.to_le_bytes());
    send_encoded(&mut table, hn, &moved).expect("sent");
    assert_eq!(table.len(), before - 1, "the end left the table with the message");
    let Ok(name_service::client::LookingUp::Moved(3, end, ns)) = waiting.recv() else { panic!("moved") };
    let echo_server = end.downcast::<echo::Server<echo_state::Ready>>().expect("an echo server end");
    // The end works: a ping from the client that made it, answered by the end that crossed twice.
    let pinged = echo_client.send_ping(11).expect("server alive");
    let Ok(echo::server::Ready::Ping(11, owes)) = echo_server.recv() else { panic!("the ping") };
    let echo_server = owes.send_pong(11).expect("client alive");
    let Ok(echo_client::PingSent::Pong(11, echo_client)) = pinged.recv() else { panic!("the pong") };
    drop((echo_client, echo_server, ns, table, other_server));
    account.assert_clean("ExAny both ways");
}

#[test]
fn a_ring3_sip_binds_a_provider_opened_from_the_registry() {
    let account = Account::new(9134);
    let (ns_client, ns_server) = name_service::channel();
    let (mut table, hc) = table_with_hole(ns_client);
    // The SIP opens a service-provider channel by its registered name: both ends are held for it.
    let crossing = channel_crossing(type_name::<ContractPair<service_provider::ServiceProvider>>().as_bytes())
        .expect("registered by contract!");
    let (client, server) = (crossing.open)().expect("memory");
    let (hpc, hps) = (table.put(client).expect("room"), table.put(server).expect("room"));
    assert!(table.get(hpc).expect("held").is_peer_of(table.get(hps).expect("held")));
    let held = table.len();

    // Bind("svc", "Echo", provider client end), from ring 3.
    let bind = [tag(0), text("svc"), text("Echo"), hpc.to_le_bytes().to_vec()].concat();
    send_encoded(&mut table, hc, &bind).expect("sent");
    assert_eq!(table.len(), held - 1);
    let Ok(name_service::server::Ready::Bind(name, contract, provider, owes)) = ns_server.recv() else {
        panic!("the bind")
    };
    assert_eq!((name.as_str(), contract.as_str()), ("svc", "Echo"));
    drop((name, contract));
    let ns_server = owes.send_bound().expect("client alive");
    assert_eq!(dec::<name_service::ToClient>(&recv_encoded(&mut table, hc, 64).expect("bound")).map(|_| ()), Ok(()));

    // The name service (ring 0) hands the provider (ring 3) a connection.
    let (echo_client, echo_server) = echo::channel();
    let connecting = provider.send_connect(ExAny::new(echo_server).expect("heap")).expect("provider alive");
    let bytes = recv_encoded(&mut table, hps, 4096).expect("the connection");
    assert_eq!(table.len(), held, "the echo server end is the SIP's now");
    let echo_handle = handle_of(&bytes);
    send_encoded(&mut table, hps, &tag(0)).expect("Accepted");
    let Ok(service_provider::client::Connecting::Accepted(provider)) = connecting.recv() else { panic!("accepted") };

    // The SIP serves the echo channel through its new handle.
    let waiting = echo_client.send_ping(5).expect("server alive");
    let ping = recv_encoded(&mut table, echo_handle, 64).expect("the ping");
    assert!(matches!(dec::<echo::ToServer>(&ping), Ok(echo::ToServer::Ping(echo::msg::Ping(5)))));
    send_encoded(&mut table, echo_handle, &enc(echo::ToClient::Pong(echo::msg::Pong(5)))).expect("sent");
    let Ok(echo_client::PingSent::Pong(5, echo_client)) = waiting.recv() else { panic!("the pong") };
    drop((echo_client, provider, ns_server, table));
    account.assert_clean("bind from ring 3");
}

/// A message taken for a ring-3 SIP that did not fit its room waits, encoded, in the endpoint's holder. If the
/// SIP then sends that endpoint away (inside an `ExAny`), the waiting message must not silently vanish: its
/// sender believes it delivered, and the endpoint's new holder never sees it (the two sides then wait for each
/// other for ever).
#[test]
fn a_pending_message_is_not_lost_when_its_endpoint_moves() {
    let account = Account::new(9135);
    let (echo_client, echo_server) = echo::channel();
    let (ns_client, ns_server) = name_service::channel();
    let mut table = HandleTable::new(8);
    let he = hold_in(&mut table, echo_server);
    let hc = hold_in(&mut table, ns_client);
    let waiting = echo_client.send_say(ExString::from("waiting for room")).expect("alive");
    assert!(matches!(recv_encoded(&mut table, he, 1), Err(RecvFailure::TooSmall(_))));
    assert_eq!(table.get(he).expect("held").status().queued, 1, "the message waits");
    // Lookup("x", ExAny(the echo server end, as the Ready end it is to whoever receives it next)).
    let name = type_name::<echo::Server<echo_state::Ready>>();
    let lookup = [tag(1), text("x"), text(name), he.to_le_bytes().to_vec()].concat();
    let outcome = match send_encoded(&mut table, hc, &lookup) {
        Ok(()) => {
            let Ok(name_service::server::Ready::Lookup(_, end, owes)) = ns_server.recv() else { panic!("lookup") };
            drop(owes);
            let server = end.downcast::<echo::Server<echo_state::Ready>>().expect("the end");
            match server.try_recv() {
                channels::TryRecv::Message(echo::server::Ready::Say(text, _)) if text == "waiting for room" => {
                    "moved with its message"
                }
                channels::TryRecv::Message(_) => "moved, and a different message arrived",
                channels::TryRecv::Empty(_) => "moved, and the waiting message is gone",
                channels::TryRecv::Closed => "moved, and the channel is closed",
            }
        }
        Err(_) => {
            drop(ns_server);
            "refused while a message waits"
        }
    };
    drop((waiting, table));
    account.assert_clean("pending message");
    assert!(matches!(outcome, "moved with its message" | "refused while a message waits"), "{outcome}");
}

// --- registries -------------------------------------------------------------------------------------------------

#[test]
fn the_registries_name_every_contract_and_endpoint_once() {
    let echo_pair = type_name::<ContractPair<echo::Echo>>();
    assert!(CHANNELS.iter().any(|c| (c.name)() == echo_pair), "{echo_pair} not in CHANNELS");
    let names: Vec<&str> = CHANNELS.iter().map(|c| (c.name)()).collect();
    for pair in [
        type_name::<ContractPair<kv_store::KvStore>>(),
        type_name::<ContractPair<name_service::NameService>>(),
        type_name::<ContractPair<service_provider::ServiceProvider>>(),
        type_name::<ContractPair<name_listener::NameListener>>(),
        type_name::<ContractPair<console::Console>>(),
        type_name::<ContractPair<stream::Stream>>(),
    ] {
        assert!(names.contains(&pair), "{pair} not in CHANNELS");
        assert_eq!(channel_crossing(pair.as_bytes()).map(|c| (c.name)()), Some(pair));
    }
    assert!(names.len() >= contracts::all().len(), "{names:?}");
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "a pair type registered twice");

    let values: Vec<&str> = VALUES.iter().map(|v| (v.name)()).collect();
    for name in [
        type_name::<echo::Server<echo_state::Ready>>(),
        type_name::<echo::Client<echo_state::Ready>>(),
        type_name::<echo::Server<echo_state::PingSent>>(),
        type_name::<echo::Client<echo_state::Done>>(),
        type_name::<name_service::Server<name_service::state::Ready>>(),
        type_name::<service_provider::Client<service_provider::state::Ready>>(),
    ] {
        assert!(values.contains(&name), "{name} not in VALUES");
    }
    let mut unique = values.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), values.len(), "a type registered twice");
    assert!(channel_crossing(b"no such pair").is_none());
}

#[test]
fn a_registered_exany_round_trips_and_an_unregistered_one_does_not_cross() {
    let account = Account::new(9140);
    let mut table = HandleTable::new(8);
    let (client, server) = echo::channel();
    let bytes = encode(ExAny::new(server).expect("heap"), &mut table).expect("a registered type crosses");
    assert_eq!(table.len(), 1);
    let name = type_name::<echo::Server<echo_state::Ready>>();
    assert_eq!(&bytes[..4 + name.len()], text(name));
    // Decoding it as the wrong state's type, or through a table without the endpoint, fails.
    let any = decode::<ExAny>(&bytes, &mut NoEndpoints);
    assert_eq!(any.err(), Some(WireError::BadHandle));
    let any = decode::<ExAny>(&bytes, &mut table).expect("decodes");
    assert!(table.is_empty());
    assert!(any.is::<echo::Server<echo_state::Ready>>());
    let server = any.downcast::<echo::Server<echo_state::Ready>>().expect("the same end");
    let waiting = client.send_ping(9).expect("alive");
    let Ok(echo::server::Ready::Ping(9, owes)) = server.recv() else { panic!("ping") };
    let server = owes.send_pong(9).expect("alive");
    let Ok(echo_client::PingSent::Pong(9, client)) = waiting.recv() else { panic!("the pong") };
    drop((client, server));

    // Unregistered: a plain value, or a box. Refused, and freed.
    assert_eq!(encode(ExAny::new(5u64).expect("heap"), &mut table).err(), Some(WireError::Unsupported));
    assert_eq!(encode(ExAny::new(ExString::from("s")).expect("heap"), &mut table).err(), Some(WireError::Unsupported));
    let name = type_name::<u64>();
    let bytes = [text(name), 5u64.to_le_bytes().to_vec()].concat();
    assert_eq!(decode::<ExAny>(&bytes, &mut table).err(), Some(WireError::Unsupported));
    // A registered endpoint with no table to hold it: refused, and the endpoint is closed.
    let (client, server) = echo::channel();
    assert_eq!(encode(ExAny::new(server).expect("heap"), &mut NoEndpoints).err(), Some(WireError::Unsupported));
    assert!(client.is_peer_closed());
    drop((client, table));
    account.assert_clean("ExAny");
}
