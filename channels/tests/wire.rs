//! The byte form of messages (`wire`) and the kernel's handle table (`proxy`) on the host platform: every value
//! survives `encode` then `decode` unchanged and in the documented format, hostile bytes give a `WireError` and
//! never a panic, an unbounded allocation or a leak, depth and size are bounded on both sides, and a ring-3
//! SIP's endpoints in a `HandleTable` send, receive, move inside messages and close as `proxy` documents.
//!
//! Every test acts for its own owner, so the ledger's per-owner charges show what it leaked.

use channels::host::{EXCHANGE, set_current_owner};
use channels::proxy::{HandleTable, Polled, RecvFailure, SendFailure, hold, wait_any};
use channels::raw::{RawEndpoint, TrySendError, pair};
use channels::wire::{Endpoints, MAX_DEPTH, MAX_MESSAGE, NoEndpoints, WireError, decode, encode};
use channels::{ExAny, ExBox, ExString, ExVec, Exchangeable, Owner};
use proptest::prelude::*;
use std::any::TypeId;
use std::fmt::Debug;
use std::thread;
use std::time::{Duration, Instant};

/// A plain endpoint type to carry inside messages.
type Ep = RawEndpoint<u8, u8>;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Acts for `owner` (fresh per test) and checks at the end that it pays for nothing.
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

fn enc<T: Exchangeable>(value: T) -> Vec<u8> {
    encode(value, &mut NoEndpoints).expect("encodes")
}

fn dec<T: Exchangeable>(bytes: &[u8]) -> Result<T, WireError> {
    decode(bytes, &mut NoEndpoints)
}

/// `value` survives a round trip, and its byte form is canonical (decoding then encoding gives the same bytes).
fn round_trip<T: Exchangeable + Clone + PartialEq + Debug>(value: T) -> Result<(), TestCaseError> {
    let copy = value.clone();
    let bytes = enc(value);
    prop_assert!(bytes.len() <= MAX_MESSAGE);
    let back: T = dec(&bytes).map_err(|e| TestCaseError::fail(format!("decode of {copy:?}: {e:?}")))?;
    prop_assert_eq!(&back, &copy);
    prop_assert_eq!(enc(back), bytes, "re-encoding gives the same bytes");
    Ok(())
}

fn put(table: &mut HandleTable, end: impl Into<Held>) -> u32 {
    table.put(end.into().0).expect("room in the table")
}

/// A held endpoint (a newtype so `put` takes raw endpoints directly).
struct Held(channels::wire::Held);

impl<Tx: Exchangeable, Rx: Exchangeable> From<RawEndpoint<Tx, Rx>> for Held {
    fn from(end: RawEndpoint<Tx, Rx>) -> Self {
        Held(hold(end))
    }
}

fn recv_encoded(table: &mut HandleTable, handle: u32, room: usize) -> Result<Vec<u8>, RecvFailure> {
    table.with(handle, |end, rest| end.try_recv_encoded(rest, room)).expect("handle held")
}

fn send_encoded(table: &mut HandleTable, handle: u32, bytes: &[u8]) -> Result<(), SendFailure> {
    table.with(handle, |end, rest| end.send_encoded(bytes, rest)).expect("handle held")
}

fn handle_of(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().expect("four bytes"))
}

// --- the format -------------------------------------------------------------------------------------------------

#[test]
fn the_format_is_the_documented_one() {
    let account = Account::new(9001);
    assert_eq!(enc(0x0102_0304u32), [4, 3, 2, 1]);
    assert_eq!(enc(-2i16), [0xfe, 0xff]);
    assert_eq!(enc(7usize), [7, 0, 0, 0, 0, 0, 0, 0], "usize as 64 bits");
    assert_eq!(enc(-1isize), [0xff; 8], "isize as 64 bits");
    assert_eq!(enc(true), [1]);
    assert_eq!(enc(false), [0]);
    assert_eq!(enc('é'), [0xe9, 0, 0, 0], "char as its scalar value");
    assert_eq!(enc(1.5f64), 1.5f64.to_bits().to_le_bytes());
    assert_eq!(enc(()), [0u8; 0]);
    assert_eq!(enc(None::<u8>), [0]);
    assert_eq!(enc(Some(9u8)), [1, 9]);
    assert_eq!(enc(Ok::<u8, u16>(3)), [0, 3]);
    assert_eq!(enc(Err::<u8, u16>(3)), [1, 3, 0]);
    assert_eq!(enc([1u8, 2, 3]), [1, 2, 3]);
    assert_eq!(enc((1u8, 2u16)), [1, 2, 0]);
    assert_eq!(enc(ExBox::new(5u8)), [5], "a box is its value");
    assert_eq!(enc(ExVec::from_slice(&[1u16, 2])), [2, 0, 0, 0, 1, 0, 2, 0]);
    assert_eq!(enc(ExString::from("hé")), [3, 0, 0, 0, b'h', 0xc3, 0xa9]);
    assert_eq!(enc(ExVec::<()>::from_iter([(), ()])), [2, 0, 0, 0]);
    account.assert_clean("format");
}

