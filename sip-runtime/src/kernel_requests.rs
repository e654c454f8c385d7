//! The requests of the `KERNEL` call: the `KernelAbi` calls a ring-3 SIP makes through one call, as bytes.
//!
//! The dedicated calls of [`ring3_calls`](crate::ring3_calls) cover what is hot (time, yield, the heap, the
//! channels); everything else a SIP may ask the kernel (the name registry, process control, system information,
//! the console, administration) is one [`Request`], written by the ring-3 runtime into its own memory and handed
//! to the kernel by address (`KERNEL`). The kernel decodes it with [`Request::decode`], answers it with the very
//! implementation ring-0 SIPs call (so every capability check is the same in both modes), and writes the answer
//! back in the byte form of `channels::wire` (the answer types are plain `Exchangeable` data, at most
//! [`MAX_ANSWER`] bytes).
//!
//! A spawn's startup value is the one request with an endpoint in it: it names the end by the SIP's handle, the
//! kernel takes the end from the SIP's handle table, and a refused spawn gives it back as a handle in the answer
//! (the answer's byte form then holds that handle, as a received message does).
//!
//! Not here: `start_thread` (a function pointer: the kernel never runs code a SIP names). A ring-3 SIP gets
//! `NotPermitted` for it. (`run_selftests` is here: the kernel runs the tests on a thread of its own for a
//! ring-3 caller, whose 16 KiB kernel stack is too small for them.)
//!
//! Format: a one-byte request index, then the fields in order: `u32`/`u64` little-endian, a string as its
//! length (`u32`) then its UTF-8 bytes, an `Option` as one byte (0 or 1) then the value, a mode or level as one
//! byte (its index). Decoding is total: any bytes give a request or `None`, never a panic, and borrow the
//! strings from the input (the kernel decodes from a buffer on its stack, so nothing is allocated for a request,
//! and a thread ended while it waits in one holds nothing of the kernel heap).

use crate::{Broadcast, LogFilter, Protection, SipId};
use alloc::vec::Vec;

/// The most bytes one request may take (a longer console text is written in pieces): room for a spawn with the
/// longest arguments ([`MAX_ARGS_LEN`](crate::MAX_ARGS_LEN)) and the longest service name.
pub const MAX_REQUEST: usize = 1152;

/// The room the answer buffer must have: every answer fits in it (the largest, an `Option<NameInfo>`, is 111
/// bytes). The kernel refuses a smaller buffer before doing anything, so a request is never done without its
/// answer arriving.
pub const MAX_ANSWER: usize = 256;

/// The most bytes of console text one request carries (the rest of the request: its index and the length).
pub const MAX_CONSOLE_PIECE: usize = MAX_REQUEST - 5;

