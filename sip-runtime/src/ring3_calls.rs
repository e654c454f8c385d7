//! The ring-3 system-call ABI: call numbers and the answers that mean an error, shared by the kernel and
//! ring-3 programs.
//!
//! A call is `syscall` with the number in `rax` and up to six arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`,
//! `r9`; the answer comes back in `rax`. Everything that crosses is plain data: numbers, and ring-3 addresses
//! with lengths, which the kernel checks against the caller's own address space and copies (it never follows
//! them). Answers from [`FIRST_ERROR`] up are errors; below it, each call's documented result.
//!
//! This is the first part of the ABI: what ring-3 programs need to run, be measured and fail. The calls of
//! `KernelAbi` (channels, spawning, names) follow with the ring-3 build of the services.

/// Does nothing; answers 0. The cost of a round trip into the kernel.
pub const NULL: u64 = 0;
/// Ends the calling SIP with the exit status in the first argument (0: success, else a failure code, its low
/// 32 bits). Never answers.
pub const EXIT: u64 = 1;
/// Gives the core to another ready thread; answers 0.
pub const YIELD: u64 = 2;
/// Logs the UTF-8 text at (first argument, length in the second) at level (third: 0 error, 1 warn, 2 info,
/// 3 debug), prefixed with the SIP's name; a text longer than `MAX_LOG_LINE` is cut. Answers 0.
pub const LOG: u64 = 3;
/// Sleeps at least the first argument's nanoseconds; answers 0.
pub const SLEEP: u64 = 4;
/// Answers the uptime in nanoseconds.
pub const NOW: u64 = 5;

/// The lowest answer that is an error.
pub const FIRST_ERROR: u64 = u64::MAX - 15;
/// The call number is not one of these.
pub const NO_SUCH_CALL: u64 = u64::MAX;
/// An address or range is not the caller's readable (or writable) ring-3 memory.
pub const BAD_ADDRESS: u64 = u64::MAX - 1;
/// An argument is out of range (a length beyond the call's limit, an unknown level).
pub const BAD_ARGUMENT: u64 = u64::MAX - 2;
/// The text is not UTF-8.
pub const NOT_UTF8: u64 = u64::MAX - 3;