// --- round trips ------------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn integers_round_trip(
        a in any::<u8>(), b in any::<u16>(), c in any::<u32>(), d in any::<u64>(), e in any::<u128>(),
        f in any::<i8>(), g in any::<i16>(), h in any::<i32>(), i in any::<i64>(), j in any::<i128>(),
        k in any::<usize>(), l in any::<isize>(),
    ) {
        let _account = Account::new(9002);
        round_trip(a)?; round_trip(b)?; round_trip(c)?; round_trip(d)?; round_trip(e)?; round_trip(f)?;
        round_trip(g)?; round_trip(h)?; round_trip(i)?; round_trip(j)?; round_trip(k)?; round_trip(l)?;
        round_trip((a, b, c, d, e, f, g, h))?;
        round_trip((i, j, k, l))?;
    }

    #[test]
    fn bool_char_and_float_bits_round_trip(b in any::<bool>(), c in any::<char>(), x in any::<u64>(), y in any::<u32>()) {
        let _account = Account::new(9003);
        round_trip(b)?;
        round_trip(c)?;
        // Every bit pattern, NaNs and signalling NaNs included, crosses unchanged.
        let (fx, fy) = (f64::from_bits(x), f32::from_bits(y));
        prop_assert_eq!(dec::<f64>(&enc(fx)).expect("f64").to_bits(), x);
        prop_assert_eq!(dec::<f32>(&enc(fy)).expect("f32").to_bits(), y);
        prop_assert_eq!(enc(fx), x.to_le_bytes());
    }

    #[test]
    fn options_results_tuples_and_arrays_round_trip(
        o in any::<Option<u32>>(),
        oo in any::<Option<Option<bool>>>(),
        r in any::<Result<u8, i64>>(),
        rr in any::<Result<Option<char>, (u8, bool)>>(),
        a in any::<[u16; 5]>(),
        aa in any::<[[u8; 2]; 3]>(),
        t in any::<(u8, char, bool, Option<u64>, [i8; 2])>(),
    ) {
        let _account = Account::new(9004);
        round_trip(o)?; round_trip(oo)?; round_trip(r)?; round_trip(rr)?; round_trip(a)?; round_trip(aa)?;
        round_trip(t)?;
        round_trip([(); 7])?;
        round_trip(((), ((),), [(); 0]))?;
    }

    #[test]
    fn exbox_nesting_round_trips(v in any::<u64>(), w in any::<Option<u32>>(), s in any::<String>()) {
        let account = Account::new(9005);
        // Made here, not by the strategy: the strategy runs before the body picks the owner.
        let s = ExString::from(s.as_str());
        round_trip(ExBox::new(v))?;
        round_trip(ExBox::new(ExBox::new(ExBox::new(v))))?;
        round_trip(ExBox::new((v, ExBox::new(w), s.clone())))?;
        round_trip(Some(ExBox::new(ExBox::new(s.clone()))))?;
        round_trip([ExBox::new(v), ExBox::new(v ^ 1)])?;
        round_trip(ExBox::new(()))?;
        round_trip(ExBox::new(ExBox::new(())))?;
        drop(s);
        account.assert_clean("exbox round trips");
    }

    #[test]
    fn exvec_and_exstring_round_trip(
        numbers in prop::collection::vec(any::<u64>(), 0..200),
        texts in prop::collection::vec(any::<String>(), 0..20),
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        text in any::<String>(),
        units in 0usize..64,
    ) {
        let account = Account::new(9006);
        round_trip(ExVec::from_slice(&numbers))?;
        let strings: ExVec<ExString> = texts.iter().map(|t| ExString::from(t.as_str())).collect();
        round_trip(strings)?;
        round_trip(ExVec::from_slice(&bytes))?;
        round_trip(ExString::from(text.as_str()))?;
        let mut nested: ExVec<ExVec<u8>> = ExVec::new();
        for chunk in bytes.chunks(7) {
            nested.push(ExVec::from_slice(chunk));
        }
        round_trip(nested)?;
        let boxes: ExVec<Option<ExBox<u64>>> =
            numbers.iter().map(|&n| if n % 3 == 0 { None } else { Some(ExBox::new(n)) }).collect();
        round_trip(boxes)?;
        round_trip((0..units).map(|_| ()).collect::<ExVec<()>>())?;
        let bytes_of_text = enc(ExString::from(text.as_str()));
        prop_assert_eq!(&bytes_of_text[..4], (text.len() as u32).to_le_bytes());
        prop_assert_eq!(&bytes_of_text[4..], text.as_bytes());
        account.assert_clean("vector round trips");
    }
}

// --- hostile bytes ----------------------------------------------------------------------------------------------

/// Decodes `bytes` as `T`; whatever decodes must re-encode to exactly `bytes` (the format has one form per value).
fn hostile<T: Exchangeable>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(value) = dec::<T>(bytes) {
        let again = encode(value, &mut NoEndpoints);
        prop_assert_eq!(again.as_deref(), Ok(bytes), "accepted bytes are the canonical form of what they decode to");
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let account = Account::new(9010);
        hostile::<u32>(&bytes)?;
        hostile::<bool>(&bytes)?;
        hostile::<char>(&bytes)?;
        hostile::<(bool, char)>(&bytes)?;
        hostile::<Option<Option<u8>>>(&bytes)?;
        hostile::<Result<bool, char>>(&bytes)?;
        hostile::<[char; 2]>(&bytes)?;
        hostile::<ExBox<ExBox<Option<u16>>>>(&bytes)?;
        hostile::<ExVec<u8>>(&bytes)?;
        hostile::<ExVec<u64>>(&bytes)?;
        hostile::<ExVec<ExString>>(&bytes)?;
        hostile::<ExVec<ExVec<bool>>>(&bytes)?;
        hostile::<ExVec<Option<ExBox<char>>>>(&bytes)?;
        hostile::<ExString>(&bytes)?;
        hostile::<(ExString, ExVec<u8>, Option<ExBox<u32>>)>(&bytes)?;
        // No endpoints can be named without a table, and no ExAny of an unregistered type decodes.
        prop_assert!(dec::<Ep>(&bytes).is_err());
        prop_assert!(dec::<ExAny>(&bytes).is_err());
        account.assert_clean("hostile bytes");
    }

    /// Valid encodings with one byte changed, or cut short: never a panic, never a leak.
    #[test]
    fn mutated_encodings_never_panic(
        texts in prop::collection::vec(any::<String>(), 0..6),
        numbers in prop::collection::vec(any::<u32>(), 0..6),
        flip in any::<prop::sample::Index>(),
        value in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        type Message = (ExVec<ExString>, Option<ExBox<ExVec<u32>>>, bool, char);
        let account = Account::new(9011);
        let message: Message = (
            texts.iter().map(|t| ExString::from(t.as_str())).collect(),
            Some(ExBox::new(ExVec::from_slice(&numbers))),
            true,
            'x',
        );
        let bytes = enc(message);
        let mut changed = bytes.clone();
        let at = flip.index(changed.len());
        changed[at] = value;
        hostile::<Message>(&changed)?;
        let short = &bytes[..cut.index(bytes.len())];
        prop_assert_eq!(dec::<Message>(short).err(), Some(WireError::Truncated));
        let mut long = bytes.clone();
        long.push(value);
        prop_assert_eq!(dec::<Message>(&long).err(), Some(WireError::Trailing));
        account.assert_clean("mutated encodings");
    }
}

