//! The ring-3 system-call ABI: call numbers and the answers that mean an error, shared by the kernel and
//! ring-3 programs.
//!
//! A call is `syscall` with the number in `rax` and up to six arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`,
//! `r9`; the answer comes back in `rax`. Everything that crosses is plain data: numbers, and ring-3 addresses
//! with lengths, which the kernel checks against the caller's own address space and copies (it never follows
//! them). Answers from [`FIRST_ERROR`] up are errors; below it, each call's documented result.
//!
//! This is the first part of the ABI: what ring-3 programs and services without channels need to run, allocate,
//! be measured and fail. The calls of `KernelAbi` that involve channels, spawning and names follow.

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
/// Maps the first argument's bytes more (rounded up to pages) at the end of the caller's heap, within its heap
/// quota; answers where the new memory starts (the heap's old end). `OUT_OF_QUOTA` or `OUT_OF_MEMORY` otherwise.
pub const GROW: u64 = 6;
/// Answers the index of the core the caller runs on.
pub const CORE: u64 = 7;
/// Answers 1 if the cycle counter counts guest instructions (QEMU `-icount`), else 0.
pub const ICOUNT: u64 = 8;
/// Ends the calling SIP as panicked, with the UTF-8 message at (first argument, length in the second), cut at
/// `MAX_LOG_LINE`. Never answers.
pub const PANIC: u64 = 9;

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
/// The caller's quota does not allow it.
pub const OUT_OF_QUOTA: u64 = u64::MAX - 4;
/// Memory ran out.
pub const OUT_OF_MEMORY: u64 = u64::MAX - 5;
