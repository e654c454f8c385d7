//! `kernel-requests`: what a ring-3 SIP without capabilities can do with the `KERNEL` call
//! (`sip_runtime::kernel_requests`), each checked against the answer the kernel owes it. Safe code: the calls
//! pass numbers and this program's own addresses.
//!
//! First bytes that are no request, lengths and rooms out of range, and buffers that are not its memory (kernel
//! memory, its own read-only code); then, through the ABI every service uses, each privileged request (refused
//! as in ring 0: the program's manifest grants nothing) and the requests anyone may make (answered). Exits with
//! 0 if every answer was the documented one, else with the number of the first step that was not.

use crate::abi::RING3;
use crate::calls;
use channels::Exchangeable;
use sip_runtime::kernel_requests::{MAX_ANSWER, MAX_REQUEST, Request};
use sip_runtime::ring3_calls as c;
use sip_runtime::{
    EventCounts, KernelAbi, KillError, LogFilter, MemoryInfo, NameRegistryError, NotPermitted, Protection,
    RestartError, SipId, SpawnError, Startup,
};

/// An address in kernel memory (the start of the higher half).
const KERNEL: u64 = 0xffff_8000_0000_0000;

/// The raw `KERNEL` call with `request`'s bytes, answered into `out` with `room`.
fn raw(request: &[u8], out: u64, room: u64) -> u64 {
    calls::raw4(c::KERNEL, request.as_ptr() as u64, request.len() as u64, out, room)
}

/// A spawn with `value` as its startup value is refused for want of `ProcessControl`, and the value comes back
/// whole (its end went to the kernel as a handle and came back as another).
fn refused_and_given_back<E: Exchangeable + Send>(
    value: E,
    spawn: impl FnOnce(Startup) -> Result<SipId, (SpawnError, Option<Startup>)>,
) -> bool {
    let Ok(startup) = Startup::new(value) else { return false };
    match spawn(startup) {
        Err((SpawnError::NotPermitted, Some(back))) => back.take::<E>().is_some(),
        _ => false,
    }
}

