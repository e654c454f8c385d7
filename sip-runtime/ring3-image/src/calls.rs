//! The ring-3 calls: `syscall` with the numbers of `sip_runtime::ring3_calls`, as safe functions.
//!
//! Safe because a call only passes numbers and ring-3 addresses of this program's own memory to the kernel,
//! which checks everything it is given (docs/protection.md). They live in this crate, which only ever runs in
//! ring 3: executed in ring 0, `syscall` would swap GS under the kernel's feet, so no crate that ring-0 code
//! links may offer them.
#![allow(unsafe_code, reason = "the ring-3 calls are `syscall` instructions")]

use core::arch::asm;
use sip_runtime::ring3_calls as numbers;

/// `syscall` with number `number` and up to three arguments; the kernel's answer.
fn call3(number: u64, a: u64, b: u64, c: u64) -> u64 {
    let answer: u64;
    // SAFETY: `syscall` in ring 3 enters the kernel, which preserves every register but rax (the answer), rcx
    // and r11 (declared clobbered) and touches no memory of this program's but what the call's contract says
    // (none of these calls writes to memory yet).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => answer,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    answer
}

/// Log levels of the `LOG` call.
#[derive(Clone, Copy)]
#[allow(dead_code, reason = "the levels of the call; the programs use some")]
pub enum Level {
    /// Something failed.
    Error = 0,
    /// Something is wrong.
    Warn = 1,
    /// For the record.
    Info = 2,
    /// Details.
    Debug = 3,
}

/// Logs `text` under the SIP's name; the kernel's answer (0, or an error of `ring3_calls`).
pub fn log(level: Level, text: &str) -> u64 {
    call3(numbers::LOG, text.as_ptr() as u64, text.len() as u64, level as u64)
}

/// Ends the SIP with `status` (0: success).
pub fn exit(status: u32) -> ! {
    call3(numbers::EXIT, u64::from(status), 0, 0);
    // The kernel never returns from EXIT; were it to, the SIP must not go on.
    loop {
        core::hint::spin_loop();
    }
}

/// `THREAD_START`: a thread of this SIP at `rip` (this image's code) with `argument` in `rdi`; the kernel's
/// answer (the thread's id, or an error number).
pub fn thread_start(rip: u64, argument: u64) -> u64 {
    call3(numbers::THREAD_START, rip, argument, 0)
}

/// Gives the core to another ready thread.
pub fn yield_now() {
    call3(numbers::YIELD, 0, 0, 0);
}

/// Sleeps at least `nanos`.
pub fn sleep(nanos: u64) {
    call3(numbers::SLEEP, nanos, 0, 0);
}

/// Nanoseconds since boot.
pub fn now() -> u64 {
    call3(numbers::NOW, 0, 0, 0)
}

/// The core this SIP runs on.
pub fn core() -> u32 {
    call3(numbers::CORE, 0, 0, 0) as u32
}

/// Whether the cycle counter counts guest instructions.
pub fn icount() -> bool {
    call3(numbers::ICOUNT, 0, 0, 0) == 1
}

/// `bytes` more heap: where the new memory starts, or `None` if the kernel refused (quota, memory).
pub fn grow(bytes: u64) -> Option<u64> {
    let answer = call3(numbers::GROW, bytes, 0, 0);
    (answer < numbers::FIRST_ERROR).then_some(answer)
}

/// Ends the SIP as panicked with `message`.
pub fn panic(message: &str) -> ! {
    call3(numbers::PANIC, message.as_ptr() as u64, message.len() as u64, 0);
    // Only a message the kernel cannot read returns here: end anyway.
    exit(101)
}