#[test]
fn bad_values_are_refused() {
    let account = Account::new(9012);
    assert_eq!(dec::<bool>(&[2]), Err(WireError::BadValue));
    assert_eq!(dec::<bool>(&[0xff]), Err(WireError::BadValue));
    assert_eq!(dec::<char>(&0xD800u32.to_le_bytes()), Err(WireError::BadValue), "a surrogate");
    assert_eq!(dec::<char>(&0x11_0000u32.to_le_bytes()), Err(WireError::BadValue), "beyond Unicode");
    assert_eq!(dec::<char>(&0x10_FFFFu32.to_le_bytes()), Ok('\u{10FFFF}'));
    assert_eq!(dec::<Option<u8>>(&[2, 0]), Err(WireError::BadValue));
    assert_eq!(dec::<Result<u8, u8>>(&[2, 0]), Err(WireError::BadValue));
    assert_eq!(dec::<Option<bool>>(&[1, 3]), Err(WireError::BadValue), "a bad value inside a good tag");
    // Invalid UTF-8: a lone continuation byte, an overlong encoding, a surrogate, a truncated sequence.
    for text in [&[0x80][..], &[0xc0, 0x80], &[0xed, 0xa0, 0x80], &[b'a', 0xe2, 0x82]] {
        let mut bytes = (text.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(text);
        assert_eq!(dec::<ExString>(&bytes), Err(WireError::BadValue), "{text:?}");
    }
    account.assert_clean("bad values");
}

#[test]
fn truncated_and_trailing_bytes_are_refused() {
    let account = Account::new(9013);
    assert_eq!(dec::<u32>(&[1, 2, 3]), Err(WireError::Truncated));
    assert_eq!(dec::<u8>(&[]), Err(WireError::Truncated));
    assert_eq!(dec::<Option<u64>>(&[1, 0, 0]), Err(WireError::Truncated));
    assert_eq!(dec::<ExString>(&[5, 0, 0, 0, b'a', b'b']), Err(WireError::Truncated));
    assert_eq!(dec::<ExVec<u16>>(&[2, 0, 0, 0, 1, 0, 2]), Err(WireError::Truncated));
    assert_eq!(dec::<ExVec<u16>>(&[2, 0, 0]), Err(WireError::Truncated), "a cut length");
    assert_eq!(dec::<u32>(&[1, 2, 3, 4, 5]), Err(WireError::Trailing));
    assert_eq!(dec::<()>(&[0]), Err(WireError::Trailing));
    assert_eq!(dec::<ExString>(&[1, 0, 0, 0, b'a', b'b']), Err(WireError::Trailing));
    // A message that fails after some of it was built frees what was built.
    assert_eq!(
        dec::<(ExBox<u64>, ExVec<ExString>, bool)>(&enc((ExBox::new(1u64), ExVec::<ExString>::new(), 7u8))),
        Err(WireError::BadValue)
    );
    let mut strings: ExVec<ExString> = ExVec::new();
    strings.push(ExString::from("kept"));
    let mut bytes = enc((ExBox::new(1u64), strings));
    bytes.push(0);
    assert_eq!(dec::<(ExBox<u64>, ExVec<ExString>)>(&bytes), Err(WireError::Trailing));
    account.assert_clean("truncated and trailing");
}

#[test]
fn lengths_beyond_the_input_are_refused_without_allocating_them() {
    let account = Account::new(9014);
    let huge = u32::MAX.to_le_bytes();
    let started = Instant::now();
    assert_eq!(dec::<ExVec<u64>>(&huge), Err(WireError::TooLong));
    assert_eq!(dec::<ExVec<u8>>(&[huge.as_slice(), &[1, 2, 3]].concat()), Err(WireError::TooLong));
    assert_eq!(dec::<ExString>(&huge), Err(WireError::TooLong));
    assert_eq!(dec::<ExVec<ExVec<u8>>>(&[&[1, 0, 0, 0][..], &huge].concat()), Err(WireError::TooLong));
    assert_eq!(dec::<ExAny>(&huge).err(), Some(WireError::TooLong), "an ExAny's name length");
    // Zero-sized elements take no bytes: they are bounded by the allowance, not by u32::MAX.
    assert_eq!(dec::<ExVec<()>>(&huge), Err(WireError::TooLong));
    assert_eq!(dec::<ExVec<ExVec<()>>>(&[&[1, 0, 0, 0][..], &huge].concat()), Err(WireError::TooLong));
    assert_eq!(dec::<ExVec<ExBox<()>>>(&huge), Err(WireError::TooLong));
    let small = dec::<ExVec<()>>(&1000u32.to_le_bytes()).expect("a thousand units is within the allowance");
    assert_eq!(small.len(), 1000);
    drop(small);
    // However the element budget is split between nested vectors, the total stays bounded.
    let mut bytes = 3u32.to_le_bytes().to_vec();
    for _ in 0..3 {
        bytes.extend_from_slice(&4000u32.to_le_bytes());
    }
    assert_eq!(dec::<ExVec<ExVec<()>>>(&bytes), Err(WireError::TooLong), "12000 units from 16 bytes");
    assert!(started.elapsed() < Duration::from_secs(2), "no work proportional to a hostile length");
    account.assert_clean("huge lengths");
}

/// A short message that claims many large elements must be refused as truncated before the kernel reserves
/// room for all of them: the claimed length is checked against the element budget, but the reservation is
/// `len * size_of::<T>()` bytes, made before any element is read.
#[test]
fn a_short_message_does_not_reserve_memory_for_its_claimed_length() {
    let owner = Owner::sip(9015);
    set_current_owner(owner);
    // 64 KiB of exchange quota: far more than the 4-byte message needs.
    EXCHANGE.ledger().set_quota(owner, 64 * 1024);
    let claim = 4000u32.to_le_bytes();
    let result = dec::<ExVec<[u64; 64]>>(&claim); // 4000 elements of 512 bytes: 2 MB reserved up front
    let strings = dec::<ExVec<ExString>>(&claim); // 4000 * 24 bytes: 96 KB
    EXCHANGE.ledger().end_account(owner);
    assert_eq!(result.err(), Some(WireError::Truncated), "4 bytes of input reserved 2 MB (OutOfMemory under quota)");
    assert_eq!(strings.err(), Some(WireError::Truncated), "4 bytes of input reserved 96 KB");
}

// --- size and depth ---------------------------------------------------------------------------------------------

/// Values of a statically nested `ExBox` chain.
trait Deep: Exchangeable + Sized {
    fn make(leaf: u8) -> Self;
}

impl Deep for u8 {
    fn make(leaf: u8) -> Self {
        leaf
    }
}

impl<T: Deep> Deep for ExBox<T> {
    fn make(leaf: u8) -> Self {
        ExBox::new(T::make(leaf))
    }
}

type B<T> = ExBox<T>;
type B4<T> = B<B<B<B<T>>>>;
/// `MAX_DEPTH` boxes.
type B16 = B4<B4<B4<B4<u8>>>>;
type B17 = B<B16>;

#[test]
fn depth_is_bounded_on_both_sides() {
    assert_eq!(MAX_DEPTH, 16, "the chains below are built for this depth");
    let account = Account::new(9020);
    let bytes = enc(B16::make(9));
    assert_eq!(bytes, [9]);
    let back: B16 = dec(&bytes).expect("MAX_DEPTH boxes decode");
    drop(back);
    assert_eq!(encode(B17::make(9), &mut NoEndpoints), Err(WireError::TooDeep));
    assert_eq!(dec::<B17>(&[9]).err(), Some(WireError::TooDeep));
    // A vector counts as a level (its elements are nested in it).
    assert_eq!(encode(ExVec::from_iter([B16::make(1)]), &mut NoEndpoints), Err(WireError::TooDeep));
    assert_eq!(dec::<ExVec<B16>>(&[1, 0, 0, 0, 1]).err(), Some(WireError::TooDeep));
    // An empty vector of too-deep elements has no element to be too deep.
    assert_eq!(enc(ExVec::<B16>::new()), [0, 0, 0, 0]);
    assert!(dec::<ExVec<B16>>(&[0, 0, 0, 0]).is_ok());
    account.assert_clean("depth");
}

#[test]
fn messages_longer_than_max_message_do_not_encode() {
    let account = Account::new(9021);
    let fits = ExVec::from_slice(&vec![7u8; MAX_MESSAGE - 4]);
    let bytes = enc(fits);
    assert_eq!(bytes.len(), MAX_MESSAGE);
    let back: ExVec<u8> = dec(&bytes).expect("a message of MAX_MESSAGE bytes decodes");
    assert_eq!(back.len(), MAX_MESSAGE - 4);
    drop(back);
    let too_long = ExVec::from_slice(&vec![7u8; MAX_MESSAGE - 3]);
    assert_eq!(encode(too_long, &mut NoEndpoints), Err(WireError::TooLong));
    let text = ExString::from("x".repeat(MAX_MESSAGE).as_str());
    assert_eq!(encode(text, &mut NoEndpoints), Err(WireError::TooLong));
    account.assert_clean("max message");
}

/// `WireError::TooLong` is documented as "Longer than MAX_MESSAGE": the decoder should refuse what the encoder
/// could never have written, or a ring-3 sender can push a message the kernel cannot forward to ring 3.
#[test]
fn messages_longer_than_max_message_do_not_decode() {
    let account = Account::new(9022);
    let mut bytes = ((MAX_MESSAGE - 3) as u32).to_le_bytes().to_vec();
    bytes.resize(MAX_MESSAGE + 1, b'a');
    let result = dec::<ExString>(&bytes);
    let ok = result.is_ok();
    drop(result);
    account.assert_clean("long decode");
    assert!(!ok, "decoded a message of {} bytes, more than MAX_MESSAGE", bytes.len());
}

/// Whatever `encode` accepts, `decode` must accept: a ring-0 sender's message that encodes but cannot decode
/// reaches the ring-3 side as a broken channel.
#[test]
fn whatever_encodes_decodes_zero_sized_elements() {
    let account = Account::new(9023);
    // Within the allowance for elements that take no bytes: both ways.
    let units: ExVec<()> = (0..4000).map(|_| ()).collect();
    let bytes = enc(units);
    assert_eq!(bytes.len(), 4);
    let units = dec::<ExVec<()>>(&bytes).map(|v| v.len());
    let boxes: ExVec<ExBox<()>> = (0..4000).map(|_| ExBox::new(())).collect();
    let boxes = dec::<ExVec<ExBox<()>>>(&enc(boxes)).map(|v| v.len());
    // Beyond it: refused when encoding already, as decoding would refuse it.
    let many: ExVec<()> = (0..10_000).map(|_| ()).collect();
    let many = encode(many, &mut NoEndpoints).map(|b| b.len());
    let many_boxes: ExVec<ExBox<()>> = (0..10_000).map(|_| ExBox::new(())).collect();
    let many_boxes = encode(many_boxes, &mut NoEndpoints).map(|b| b.len());
    account.assert_clean("zero-sized");
    assert_eq!(units, Ok(4000), "ExVec<()> of 4,000 encodes in 4 bytes but does not decode");
    assert_eq!(boxes, Ok(4000), "ExVec<ExBox<()>> of 4,000 encodes in 4 bytes but does not decode");
    assert_eq!(many, Err(WireError::TooLong), "ExVec<()> of 10,000 encodes, but would not decode");
    assert_eq!(many_boxes, Err(WireError::TooLong), "ExVec<ExBox<()>> of 10,000 encodes, but would not decode");
}

#[test]
fn an_unregistered_exany_does_not_cross() {
    let account = Account::new(9024);
    let any = ExAny::new(ExBox::new(5u64)).expect("memory");
    assert_eq!(encode(any, &mut NoEndpoints), Err(WireError::Unsupported));
    assert_eq!(encode((1u8, ExAny::new(5u64).expect("memory")), &mut NoEndpoints), Err(WireError::Unsupported));
    let name = std::any::type_name::<u64>();
    let mut bytes = (name.len() as u32).to_le_bytes().to_vec();
    bytes.extend_from_slice(name.as_bytes());
    bytes.extend_from_slice(&5u64.to_le_bytes());
    assert_eq!(dec::<ExAny>(&bytes).err(), Some(WireError::Unsupported));
    account.assert_clean("ExAny");
}

// --- endpoints through a handle table ---------------------------------------------------------------------------

#[test]
fn endpoints_encode_as_handles_and_decode_by_type() {
    let account = Account::new(9030);
    let (near, far) = pair::<u8, u8>(1, 1);
    let mut table = HandleTable::new(4);
    assert!(table.is_empty());
    assert_eq!(encode(far, &mut NoEndpoints), Err(WireError::Unsupported), "NoEndpoints holds none");
    assert!(near.is_peer_closed(), "an endpoint that could not be held is closed");
    drop(near);

    let (near, far) = pair::<u8, u8>(1, 1);
    let bytes = encode(far, &mut table).expect("held");
    assert_eq!(bytes.len(), 4);
    assert_eq!(table.len(), 1);
    let handle = handle_of(&bytes);
    let held = table.get(handle).expect("the handle names it");
    assert_eq!(held.endpoint_type(), TypeId::of::<Ep>());
    assert!(!held.status().peer_closed);

    // Another type with the same handle, a forged handle, the handle with a trailing byte: refused.
    assert_eq!(decode::<RawEndpoint<u16, u8>>(&bytes, &mut table).err(), Some(WireError::BadHandle));
    assert_eq!(decode::<RawEndpoint<u8, u16>>(&bytes, &mut table).err(), Some(WireError::BadHandle));
    assert_eq!(decode::<Ep>(&99u32.to_le_bytes(), &mut table).err(), Some(WireError::BadHandle));
    assert_eq!(decode::<Ep>(&u32::MAX.to_le_bytes(), &mut table).err(), Some(WireError::BadHandle));
    assert_eq!(table.len(), 1, "refused decodes leave the table as it was");
    assert!(!near.is_peer_closed());

    // Two copies of one handle cannot make two endpoints.
    let twice = [bytes.as_slice(), &bytes].concat();
    assert_eq!(decode::<(Ep, Ep)>(&twice, &mut table).err(), Some(WireError::BadHandle));
    assert!(table.is_empty(), "the first copy took the endpoint (and the failed message dropped it)");
    assert!(near.is_peer_closed(), "an endpoint taken by a refused message is closed");
    drop(near);

    let (mut near, far) = pair::<u8, u8>(1, 1);
    let bytes = encode(far, &mut table).expect("held");
    let mut far: Ep = decode(&bytes, &mut table).expect("the right type");
    assert!(table.is_empty());
    near.try_send(42).expect("peer alive");
    assert_eq!(far.try_recv(), Ok(42), "the endpoint came back working");
    drop((near, far));
    account.assert_clean("handles");
}

#[test]
fn the_table_limit_is_enforced() {
    let account = Account::new(9031);
    let mut table = HandleTable::new(2);
    let (a, b) = pair::<u8, u8>(1, 1);
    let (c, d) = pair::<u8, u8>(1, 1);
    let (e, f) = pair::<u8, u8>(1, 1);
    let (hb, hd) = (enc_into(&mut table, b).expect("room"), enc_into(&mut table, d).expect("room"));
    assert_ne!(hb, hd);
    assert_eq!(enc_into(&mut table, f), Err(WireError::TooManyHandles));
    assert!(e.is_peer_closed(), "the endpoint nobody holds is closed");
    assert_eq!(table.len(), 2);
    assert_eq!(table.close(hb), Ok(()));
    assert!(a.is_peer_closed());
    assert_eq!(table.len(), 1);
    assert_eq!(table.close(hb), Err(channels::Closed), "closed twice");
    assert_eq!(table.close(77), Err(channels::Closed));
    assert_eq!(table.close(u32::MAX), Err(channels::Closed));
    let (g, h) = pair::<u8, u8>(1, 1);
    assert_eq!(enc_into(&mut table, h), Ok(hb), "a freed handle is reused");
    assert!(table.with(5, |_, _| ()).is_none());
    assert!(table.get(5).is_none());
    drop(table);
    assert!(c.is_peer_closed() && g.is_peer_closed(), "dropping the table closes what it holds");
    drop((a, c, e, g));
    account.assert_clean("table limit");
}

fn enc_into(table: &mut HandleTable, end: Ep) -> Result<u32, WireError> {
    encode(end, table).map(|bytes| handle_of(&bytes))
}

// --- the proxy: a ring-3 SIP's endpoint used through bytes ------------------------------------------------------

#[test]
fn proxied_send_and_receive_move_bytes() {
    let account = Account::new(9040);
    let (mut ring0, ring3) = pair::<(u32, ExString), Option<ExVec<u16>>>(2, 2);
    let mut table = HandleTable::new(8);
    let h = put(&mut table, ring3);
    assert_eq!(recv_encoded(&mut table, h, 1024), Err(RecvFailure::Empty));

    ring0.try_send((5, ExString::from("five"))).expect("peer alive");
    let status = table.get(h).expect("held").status();
    assert_eq!((status.queued, status.in_flight, status.peer_closed), (1, 0, false));
    let bytes = recv_encoded(&mut table, h, 1024).expect("a message");
    assert_eq!(bytes, enc((5u32, ExString::from("five"))));

    send_encoded(&mut table, h, &enc(Some(ExVec::from_slice(&[1u16, 2, 3])))).expect("sent");
    assert_eq!(table.get(h).expect("held").status().in_flight, 1);
    assert_eq!(ring0.try_recv().expect("arrived").as_deref(), Some(&[1u16, 2, 3][..]));

    // Bytes that are no message of the channel: refused, nothing sent, and (`SendFailure::Bad`) the channel is
    // closed for both sides. Each on a channel of its own.
    for garbage in [&[2u8][..], &[1, 3, 0, 0, 0], &[], &[0, 0], &[1, 1, 0, 0, 0, 1, 0, 9]] {
        let (mut peer, ring3) = pair::<(u32, ExString), Option<ExVec<u16>>>(2, 2);
        let g = put(&mut table, ring3);
        let refused = send_encoded(&mut table, g, garbage);
        assert!(matches!(refused, Err(SendFailure::Bad(_))), "{garbage:?}: {refused:?}");
        assert_eq!(peer.try_recv().map(|_| ()), Err(channels::raw::TryRecvError::Closed), "{garbage:?}");
        assert!(peer.is_peer_closed());
        assert_eq!(send_encoded(&mut table, g, &[0]), Err(SendFailure::Closed));
        assert_eq!(recv_encoded(&mut table, g, 64), Err(RecvFailure::Closed));
        table.close(g).expect("held");
    }
    // The other channel in the table was not touched.
    send_encoded(&mut table, h, &[0]).expect("sent");
    assert_eq!(ring0.try_recv().map(|m| m.is_none()), Ok(true));

    drop(ring0);
    assert!(table.get(h).expect("held").status().peer_closed);
    assert_eq!(recv_encoded(&mut table, h, 1024), Err(RecvFailure::Closed));
    assert_eq!(send_encoded(&mut table, h, &[0]), Err(SendFailure::Closed));
    drop(table);
    account.assert_clean("proxied send and receive");
}

#[test]
fn a_message_too_large_for_the_room_waits_for_a_larger_one() {
    let account = Account::new(9041);
    let (mut ring0, ring3) = pair::<ExString, ()>(2, 2);
    let mut table = HandleTable::new(8);
    let h = put(&mut table, ring3);
    ring0.try_send(ExString::from("hello, world")).expect("peer alive");
    ring0.try_send(ExString::from("second")).expect("peer alive");
    assert_eq!(recv_encoded(&mut table, h, 3), Err(RecvFailure::TooSmall(16)));
    assert_eq!(table.get(h).expect("held").status().queued, 2, "the pending message still counts as queued");
    assert_eq!(recv_encoded(&mut table, h, 15), Err(RecvFailure::TooSmall(16)));
    assert_eq!(recv_encoded(&mut table, h, 0), Err(RecvFailure::TooSmall(16)));
    // The peer goes: what was sent still arrives, the pending message first.
    drop(ring0);
    assert_eq!(recv_encoded(&mut table, h, 16), Ok(enc(ExString::from("hello, world"))));
    assert_eq!(recv_encoded(&mut table, h, 16), Ok(enc(ExString::from("second"))));
    assert_eq!(recv_encoded(&mut table, h, 16), Err(RecvFailure::Closed));
    drop(table);
    account.assert_clean("too small");
}

#[test]
fn a_full_ring_breaks_the_channel() {
    let account = Account::new(9042);
    let (mut ring0, ring3) = pair::<(), u8>(1, 1);
    let mut table = HandleTable::new(8);
    let h = put(&mut table, ring3);
    send_encoded(&mut table, h, &[1]).expect("room for one");
    assert_eq!(send_encoded(&mut table, h, &[2]), Err(SendFailure::Full));
    assert_eq!(ring0.try_recv(), Ok(1), "what was sent before arrives");
    assert_eq!(ring0.try_recv(), Err(channels::raw::TryRecvError::Closed));
    assert!(matches!(ring0.try_send(()), Err(TrySendError::PeerClosed(()))));
    assert_eq!(send_encoded(&mut table, h, &[3]), Err(SendFailure::Closed));
    drop((ring0, table));
    account.assert_clean("full");
}

#[test]
fn a_message_that_cannot_cross_breaks_the_channel() {
    let account = Account::new(9043);
    let (mut ring0, ring3) = pair::<(Option<ExAny>, u8), ()>(2, 2);
    let mut table = HandleTable::new(8);
    let h = put(&mut table, ring3);
    ring0.try_send((Some(ExAny::new(5u64).expect("memory")), 1)).expect("peer alive");
    assert_eq!(recv_encoded(&mut table, h, 1024), Err(RecvFailure::Bad(WireError::Unsupported)));
    assert!(ring0.is_peer_closed(), "the channel is closed for both sides");
    assert_eq!(recv_encoded(&mut table, h, 1024), Err(RecvFailure::Closed));
    // Too deep to cross, the same.
    let (mut deep, ring3) = pair::<B17, ()>(1, 1);
    let d = put(&mut table, ring3);
    deep.try_send(B17::make(1)).expect("peer alive");
    assert_eq!(recv_encoded(&mut table, d, 1024), Err(RecvFailure::Bad(WireError::TooDeep)));
    assert!(deep.is_peer_closed());
    drop((ring0, deep, table));
    account.assert_clean("cannot cross");
}

/// An endpoint received by a ring-3 SIP lands in its table under a new handle: the handle of the endpoint it
/// received on stays that endpoint's, and the new one stays open.
///
/// `HandleTable::with` takes the endpoint out of its slot while `f` runs, so the slot looks free, and `put`
/// (called by the encoder for the endpoint in the message) takes it; `with` then writes the receiving endpoint
/// back into that slot, dropping (closing) the one just received.
#[test]
fn an_endpoint_received_through_the_proxy_gets_a_handle_of_its_own() {
    let account = Account::new(9044);
    let (mut ring0, ring3) = pair::<Ep, ()>(2, 2);
    let mut table = HandleTable::new(8);
    let h = put(&mut table, ring3);
    let (kept, sent) = pair::<u8, u8>(1, 1);
    ring0.try_send(sent).expect("peer alive");
    let bytes = recv_encoded(&mut table, h, 64).expect("a message");
    let handle = handle_of(&bytes);
    let outcome = (handle != h, table.len(), kept.is_peer_closed());
    let received = decode::<Ep>(&bytes, &mut table);
    let open = received.as_ref().is_ok_and(|end| !end.is_peer_closed());
    drop((received, kept, ring0, table));
    account.assert_clean("received endpoint");
    assert_eq!(outcome, (true, 2, false), "(new handle, table size, endpoint closed) after receiving an endpoint");
    assert!(open, "the received endpoint decodes from its handle and is open");
}

/// With the table full but for the receiving endpoint's own slot, an endpoint in a message has nowhere to go:
/// `TooManyHandles`, not a handle that names the receiving endpoint.
#[test]
fn a_full_table_refuses_an_endpoint_received_through_the_proxy() {
    let account = Account::new(9045);
    let (mut ring0, ring3) = pair::<Ep, ()>(2, 2);
    let mut table = HandleTable::new(1);
    let h = put(&mut table, ring3);
    let (kept, sent) = pair::<u8, u8>(1, 1);
    ring0.try_send(sent).expect("peer alive");
    let result = recv_encoded(&mut table, h, 64);
    let peer_closed = kept.is_peer_closed();
    let type_at_h = table.get(h).map(|end| end.endpoint_type());
    drop((kept, ring0, table));
    account.assert_clean("full table");
    assert_eq!(type_at_h, Some(TypeId::of::<RawEndpoint<(), Ep>>()), "handle 0 still names the receiving endpoint");
    assert_eq!(result, Err(RecvFailure::Bad(WireError::TooManyHandles)), "(the sent endpoint closed: {peer_closed})");
}

/// A table holding `end`, with a free slot under a lower handle than `end`'s: a `put` while `end` is in use
/// then goes to that free slot, so these tests do not depend on `with` leaving `end`'s own slot looking free.
fn table_with_hole<Tx: Exchangeable, Rx: Exchangeable>(end: RawEndpoint<Tx, Rx>) -> (HandleTable, u32) {
    let mut table = HandleTable::new(8);
    let (_near, far) = pair::<u8, u8>(1, 1);
    let hole = put(&mut table, far);
    let h = put(&mut table, end);
    assert!(hole < h);
    table.close(hole).expect("held");
    (table, h)
}

/// A message whose encoding fails after one of its endpoints went into the table leaves that endpoint behind
/// under a handle the SIP never learns (it stays open, so its peer never sees Closed until the SIP dies).
#[test]
fn a_message_that_cannot_cross_leaves_no_endpoint_behind() {
    let account = Account::new(9046);
    let (mut ring0, ring3) = pair::<(Ep, ExAny), ()>(2, 2);
    let (mut table, h) = table_with_hole(ring3);
    let (kept, sent) = pair::<u8, u8>(1, 1);
    ring0.try_send((sent, ExAny::new(5u64).expect("memory"))).expect("peer alive");
    assert_eq!(recv_encoded(&mut table, h, 1024), Err(RecvFailure::Bad(WireError::Unsupported)));
    let (len, closed) = (table.len(), kept.is_peer_closed());
    drop((kept, ring0, table));
    account.assert_clean("orphan");
    assert_eq!((len, closed), (1, true), "(table size, endpoint of the refused message closed)");
}

/// A pending (too large) message's endpoints are put in the table when it is encoded; closing the receiving
/// endpoint drops the pending bytes, and with them the only record of those handles.
#[test]
fn closing_an_endpoint_with_a_pending_message_leaves_no_endpoint_behind() {
    let account = Account::new(9047);
    let (mut ring0, ring3) = pair::<(Ep, ExString), ()>(2, 2);
    let (mut table, h) = table_with_hole(ring3);
    let (kept, sent) = pair::<u8, u8>(1, 1);
    ring0.try_send((sent, ExString::from("a long enough text"))).expect("peer alive");
    assert!(matches!(recv_encoded(&mut table, h, 4), Err(RecvFailure::TooSmall(_))));
    table.close(h).expect("held");
    let (len, closed) = (table.len(), kept.is_peer_closed());
    drop((kept, ring0, table));
    account.assert_clean("pending orphan");
    assert_eq!((len, closed), (0, true), "(table size, endpoint of the dropped pending message closed)");
}

#[test]
fn endpoints_sent_through_the_proxy_leave_the_table() {
    let account = Account::new(9048);
    let (mut ring0, ring3) = pair::<(), (u8, Ep)>(2, 2);
    let mut table = HandleTable::new(8);
    let h = put(&mut table, ring3);
    let (mut kept, far) = pair::<u8, u8>(1, 1);
    let f = put(&mut table, far);
    let (other, wrong) = pair::<u16, u8>(1, 1);
    let w = put(&mut table, wrong);
    assert_eq!(table.len(), 3);

    // A forged handle, one of the wrong type and the sending endpoint's own: refused (which closes that channel:
    // each on a channel of its own), and the table otherwise unchanged.
    for forged in [77, w, u32::MAX, 0] {
        let (peer, ring3) = pair::<(), (u8, Ep)>(1, 1);
        let g = put(&mut table, ring3);
        let handle = if forged == 0 { g } else { forged };
        let bytes = [&[9u8][..], &handle.to_le_bytes()].concat();
        assert_eq!(send_encoded(&mut table, g, &bytes), Err(SendFailure::Bad(WireError::BadHandle)), "{handle}");
        assert!(peer.is_peer_closed(), "a bad send closes its channel");
        table.close(g).expect("held");
        assert_eq!(table.len(), 3, "handle {handle}");
    }
    assert!(!kept.is_peer_closed() && !other.is_peer_closed());

    let bytes = [&[9u8][..], &f.to_le_bytes()].concat();
    send_encoded(&mut table, h, &bytes).expect("sent");
    assert_eq!(table.len(), 2);
    assert!(table.get(f).is_none(), "the endpoint left the table with the message");
    let (n, mut end) = ring0.try_recv().expect("arrived");
    assert_eq!(n, 9);
    kept.try_send(3).expect("the moved endpoint is alive");
    assert_eq!(end.try_recv(), Ok(3));

    // The peer closed: refused before decoding, so the handles in the message stay the SIP's.
    drop(ring0);
    let (near, far) = pair::<u8, u8>(1, 1);
    let f = put(&mut table, far);
    let bytes = [&[9u8][..], &f.to_le_bytes()].concat();
    assert_eq!(send_encoded(&mut table, h, &bytes), Err(SendFailure::Closed));
    assert!(table.get(f).is_some() && !near.is_peer_closed(), "a refused send leaves its endpoints held");
    drop((kept, end, other, near, table));
    account.assert_clean("endpoints sent");
}

#[test]
fn abandoning_a_table_forgets_its_endpoints_until_the_owner_is_reclaimed() {
    let (dead, alive) = (Owner::sip(9050), Owner::sip(9051));
    set_current_owner(dead);
    let (near, far) = pair::<u8, u8>(1, 1);
    // SAFETY: the test is the host's trusted base.
    let trusted = unsafe { channels::trusted::Trusted::new() };
    channels::trusted::give(&trusted, &near, dead, alive);
    let mut table = HandleTable::new(4);
    put(&mut table, far);
    table.abandon();
    assert!(!near.is_peer_closed(), "abandoned, not closed: the records close it");
    assert_eq!(EXCHANGE.ledger().sides_held_by(dead), 1, "the side is still the dead owner's in the records");
    EXCHANGE.reclaim(dead);
    assert!(near.is_peer_closed(), "the reclaim closed the abandoned side");
    set_current_owner(alive);
    drop(near);
    assert_eq!(EXCHANGE.ledger().charged(dead), (0, 0));
    assert_eq!(EXCHANGE.ledger().charged(alive), (0, 0));
}

#[test]
fn wait_any_returns_when_a_held_endpoint_has_a_message() {
    let account = Account::new(9052);
    let (ring0, ring3) = pair::<u64, ()>(1, 1);
    let (quiet, ring3_quiet) = pair::<u64, ()>(1, 1);
    let mut table = HandleTable::new(4);
    let h = put(&mut table, ring3);
    let q = put(&mut table, ring3_quiet);
    let waiters = [table.get(q).expect("held").waiter(), table.get(h).expect("held").waiter()];
    let sender = thread::spawn(move || {
        set_current_owner(Owner::sip(9052));
        let mut ring0 = ring0;
        thread::sleep(Duration::from_millis(20));
        ring0.try_send(77).expect("peer alive");
        ring0
    });
    let started = Instant::now();
    loop {
        // SAFETY: both endpoints stay in the table, untouched, while this thread waits.
        unsafe { wait_any(&waiters) };
        match recv_encoded(&mut table, h, 8) {
            Ok(bytes) => {
                assert_eq!(bytes, 77u64.to_le_bytes());
                break;
            }
            Err(RecvFailure::Empty) => assert!(started.elapsed() < Duration::from_secs(5), "woken in time"),
            Err(other) => panic!("{other:?}"),
        }
    }
    let ring0 = sender.join().expect("sender");
    drop(ring0);
    // A closed peer wakes a waiter too.
    drop(quiet);
    // SAFETY: as above.
    unsafe { wait_any(&[table.get(q).expect("held").waiter()]) };
    assert_eq!(recv_encoded(&mut table, q, 8), Err(RecvFailure::Closed));
    drop(table);
    account.assert_clean("wait_any");
}

/// Hostile bytes sent through the proxy, on a channel whose messages carry endpoints: never a panic, the table
/// only ever loses endpoints to a message that was sent, and nothing leaks.
#[test]
fn hostile_bytes_through_the_proxy() {
    type Message = (Option<Ep>, ExVec<(u8, Ep)>, ExString);
    let account = Account::new(9053);
    let runner = proptest::test_runner::TestRunner::new(config(300));
    let state = std::cell::RefCell::new((HandleTable::new(16), Vec::new()));
    let mut runner = runner;
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..40), |mut bytes| {
            let (table, keep) = &mut *state.borrow_mut();
            // Handles in the message are small numbers, so some name real entries.
            while table.len() < 6 {
                let (near, far) = pair::<u8, u8>(1, 1);
                put(table, far);
                keep.push(near);
            }
            for chunk in bytes.chunks_mut(5) {
                if chunk.len() == 5 && chunk[0] & 1 == 1 {
                    chunk[2..].fill(0);
                }
            }
            // A bad send closes its channel: a channel per case.
            let (mut ring0, ring3) = pair::<(), Message>(1, 1);
            let h = put(table, ring3);
            let before = table.len();
            match send_encoded(table, h, &bytes) {
                Ok(()) => {
                    let message = ring0.try_recv().expect("sent");
                    drop(message);
                }
                Err(SendFailure::Bad(_)) => prop_assert!(ring0.is_peer_closed(), "a bad send closes the channel"),
                Err(other) => return Err(TestCaseError::fail(format!("{other:?}"))),
            }
            prop_assert!(table.len() <= before);
            prop_assert!(table.get(h).is_some(), "the sending endpoint is still held");
            table.close(h).expect("held");
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    drop(state);
    account.assert_clean("hostile through the proxy");
}

/// `send_encoded` looks at the peer before decoding, so that a send refused as `Closed` leaves the message's
/// endpoints in the SIP's table (the ring-3 side rebuilds the message from its bytes and handles). If the peer
/// closes while the message is being decoded, its endpoints are already out of the table: the send then counts
/// as sent and lost with the channel (as a ring-0 send that races a close may be), so the SIP is told `Ok` and
/// never rebuilds a message whose handles are gone.
///
/// Made deterministic: a second thread waits until the decode has allocated the message's vector (the ledger
/// shows it), then drops the peer; the decode still has a megabyte of elements to read before the endpoint.
#[test]
fn a_send_that_races_the_peers_close_counts_as_sent() {
    type Message = (ExVec<u8>, Ep);
    let account = Account::new(9060);
    let owner = account.0;
    let (ring0, ring3) = pair::<(), Message>(1, 1);
    let mut table = HandleTable::new(8);
    let h = put(&mut table, ring3);
    let (near, far) = pair::<u8, u8>(1, 1);
    let f = put(&mut table, far);
    let len = MAX_MESSAGE - 12;
    let bytes = [&(len as u32).to_le_bytes()[..], &vec![b'a'; len], &f.to_le_bytes()].concat();
    let baseline = EXCHANGE.ledger().held_by(owner).0;
    let closer = thread::spawn(move || {
        set_current_owner(owner);
        let started = Instant::now();
        while EXCHANGE.ledger().held_by(owner).0 == baseline && started.elapsed() < Duration::from_secs(10) {
            std::hint::spin_loop();
        }
        drop(ring0);
    });
    let result = send_encoded(&mut table, h, &bytes);
    closer.join().expect("closer");
    let state = (table.get(f).is_some(), near.is_peer_closed());
    drop((near, table));
    account.assert_clean("raced a close");
    assert_eq!(result, Ok(()), "a send whose peer closed during the decode counts as sent");
    assert_eq!(state, (false, true), "(endpoint still in the table, its peer closed) after the lost send");
}

// --- the short path: plain data between two held ends, beside the ring -------------------------------------------

/// `bytes` (at most 32) as the four words of a short send.
fn words(bytes: &[u8]) -> ([u64; 4], usize) {
    let mut padded = [0u8; 32];
    padded[..bytes.len()].copy_from_slice(bytes);
    (core::array::from_fn(|i| u64::from_le_bytes(padded[i * 8..i * 8 + 8].try_into().expect("eight"))), bytes.len())
}

fn send_short(table: &mut HandleTable, handle: u32, bytes: &[u8]) -> Option<Result<(), SendFailure>> {
    let (words, len) = words(bytes);
    table.get_mut(handle).expect("handle held").send_short(words, len)
}

fn take_short(table: &mut HandleTable, handle: u32) -> Option<Vec<u8>> {
    match table.get_mut(handle).expect("handle held").poll_short() {
        Polled::Short(words, len) => Some(words.map(u64::to_le_bytes).as_flattened()[..len].to_vec()),
        Polled::Other | Polled::Nothing => None,
    }
}

#[test]
fn plain_data_between_two_held_ends_goes_beside_the_ring_in_order() {
    let account = Account::new(9060);
    let (a, b) = pair::<(u32, u64), u8>(2, 2);
    let mut table = HandleTable::new(8);
    let (a, b) = (put(&mut table, a), put(&mut table, b));
    let first = enc((1u32, 10u64));
    assert_eq!(send_short(&mut table, a, &first), Some(Ok(())));
    let status = table.get(b).expect("held").status();
    assert_eq!(
        (status.queued, table.get(a).expect("held").status().in_flight),
        (1, 1),
        "a message beside the ring counts"
    );
    // The slot is taken: the next two go into the ring, behind it.
    assert_eq!(send_short(&mut table, a, &enc((2u32, 20u64))), Some(Ok(())));
    assert_eq!(send_short(&mut table, a, &enc((3u32, 30u64))), Some(Ok(())));
    assert_eq!(table.get(b).expect("held").status().queued, 3);
    assert_eq!(take_short(&mut table, b), Some(first), "the first, as its words");
    assert_eq!(take_short(&mut table, b), None, "the others are in the ring: the general path takes them");
    assert_eq!(recv_encoded(&mut table, b, 64), Ok(enc((2u32, 20u64))));
    // The ring is not empty yet: a new message goes behind the one in it.
    assert_eq!(send_short(&mut table, a, &enc((4u32, 40u64))), Some(Ok(())));
    assert_eq!(recv_encoded(&mut table, b, 64), Ok(enc((3u32, 30u64))));
    assert_eq!(recv_encoded(&mut table, b, 64), Ok(enc((4u32, 40u64))));
    assert_eq!(recv_encoded(&mut table, b, 64), Err(RecvFailure::Empty));
    // Empty again: beside the ring, and the general path takes it too.
    assert_eq!(send_short(&mut table, a, &enc((5u32, 50u64))), Some(Ok(())));
    assert_eq!(recv_encoded(&mut table, b, 64), Ok(enc((5u32, 50u64))));
    // The other way.
    assert_eq!(send_short(&mut table, b, &[7]), Some(Ok(())));
    assert_eq!(take_short(&mut table, a), Some(vec![7]));
    drop(table);
    account.assert_clean("short path");
}

#[test]
fn a_short_send_to_a_ring_0_receiver_is_a_typed_message() {
    let account = Account::new(9061);
    let (mut ring0, ring3) = pair::<u8, (u32, ExString)>(2, 2);
    let mut table = HandleTable::new(8);
    let h = put(&mut table, ring3);
    // Plain data with an exchange block: checked, then sent as the typed message it is.
    assert_eq!(send_short(&mut table, h, &enc((6u32, ExString::from("six")))), Some(Ok(())));
    assert_eq!(ring0.try_recv().map(|(n, s)| (n, s.to_string())), Ok((6, String::from("six"))));
    ring0.try_send(9).expect("peer alive");
    assert_eq!(take_short(&mut table, h), None, "a ring-0 sender's message is in the ring");
    assert_eq!(recv_encoded(&mut table, h, 64), Ok(vec![9]));
    drop(ring0);
    assert_eq!(send_short(&mut table, h, &enc((6u32, ExString::from("x")))), Some(Err(SendFailure::Closed)));
    drop(table);
    account.assert_clean("short send to ring 0");
}

#[test]
fn what_is_not_plain_data_of_the_channel_leaves_the_short_path() {
    let account = Account::new(9062);
    let (a, b) = pair::<(u8, Option<Ep>), ()>(2, 2);
    let (c, d) = pair::<u8, u8>(1, 1);
    let mut table = HandleTable::new(8);
    let (a, b, c) = (put(&mut table, a), put(&mut table, b), put(&mut table, c));
    // An endpoint inside: not for the short path (nothing happened), the general path moves it.
    let with_end = [&[1u8, 1][..], &c.to_le_bytes()].concat();
    assert_eq!(send_short(&mut table, a, &with_end), None);
    assert!(table.get(c).is_some(), "still the SIP's");
    assert_eq!(send_encoded(&mut table, a, &with_end), Ok(()));
    assert!(table.get(c).is_none(), "sent");
    // Bytes that are no message: not for the short path either, and the general path breaks the channel.
    assert_eq!(send_short(&mut table, a, &[1, 2]), None);
    assert!(matches!(send_encoded(&mut table, a, &[1, 2]), Err(SendFailure::Bad(_))));
    assert_eq!(send_short(&mut table, a, &[1, 0]), Some(Err(SendFailure::Closed)), "broken");
    let _ = b;
    drop((d, table));
    account.assert_clean("not plain data");
}

#[test]
fn an_endpoint_with_a_message_beside_its_ring_does_not_move_until_it_is_taken() {
    let account = Account::new(9063);
    let (a, b) = pair::<u8, u8>(1, 1);
    let (carrier, mut far) = pair::<Ep, ()>(1, 1);
    let mut table = HandleTable::new(8);
    let (a, b, carrier) = (put(&mut table, a), put(&mut table, b), put(&mut table, carrier));
    assert_eq!(send_short(&mut table, a, &[5]), Some(Ok(())));
    // `b` has a short message waiting: it may not leave the table (the channel breaks, as for a forged handle).
    assert!(matches!(send_encoded(&mut table, carrier, &b.to_le_bytes()), Err(SendFailure::Bad(WireError::BadHandle))));
    assert!(table.get(b).is_some(), "still held");
    assert_eq!(take_short(&mut table, b), Some(vec![5]));
    // Taken: it moves now, and its new holder (ring 0) receives from the ring only.
    let (carrier2, mut far2) = pair::<Ep, ()>(1, 1);
    let carrier2 = put(&mut table, carrier2);
    assert_eq!(send_encoded(&mut table, carrier2, &b.to_le_bytes()), Ok(()));
    let mut moved = far2.try_recv().expect("the endpoint arrived");
    assert_eq!(send_short(&mut table, a, &[6]), Some(Ok(())));
    assert_eq!(moved.try_recv(), Ok(6), "a ring-0 holder finds the message in the ring");
    let _ = far.try_recv();
    drop((moved, far, far2, table));
    account.assert_clean("no move with a message beside the ring");
}

#[test]
fn a_message_beside_the_ring_arrives_before_the_close() {
    let account = Account::new(9064);
    let (a, b) = pair::<u8, u8>(1, 1);
    let mut table = HandleTable::new(8);
    let (a, b) = (put(&mut table, a), put(&mut table, b));
    assert_eq!(send_short(&mut table, a, &[8]), Some(Ok(())));
    table.close(a).expect("held");
    assert!(table.get(b).expect("held").is_ready());
    assert_eq!(recv_encoded(&mut table, b, 64), Ok(vec![8]), "sent before the close");
    assert_eq!(recv_encoded(&mut table, b, 64), Err(RecvFailure::Closed));
    // A receiver that goes with a message beside its ring leaves nothing behind (the slot holds plain data).
    let (c, d) = pair::<u8, u8>(1, 1);
    let (c, d) = (put(&mut table, c), put(&mut table, d));
    assert_eq!(send_short(&mut table, c, &[9]), Some(Ok(())));
    table.close(d).expect("held");
    assert_eq!(send_short(&mut table, c, &[1]), Some(Err(SendFailure::Closed)));
    drop(table);
    account.assert_clean("beside the ring, then closed");
}