/// Runs the checks; 0 if the kernel answered each as documented.
pub fn run(_: &str) -> u32 {
    let mut answer = [0u8; MAX_ANSWER];
    let out = answer.as_mut_ptr() as u64;
    let room = MAX_ANSWER as u64;
    // `LogLevel`: a request anyone may make, one byte.
    let log_level = [8u8];
    let checks: [&dyn Fn() -> bool; 13] = [
        // 1: a well-formed request is answered (its answer's length), and the answer decodes.
        &|| raw(&log_level, out, room) == 4,
        // 2: bytes that are no request: an unknown index, a truncated one, trailing bytes, no bytes at all, text
        // that is not UTF-8, a length beyond the bytes.
        &|| {
            [
                &[23u8][..],
                &[255],
                &[0, 1, 2],
                &[3, 0],
                &[],
                &[17, 2, 0, 0, 0, 0xff, 0xfe],
                &[17, 0xff, 0xff, 0xff, 0xff],
            ]
            .iter()
            .all(|bytes| raw(bytes, out, room) == c::BAD_ARGUMENT)
        },
        // 3: a request longer than any, and a room smaller than any answer may need: refused before anything.
        &|| {
            let long = [0u8; MAX_REQUEST + 1];
            raw(&long, out, room) == c::BAD_ARGUMENT
                && raw(&log_level, out, room - 1) == c::BAD_ARGUMENT
                && raw(&log_level, out, 0) == c::BAD_ARGUMENT
                && calls::raw4(c::KERNEL, log_level.as_ptr() as u64, u64::MAX, out, room) == c::BAD_ARGUMENT
        },
        // 4: a request in kernel memory, an answer buffer in kernel memory, one in this program's read-only code,
        // and one that runs off the end of the address space.
        &|| {
            let code = run as fn(&str) -> u32 as usize as u64;
            calls::raw4(c::KERNEL, KERNEL, 1, out, room) == c::BAD_ADDRESS
                && raw(&log_level, KERNEL, room) == c::BAD_ADDRESS
                && raw(&log_level, code, room) == c::BAD_ADDRESS
                && raw(&log_level, u64::MAX - 8, room) == c::BAD_ADDRESS
        },
        // 5: process control without `ProcessControl`: refused, whoever the target (this SIP, the kernel's
        // first SIP, nobody).
        &|| [SipId(0), SipId(1), SipId(u64::MAX)].into_iter().all(|id| RING3.kill(id) == Err(KillError::NotPermitted)),
        // 6: the name registry without `NameRegistry`: no claim, no release of anyone's name.
        &|| {
            RING3.claim_name("stolen", SipId(1), "Echo") == Err(NameRegistryError::NotPermitted)
                && RING3.release_name("stolen", SipId(1)) == Err(NameRegistryError::NotPermitted)
                && RING3.claim_name(&"x".repeat(MAX_REQUEST), SipId(1), "Echo") == Err(NameRegistryError::Invalid)
        },
        // 7: administration without `SystemAdmin`: no restart of the name service, no log level, no shutdown,
        // no kernel panic, no self-tests (checked before any thread is started for them).
        &|| {
            RING3.restart_names(Protection::Ring3) == Err(RestartError::NotPermitted)
                && RING3.set_log_level(LogFilter::Trace) == Err(NotPermitted)
                && RING3.shutdown() == NotPermitted
                && RING3.kernel_panic("from ring 3") == NotPermitted
                && RING3.run_selftests("") == Err(NotPermitted)
        },
        // 8: the console without `Console`, also in pieces longer than a request.
        &|| {
            RING3.console_write("not mine to write") == Err(NotPermitted)
                && RING3.console_write(&"é".repeat(MAX_REQUEST)) == Err(NotPermitted)
        },
        // 9: system information without `SystemInfo`: nothing.
        &|| {
            RING3.events() == EventCounts::default()
                && RING3.memory() == MemoryInfo::default()
                && RING3.cpu(0).is_none()
                && RING3.channel_after(None).is_none()
                && RING3.replica(0).is_none()
                && RING3.exit_status_of(SipId(1)).is_none()
                && RING3.process_after(None).is_none()
                && RING3.broadcast_probe(sip_runtime::Broadcast::Tree).is_none()
        },
        // 10: what anyone may ask: the log level, a name that is not bound, waiting for nobody.
        &|| {
            RING3.log_level() != LogFilter::Off
                && RING3.resolve_name("no-such-name-anywhere").is_none()
                && RING3.wait(SipId(u64::MAX)) == Err(KillError::NoSuchProcess)
        },
        // 11: the listing of names is bounded by the registry, whatever comes after (a name no one could bind).
        &|| {
            let mut after: Option<alloc::string::String> = None;
            let mut seen = 0;
            while let Some(info) = RING3.name_after(after.as_deref()) {
                seen += 1;
                if seen > 10_000 {
                    return false;
                }
                after = Some(info.name().into());
            }
            RING3.name_after(Some("\u{10ffff}")).is_none()
        },
        // 12: the typed path decodes what the raw one answered: `Request::LogLevel` through `ask`.
        &|| calls::ask::<LogFilter>(Request::LogLevel).is_some(),
        // 13: spawning without `ProcessControl`, in any mode and with a startup value: refused, and the value
        // (an Echo server end) comes back to be used; a startup handle that is not this SIP's is refused
        // before anything is done.
        &|| {
            refused_and_given_back(contracts::echo::channel().1, |s| RING3.spawn("echo", "", None, Some(s)))
                && refused_and_given_back(contracts::echo::channel().1, |s| {
                    RING3.spawn_protected("echo", "", Some(0), Protection::Ring3Own, Some(s))
                })
                && matches!(RING3.spawn("template", "", None, None), Err((SpawnError::NotPermitted, None)))
                && {
                    let forged =
                        Request::Spawn { name: "echo", args: "", core: None, protection: None, startup: Some(9999) };
                    let mut bytes = alloc::vec::Vec::new();
                    forged.encode(&mut bytes).is_some() && raw(&bytes, out, room) == c::BAD_HANDLE
                }
        },
    ];
    for (step, check) in checks.iter().enumerate() {
        if !check() {
            return step as u32 + 1;
        }
    }
    0
}