/// The cycle counter (`rdtsc`, which the kernel leaves readable in ring 3; guest instructions under `--icount`).
pub fn cycles() -> u64 {
    // SAFETY: `rdtsc` reads the time-stamp counter and nothing else.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Any call, with raw numbers (the tests of bad arguments).
pub fn raw(number: u64, a: u64, b: u64, c: u64) -> u64 {
    call3(number, a, b, c)
}

/// A call with four arguments, whatever they are.
pub fn raw4(number: u64, a: u64, b: u64, c: u64, d: u64) -> u64 {
    call4(number, a, b, c, d)
}

/// A call with six arguments, whatever they are.
pub fn raw6(number: u64, args: [u64; 6]) -> u64 {
    let answer: u64;
    // SAFETY: as in `call4`.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => answer,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    answer
}

/// A log line built without an allocator: formatted text up to `sip_runtime::MAX_LOG_LINE` bytes, cut there.
pub struct Line {
    bytes: [u8; sip_runtime::MAX_LOG_LINE],
    len: usize,
}

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Self { bytes: [0; sip_runtime::MAX_LOG_LINE], len: 0 }
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        // Only whole `&str`s are appended, cut at a character boundary.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        let room = self.bytes.len() - self.len;
        let mut take = text.len().min(room);
        while !text.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// `syscall` with number `number` and four arguments; the kernel's answer. The kernel may write this program's
/// memory where a call's contract says (a receive buffer, a status block).
fn call4(number: u64, a: u64, b: u64, c: u64, d: u64) -> u64 {
    let answer: u64;
    // SAFETY: as in `call3`; the asm is not `nomem`, so the compiler assumes the kernel may have written memory
    // this program handed it (the receive and status calls do).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => answer,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    answer
}

/// `CHANNEL_SEND_SHORT`: `bytes` (at most `REGISTER_BYTES`) on `handle`, in registers; the kernel's answer.
fn send_short(handle: u32, words: [u64; 4], len: usize) -> u64 {
    let word = |i: usize| words[i];
    let answer: u64;
    // SAFETY: as in `call3`; this call reads only its registers.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") numbers::CHANNEL_SEND_SHORT => answer,
            in("rdi") u64::from(handle),
            in("rsi") len as u64,
            in("rdx") word(0),
            in("r10") word(1),
            in("r8") word(2),
            in("r9") word(3),
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    answer
}

/// `CHANNEL_RECV` on `handle` with the buffer (`at`, `room`): the answer, and the registers a short message comes
/// back in.
pub fn recv_call(handle: u32, at: u64, room: u64, wait: bool) -> (u64, [u64; 4]) {
    let answer: u64;
    let mut words = [0u64; 4];
    // SAFETY: as in `call4`: the kernel may write the buffer (a long message) and answers a short one in
    // `rdi`, `rsi`, `rdx`, `r10`, declared as outputs.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") numbers::CHANNEL_RECV => answer,
            inlateout("rdi") u64::from(handle) => words[0],
            inlateout("rsi") at => words[1],
            inlateout("rdx") room => words[2],
            inlateout("r10") u64::from(wait) => words[3],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    (answer, words)
}

/// `CHANNEL_CALL`: the message of `len` bytes (at most `CALL_BYTES`) in the first three of `words` on `handle`,
/// in registers, then a waiting receive on it with the buffer (`at`, `room`): the answer, and the registers a
/// short answer comes back in.
fn call_call(handle: u32, words: [u64; 4], len: usize, at: u64, room: u64) -> (u64, [u64; 4]) {
    let answer: u64;
    let mut back = [0u64; 4];
    // SAFETY: as in `recv_call`: the kernel reads the registers, may write the buffer (a long answer) and answers
    // a short one in `rdi`, `rsi`, `rdx`, `r10`, declared as outputs.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") numbers::CHANNEL_CALL => answer,
            inlateout("rdi") u64::from(handle) | (len as u64) << 32 => back[0],
            inlateout("rsi") at => back[1],
            inlateout("rdx") room => back[2],
            inlateout("r10") words[0] => back[3],
            in("r8") words[1],
            in("r9") words[2],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    (answer, back)
}

/// The ring-3 build of `channels` over the channel calls.
pub struct Channels;

/// The one instance, installed by [`install_channels`].
pub static CHANNELS: Channels = Channels;

/// Installs the channel transport (before a service's entry runs).
pub fn install_channels() {
    // SAFETY: this is the ring-3 runtime, the trusted base of a ring-3 SIP's own side: it installs the
    // platform once, at startup.
    let trusted = unsafe { channels::trusted::Trusted::new() };
    let _ = channels::raw::install(&trusted, &CHANNELS);
}

/// The SIP's startup endpoint (once: the runtime takes it at most once).
pub fn startup_endpoint() -> Option<channels::raw::RawEndpoint<(), channels::ExAny>> {
    // SAFETY: as in `install_channels`.
    let trusted = unsafe { channels::trusted::Trusted::new() };
    channels::raw::startup(&trusted)
}

use channels::raw::{CallRefused, Message, RecvRefused, SendRefused, Short, Status, Transport};

impl Transport for Channels {
    fn open(&self, pair: &str) -> Result<(u32, u32), channels::AllocError> {
        match call3(numbers::CHANNEL_OPEN, pair.as_ptr() as u64, pair.len() as u64, 0) {
            answer if answer >= numbers::FIRST_ERROR => Err(channels::AllocError),
            answer => Ok((answer as u32, (answer >> 32) as u32)),
        }
    }

    fn send(&self, handle: u32, message: Message<'_>) -> Result<(), SendRefused> {
        let answer = match message {
            Message::Short(words, len) => send_short(handle, words, len),
            Message::Long(bytes) => {
                call3(numbers::CHANNEL_SEND, u64::from(handle), bytes.as_ptr() as u64, bytes.len() as u64)
            }
        };
        match answer {
            0 => Ok(()),
            numbers::CLOSED => Err(SendRefused::Closed),
            _ => Err(SendRefused::Broken),
        }
    }

    fn recv(&self, handle: u32, buffer: &mut alloc::vec::Vec<u8>, wait: bool) -> Result<Option<Short>, RecvRefused> {
        loop {
            let room = buffer.capacity();
            let (answer, words) = recv_call(handle, buffer.as_mut_ptr() as u64, room as u64, wait);
            match answer {
                numbers::EMPTY => return Err(RecvRefused::Empty),
                answer if answer >= numbers::FIRST_ERROR => return Err(RecvRefused::Closed),
                len if len as usize <= numbers::REGISTER_BYTES => {
                    return Ok(Short::new(numbers::from_words(words), len as usize));
                }
                len if len as usize <= room => {
                    // SAFETY: the kernel wrote `len` bytes (at most the room) at the start of the buffer.
                    unsafe { buffer.set_len(len as usize) };
                    return Ok(None);
                }
                // Too large for the room: the kernel keeps it for a call with enough.
                len => {
                    buffer.clear();
                    buffer.reserve(len as usize);
                }
            }
        }
    }

    fn send_then_recv(
        &self,
        handle: u32,
        message: Message<'_>,
        buffer: &mut alloc::vec::Vec<u8>,
    ) -> Result<Option<Short>, CallRefused> {
        let (words, len) = match message {
            Message::Short(words, len) if len <= numbers::CALL_BYTES => (words, len),
            _ => return channels::raw::send_then_recv_in_two(self, handle, message, buffer),
        };
        let (answer, words) = call_call(handle, words, len, buffer.as_mut_ptr() as u64, buffer.capacity() as u64);
        match answer {
            numbers::NOT_SENT => Err(CallRefused::NotSent),
            // A broken channel (the send's or the receive's) is closed for both sides: no answer will come.
            answer if answer >= numbers::FIRST_ERROR => Err(CallRefused::Closed),
            len if len as usize <= numbers::REGISTER_BYTES => Ok(Short::new(numbers::from_words(words), len as usize)),
            len if len as usize <= buffer.capacity() => {
                // SAFETY: the kernel wrote `len` bytes (at most the room) at the start of the buffer.
                unsafe { buffer.set_len(len as usize) };
                Ok(None)
            }
            // Sent, but the answer is larger than the room: it waits for a receive with enough.
            _ => self.recv(handle, buffer, true).map_err(|_| CallRefused::Closed),
        }
    }

    fn status(&self, handle: u32) -> Option<Status> {
        let mut words = [0u64; 5];
        match call3(numbers::CHANNEL_STATUS, u64::from(handle), words.as_mut_ptr() as u64, 0) {
            0 => Some(Status {
                peer_closed: words[0] != 0,
                queued: words[1] as usize,
                in_flight: words[2] as usize,
                send_capacity: words[3] as usize,
                recv_capacity: words[4] as usize,
            }),
            _ => None,
        }
    }

    fn are_peers(&self, a: u32, b: u32) -> bool {
        call3(numbers::CHANNEL_PEERS, u64::from(a), u64::from(b), 0) == 1
    }

    fn wait_any(&self, handles: &[u32]) {
        call3(numbers::CHANNEL_WAIT, handles.as_ptr() as u64, handles.len() as u64, 0);
    }

    fn close(&self, handle: u32) {
        call3(numbers::CHANNEL_CLOSE, u64::from(handle), 0, 0);
    }

    fn dropped_mid_protocol(&self, contract: &'static str, state: &'static str, side: &'static str) {
        // Logged, as the kernel logs a ring-0 SIP's (at debug level, under this SIP's name); the kernel's counts
        // are of ring-0 endpoints only.
        let mut line = Line::new();
        let _ = core::fmt::write(
            &mut line,
            format_args!(
                "dropped its {contract} {side} endpoint in state {state}, its peer still there (mid-protocol)"
            ),
        );
        log(Level::Debug, line.as_str());
    }
}

/// `NAMES_CONNECT`: hands `server` (by its handle) to the name service on `core` (default: this one).
pub fn names_connect(core: Option<u32>, server: sip_runtime::NameServiceServer) -> bool {
    // The handle, as a message carrying the end would name it (the end is given up: the kernel has it now).
    let Ok(bytes) = channels::wire::encode(server, &mut channels::wire::NoEndpoints) else { return false };
    let Ok(handle) = <[u8; 4]>::try_from(bytes.as_slice()) else { return false };
    let core = core.map_or(u64::MAX, u64::from);
    call3(numbers::NAMES_CONNECT, u64::from(u32::from_le_bytes(handle)), core, 0) == 1
}

/// `KERNEL`: asks the kernel `request` and decodes its answer as a `T` (the request's answer type, as
/// `kernel_requests::Request` names it); `None` if the request does not fit a call or the kernel refused it.
pub fn ask<T: channels::Exchangeable>(request: sip_runtime::kernel_requests::Request<'_>) -> Option<T> {
    ask_telling(request).ok().flatten()
}

/// Why a `KERNEL` request got no answer: it was never done (it does not fit a call, or the kernel refused it
/// before doing anything, with this error answer).
pub struct NotDone;

/// [`ask`], telling a request the kernel never did (`Err`: whatever it names is still the SIP's) from one it did
/// whose answer does not decode (`Ok(None)`: a kernel bug, never expected).
pub fn ask_telling<T: channels::Exchangeable>(
    request: sip_runtime::kernel_requests::Request<'_>,
) -> Result<Option<T>, NotDone> {
    use sip_runtime::kernel_requests::MAX_ANSWER;
    let mut bytes = alloc::vec::Vec::new();
    request.encode(&mut bytes).ok_or(NotDone)?;
    let mut answer = [0u8; MAX_ANSWER];
    let at = answer.as_mut_ptr() as u64;
    let len = call4(numbers::KERNEL, bytes.as_ptr() as u64, bytes.len() as u64, at, MAX_ANSWER as u64);
    if len >= numbers::FIRST_ERROR {
        return Err(NotDone);
    }
    let answer = answer.get(..usize::try_from(len).map_err(|_| NotDone)?).ok_or(NotDone)?;
    // Handles in the answer (a startup end given back) become endpoints, as in a received message.
    Ok(channels::wire::decode(answer, &mut channels::wire::NoEndpoints).ok())
}