/// One `KernelAbi` call, as a ring-3 SIP makes it. Each names its answer type (in the byte form of
/// `channels::wire`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// `kill`; answers `Result<(), KillError>`.
    Kill(SipId),
    /// `wait`; answers `Result<(), KillError>`.
    Wait(SipId),
    /// `exit_status_of`; answers `Option<ExitStatus>`.
    ExitStatusOf(SipId),
    /// `events`; answers `EventCounts`.
    Events,
    /// `memory`; answers `MemoryInfo`.
    Memory,
    /// `cpu`; answers `Option<CpuInfo>`.
    Cpu(u32),
    /// `channel_after`; answers `Option<ChannelInfo>`.
    ChannelAfter(Option<u64>),
    /// `mid_protocol_drops`; answers `u64`.
    MidProtocolDrops(&'a str),
    /// `log_level`; answers `LogFilter`.
    LogLevel,
    /// `set_log_level`; answers `Result<(), NotPermitted>`.
    SetLogLevel(LogFilter),
    /// `console_write` of at most [`MAX_CONSOLE_PIECE`] bytes; answers `Result<(), NotPermitted>`.
    ConsoleWrite(&'a str),
    /// `shutdown`; answers `NotPermitted` (if it answers).
    Shutdown,
    /// `kernel_panic`; answers `NotPermitted` (if it answers).
    KernelPanic(&'a str),
    /// `replica`; answers `Option<ReplicaInfo>`.
    Replica(u32),
    /// `broadcast_probe`; answers `Option<ProbeReport>`.
    BroadcastProbe(Broadcast),
    /// `claim_name`; answers `Result<(), NameRegistryError>`.
    ClaimName {
        /// The name.
        name: &'a str,
        /// Who gets it.
        sip: SipId,
        /// The contract it is served with.
        contract: &'a str,
    },
    /// `release_name`; answers `Result<(), NameRegistryError>`.
    ReleaseName {
        /// The name.
        name: &'a str,
        /// Who has it.
        sip: SipId,
    },
    /// `resolve_name`; answers `Option<NameInfo>`.
    ResolveName(&'a str),
    /// `name_after`; answers `Option<NameInfo>`.
    NameAfter(Option<&'a str>),
    /// `restart_names`; answers `Result<Protection, RestartError>`.
    RestartNames(Protection),
    /// `process_after`; answers `Option<ProcessInfo>`.
    ProcessAfter(Option<SipId>),
    /// `run_selftests` with a filter of at most [`MAX_CONSOLE_PIECE`] bytes; answers `Result<(u32, u32),
    /// NotPermitted>`.
    RunSelftests(&'a str),
    /// `spawn` (without a mode) or `spawn_protected`; answers `Result<SipId, (SpawnError, Option<RawEndpoint<(),
    /// ExAny>>)>`, the startup end given back to a refused spawn as a handle of the caller's.
    Spawn {
        /// The service.
        name: &'a str,
        /// Its arguments.
        args: &'a str,
        /// The core to start it on (`None`: the kernel chooses).
        core: Option<u32>,
        /// The mode (`None`: its manifest's).
        protection: Option<Protection>,
        /// The handle of the startup value's end, if there is one.
        startup: Option<u32>,
    },
}

impl<'a> Request<'a> {
    /// Appends the request's byte form to `out`; `None` if it does not fit in [`MAX_REQUEST`] bytes (`out` is
    /// then left as it was).
    pub fn encode(&self, out: &mut Vec<u8>) -> Option<()> {
        let start = out.len();
        let mut w = Writer(out);
        match *self {
            Request::Kill(sip) => w.tag(0).u64(sip.0),
            Request::Wait(sip) => w.tag(1).u64(sip.0),
            Request::ExitStatusOf(sip) => w.tag(2).u64(sip.0),
            Request::Events => w.tag(3),
            Request::Memory => w.tag(4),
            Request::Cpu(index) => w.tag(5).u32(index),
            Request::ChannelAfter(after) => match after {
                None => w.tag(6).u8(0),
                Some(after) => w.tag(6).u8(1).u64(after),
            },
            Request::MidProtocolDrops(contract) => w.tag(7).str(contract),
            Request::LogLevel => w.tag(8),
            Request::SetLogLevel(level) => w.tag(9).u8(filter_index(level)),
            Request::ConsoleWrite(text) => w.tag(10).str(text),
            Request::Shutdown => w.tag(11),
            Request::KernelPanic(message) => w.tag(12).str(message),
            Request::Replica(core) => w.tag(13).u32(core),
            Request::BroadcastProbe(scheme) => w.tag(14).u8(scheme as u8),
            Request::ClaimName { name, sip, contract } => w.tag(15).str(name).u64(sip.0).str(contract),
            Request::ReleaseName { name, sip } => w.tag(16).str(name).u64(sip.0),
            Request::ResolveName(name) => w.tag(17).str(name),
            Request::NameAfter(after) => match after {
                None => w.tag(18).u8(0),
                Some(after) => w.tag(18).u8(1).str(after),
            },
            Request::RestartNames(protection) => w.tag(19).u8(protection as u8),
            Request::ProcessAfter(after) => match after {
                None => w.tag(20).u8(0),
                Some(after) => w.tag(20).u8(1).u64(after.0),
            },
            Request::RunSelftests(filter) => w.tag(22).str(filter),
            Request::Spawn { name, args, core, protection, startup } => {
                w.tag(21).str(name).str(args);
                match core {
                    None => w.u8(0),
                    Some(core) => w.u8(1).u32(core),
                };
                match protection {
                    None => w.u8(0),
                    Some(protection) => w.u8(1).u8(protection as u8),
                };
                match startup {
                    None => w.u8(0),
                    Some(handle) => w.u8(1).u32(handle),
                }
            }
        };
        if out.len() - start > MAX_REQUEST {
            out.truncate(start);
            return None;
        }
        Some(())
    }

    /// The request whose byte form is all of `bytes`; `None` for anything else (an unknown index, a bad
    /// length, text that is not UTF-8, bytes left over, more than [`MAX_REQUEST`] bytes).
    pub fn decode(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len() > MAX_REQUEST {
            return None;
        }
        let mut r = Reader(bytes);
        let request = match r.u8()? {
            0 => Request::Kill(SipId(r.u64()?)),
            1 => Request::Wait(SipId(r.u64()?)),
            2 => Request::ExitStatusOf(SipId(r.u64()?)),
            3 => Request::Events,
            4 => Request::Memory,
            5 => Request::Cpu(r.u32()?),
            6 => Request::ChannelAfter(if r.flag()? { Some(r.u64()?) } else { None }),
            7 => Request::MidProtocolDrops(r.str()?),
            8 => Request::LogLevel,
            9 => Request::SetLogLevel(*LogFilter::ALL.get(usize::from(r.u8()?))?),
            10 => Request::ConsoleWrite(r.str()?),
            11 => Request::Shutdown,
            12 => Request::KernelPanic(r.str()?),
            13 => Request::Replica(r.u32()?),
            14 => Request::BroadcastProbe(*Broadcast::ALL.get(usize::from(r.u8()?))?),
            15 => Request::ClaimName { name: r.str()?, sip: SipId(r.u64()?), contract: r.str()? },
            16 => Request::ReleaseName { name: r.str()?, sip: SipId(r.u64()?) },
            17 => Request::ResolveName(r.str()?),
            18 => Request::NameAfter(if r.flag()? { Some(r.str()?) } else { None }),
            19 => Request::RestartNames(*Protection::ALL.get(usize::from(r.u8()?))?),
            20 => Request::ProcessAfter(if r.flag()? { Some(SipId(r.u64()?)) } else { None }),
            21 => Request::Spawn {
                name: r.str()?,
                args: r.str()?,
                core: if r.flag()? { Some(r.u32()?) } else { None },
                protection: if r.flag()? { Some(*Protection::ALL.get(usize::from(r.u8()?))?) } else { None },
                startup: if r.flag()? { Some(r.u32()?) } else { None },
            },
            22 => Request::RunSelftests(r.str()?),
            _ => return None,
        };
        r.0.is_empty().then_some(request)
    }
}

/// `level`'s index in [`LogFilter::ALL`].
fn filter_index(level: LogFilter) -> u8 {
    LogFilter::ALL.iter().position(|l| *l == level).unwrap_or(0) as u8
}

/// Appends fields.
struct Writer<'o>(&'o mut Vec<u8>);

impl Writer<'_> {
    fn tag(&mut self, index: u8) -> &mut Self {
        self.u8(index)
    }

    fn u8(&mut self, value: u8) -> &mut Self {
        self.0.push(value);
        self
    }

    fn u32(&mut self, value: u32) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    fn u64(&mut self, value: u64) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    fn str(&mut self, text: &str) -> &mut Self {
        // A text too long for a request makes the request too long (`encode` then refuses it): the length is
        // cut here only so that it cannot wrap.
        self.u32(u32::try_from(text.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(text.as_bytes());
        self
    }
}

/// Takes fields from the front.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.bytes::<1>().map(|[b]| b)
    }

    fn flag(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    fn u32(&mut self) -> Option<u32> {
        self.bytes().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.bytes().map(u64::from_le_bytes)
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = usize::try_from(self.u32()?).ok()?;
        let (text, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        core::str::from_utf8(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChannelInfo, CpuInfo, EndHolder, NameInfo, ReplicaInfo};
    use channels::wire::{self, NoEndpoints};

    fn every_request() -> Vec<Request<'static>> {
        let mut all = alloc::vec![
            Request::Kill(SipId(7)),
            Request::Wait(SipId(u64::MAX)),
            Request::ExitStatusOf(SipId(0)),
            Request::Events,
            Request::Memory,
            Request::Cpu(3),
            Request::ChannelAfter(None),
            Request::ChannelAfter(Some(42)),
            Request::MidProtocolDrops("KvStore"),
            Request::LogLevel,
            Request::ConsoleWrite("héllo\n"),
            Request::Shutdown,
            Request::KernelPanic(""),
            Request::RunSelftests("ring3"),
            Request::Replica(1),
            Request::BroadcastProbe(Broadcast::OneByOne),
            Request::BroadcastProbe(Broadcast::Tree),
            Request::ClaimName { name: "echo.1", sip: SipId(9), contract: "Echo" },
            Request::ReleaseName { name: "x", sip: SipId(2) },
            Request::ResolveName("kv"),
            Request::NameAfter(None),
            Request::NameAfter(Some("a")),
            Request::ProcessAfter(None),
            Request::ProcessAfter(Some(SipId(12))),
            Request::Spawn { name: "echo", args: "", core: None, protection: None, startup: None },
            Request::Spawn {
                name: "kv",
                args: "a b",
                core: Some(1),
                protection: Some(Protection::Ring3Own),
                startup: Some(7)
            },
        ];
        all.extend(LogFilter::ALL.map(Request::SetLogLevel));
        all.extend(Protection::ALL.map(Request::RestartNames));
        all
    }

    #[test]
    fn every_request_survives_its_byte_form() {
        for request in every_request() {
            let mut bytes = Vec::new();
            request.encode(&mut bytes).expect("fits");
            assert_eq!(Request::decode(&bytes), Some(request));
            // Any strict prefix is refused, and so is a byte more.
            for cut in 0..bytes.len() {
                assert_eq!(Request::decode(&bytes[..cut]), None, "{request:?} cut at {cut}");
            }
            bytes.push(0);
            assert_eq!(Request::decode(&bytes), None, "{request:?} with a byte more");
        }
    }

    #[test]
    fn what_is_no_request_is_refused() {
        assert_eq!(Request::decode(&[]), None);
        assert_eq!(Request::decode(&[22]), None, "unknown index");
        assert_eq!(Request::decode(&[255]), None, "unknown index");
        assert_eq!(Request::decode(&[9, 6]), None, "no such level");
        assert_eq!(Request::decode(&[19, 3]), None, "no such mode");
        assert_eq!(Request::decode(&[6, 2]), None, "an option flag that is neither 0 nor 1");
        assert_eq!(Request::decode(&[17, 2, 0, 0, 0, 0xff, 0xfe]), None, "not UTF-8");
        assert_eq!(Request::decode(&[17, 0xff, 0xff, 0xff, 0xff, b'a']), None, "a length beyond the bytes");
        let mut long = alloc::vec![17u8];
        long.extend_from_slice(&(MAX_REQUEST as u32).to_le_bytes());
        long.resize(5 + MAX_REQUEST, b'a');
        assert_eq!(Request::decode(&long), None, "beyond MAX_REQUEST");
    }

    #[test]
    fn a_request_too_long_is_not_encoded() {
        let text = "x".repeat(MAX_CONSOLE_PIECE + 1);
        let mut out = alloc::vec![1, 2, 3];
        assert_eq!(Request::ConsoleWrite(&text).encode(&mut out), None);
        assert_eq!(out, [1, 2, 3], "left as it was");
        let text = "x".repeat(MAX_CONSOLE_PIECE);
        assert_eq!(Request::ConsoleWrite(&text).encode(&mut out), Some(()));
    }

    #[test]
    fn the_longest_spawn_fits_and_one_byte_more_of_arguments_does_not() {
        let name = "n".repeat(crate::SHORT_NAME_LEN);
        let args = "a".repeat(crate::MAX_ARGS_LEN);
        let spawn = |args| Request::Spawn {
            name: &name,
            args,
            core: Some(u32::MAX),
            protection: Some(Protection::Ring3Own),
            startup: Some(u32::MAX),
        };
        assert_eq!(spawn(&args).encode(&mut Vec::new()), Some(()));
        // The kernel refuses such arguments anyway (`ArgumentsTooLong`); the request still fits a little more.
        let beyond = "a".repeat(MAX_REQUEST);
        assert_eq!(spawn(&beyond).encode(&mut Vec::new()), None);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder() {
        // A small deterministic generator: every length up to 64, many seeds, biased towards valid indices.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (state >> (i % 8 * 8)) as u8 ^ i as u8).collect();
            let mut bytes = bytes;
            if let Some(first) = bytes.first_mut() {
                *first %= 23;
            }
            if let Some(request) = Request::decode(&bytes) {
                let mut again = Vec::new();
                request.encode(&mut again).expect("a decoded request fits");
                assert_eq!(again, bytes, "decoding is the inverse of encoding");
            }
        }
    }

    #[test]
    fn every_answer_fits_the_answer_buffer() {
        let longest = |bytes: Vec<u8>| bytes.len();
        let name = NameInfo::new(&"n".repeat(contracts::MAX_NAME_LEN), &"c".repeat(32), SipId(u64::MAX), u32::MAX);
        let sizes = [
            longest(wire::encode(Some(name.expect("valid")), &mut NoEndpoints).expect("plain")),
            longest(
                wire::encode(
                    Some(CpuInfo {
                        index: 1,
                        apic_id: 1,
                        acpi_id: 1,
                        online: true,
                        boot: false,
                        timer_ticks: 1,
                        timer_hz: 1,
                        run_queue: 1,
                        blocked: 1,
                        start_nanos: u64::MAX,
                    }),
                    &mut NoEndpoints,
                )
                .expect("plain"),
            ),
            longest(wire::encode(crate::MemoryInfo::default(), &mut NoEndpoints).expect("plain")),
            longest(
                wire::encode(
                    Some(ChannelInfo { id: 1, ends: [EndHolder::Sip(SipId(1)), EndHolder::InTransit] }),
                    &mut NoEndpoints,
                )
                .expect("plain"),
            ),
            longest(
                wire::encode(
                    Some(ReplicaInfo {
                        core: 0,
                        online: true,
                        version: 0,
                        digest: 0,
                        entries: 0,
                        names_version: 0,
                        names_digest: 0,
                        names: 0,
                    }),
                    &mut NoEndpoints,
                )
                .expect("plain"),
            ),
            longest(wire::encode(crate::EventCounts::default(), &mut NoEndpoints).expect("plain")),
            longest(
                wire::encode(
                    Some(crate::ProbeReport { cycles: u64::MAX, messages: u64::MAX, busiest: u64::MAX }),
                    &mut NoEndpoints,
                )
                .expect("plain"),
            ),
            longest(
                wire::encode(
                    Some(crate::ProcessInfo {
                        id: SipId(1),
                        name: crate::ShortName::new(&"p".repeat(40)),
                        core: 1,
                        state: crate::ProcessState::Blocked,
                        heap_used: 1,
                        heap_quota: 1,
                        threads: 1,
                        channels: 1,
                        exchange_bytes: 1,
                        exchange_quota: 1,
                        protection: Protection::Ring3Own,
                    }),
                    &mut NoEndpoints,
                )
                .expect("plain"),
            ),
            // A refused spawn: the largest error, and a startup handle (as 4 bytes, what an end encodes to).
            longest(
                wire::encode(
                    Err::<SipId, _>((
                        crate::SpawnError::BadManifest(crate::ManifestError::BeyondPolicy {
                            what: crate::Resource::StackSize,
                            asked: usize::MAX,
                            allowed: usize::MAX,
                        }),
                        Some(u32::MAX),
                    )),
                    &mut NoEndpoints,
                )
                .expect("plain"),
            ),
            longest(
                wire::encode(
                    Err::<SipId, _>((
                        crate::SpawnError::BadManifest(crate::ManifestError::UnknownContract(crate::ShortName::new(
                            &"c".repeat(40),
                        ))),
                        Some(u32::MAX),
                    )),
                    &mut NoEndpoints,
                )
                .expect("plain"),
            ),
        ];
        assert_eq!(sizes[0], 111, "the largest answer, as documented");
        assert!(sizes.iter().all(|size| *size <= MAX_ANSWER), "{sizes:?}");
    }
}
