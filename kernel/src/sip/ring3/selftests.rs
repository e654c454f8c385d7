//! Self-tests of ring-3 SIPs: hand-assembled programs that commit each fault class of the fault matrix in ring 3
//! (and a well-behaved one), in both ring-3 modes; a spinning program preempted and killed; spawn and exit
//! cycles that give every frame back.
//!
//! The programs are machine code written out byte by byte (x86-64), each with its assembly beside it. One that
//! survives its fault exits with [`SURVIVED`], so a test can tell "nothing stopped it" from "the MMU did".

use super::{Code, Program, spawn};
use crate::memory::frames;
use sip_runtime::{Manifest, Protection, RestartPolicy, SipContext, SpawnError, Startup};

/// The exit code of a program whose fault nothing stopped.
const SURVIVED: u8 = 7;

/// A program's manifest: the kernel's default policy, a 16 KiB stack.
const fn manifest(name: &'static str) -> Manifest {
    fn never(_: SipContext) {}
    Manifest {
        name,
        entry: sip_runtime::Entry::Thread(never),
        exports: &[],
        imports: &[],
        heap_quota: 64 * 1024,
        stack_size: 16 * 1024,
        restart: RestartPolicy::Never,
        capabilities: &[],
        crate_name: "kernel-selftests",
        exchange_quota: 64 * 1024,
        threads: 1,
        protection: Protection::Ring3Own,
    }
}

/// `program!(NAME, "name", [bytes])`, or `[bytes; survives]` to append `exit(SURVIVED)`: mov edi, 7; mov eax, 1
/// (EXIT); syscall.
macro_rules! program {
    ($name:ident, $text:literal, [$($byte:expr),* $(,)?]) => {
        static $name: Program = Program { manifest: manifest($text), code: Code::Flat(&[$($byte),*]) };
    };
    ($name:ident, $text:literal, [$($byte:expr),*; survives]) => {
        static $name: Program = Program {
            manifest: manifest($text),
            code: Code::Flat(&[$($byte,)* 0xbf, SURVIVED, 0, 0, 0, 0xb8, 1, 0, 0, 0, 0x0f, 0x05]),
        };
    };
}

program!(CLI, "r3-cli", [0xfa; survives]); // cli
program!(HLT, "r3-hlt", [0xf4; survives]); // hlt
program!(WRMSR, "r3-wrmsr", [0x0f, 0x30; survives]); // wrmsr
program!(MOV_CR3, "r3-mov-cr3", [0x0f, 0x22, 0xd8; survives]); // mov cr3, rax
program!(INT3, "r3-int3", [0xcc; survives]); // int3 (its gate is for ring 0 only)
program!(INT80, "r3-int80", [0xcd, 0x80; survives]); // int 0x80 (no gate)
// mov rax, [rsp] (the argument); mov byte ptr [rax], 1
program!(WRITE_ARG, "r3-write", [0x48, 0x8b, 0x04, 0x24, 0xc6, 0x00, 0x01; survives]);
// mov rax, [rsp]; mov al, [rax]
program!(READ_ARG, "r3-read", [0x48, 0x8b, 0x04, 0x24, 0x8a, 0x00; survives]);
// mov rax, [rsp]; jmp rax
program!(JUMP_ARG, "r3-jump", [0x48, 0x8b, 0x04, 0x24, 0xff, 0xe0]);
program!(DIVIDE, "r3-divide", [0x31, 0xc9, 0xf7, 0xf1; survives]); // xor ecx, ecx; div ecx
program!(UD2, "r3-ud2", [0x0f, 0x0b]); // ud2
program!(OVERFLOW, "r3-overflow", [0x50, 0xeb, 0xfd]); // 1: push rax; jmp 1b
program!(SPIN, "r3-spin", [0xeb, 0xfe]); // 1: jmp 1b
// mov rdi, [rsp]; mov esi, 16; mov edx, 2; mov eax, 3 (LOG); syscall; mov edi, eax; mov eax, 1; syscall
program!(
    LOG_ARG,
    "r3-log-arg",
    [
        0x48, 0x8b, 0x3c, 0x24, 0xbe, 16, 0, 0, 0, 0xba, 2, 0, 0, 0, 0xb8, 3, 0, 0, 0, 0x0f, 0x05, 0x89, 0xc7, 0xb8, 1,
        0, 0, 0, 0x0f, 0x05,
    ]
);
// mov eax, 99 (no such call); syscall; mov edi, eax; mov eax, 1; syscall
program!(UNKNOWN_CALL, "r3-unknown", [0xb8, 99, 0, 0, 0, 0x0f, 0x05, 0x89, 0xc7, 0xb8, 1, 0, 0, 0, 0x0f, 0x05]);
// lea rdi, [rip + 26] (the text); mov esi, 17; mov edx, 2 (info); mov eax, 3 (LOG); syscall;
// mov edi, eax (its answer: 0); mov eax, 1; syscall; "hello from ring 3"
program!(
    HELLO,
    "r3-hello",
    [
        0x48, 0x8d, 0x3d, 26, 0, 0, 0, 0xbe, 17, 0, 0, 0, 0xba, 2, 0, 0, 0, 0xb8, 3, 0, 0, 0, 0x0f, 0x05, 0x89, 0xc7,
        0xb8, 1, 0, 0, 0, 0x0f, 0x05, b'h', b'e', b'l', b'l', b'o', b' ', b'f', b'r', b'o', b'm', b' ', b'r', b'i',
        b'n', b'g', b' ', b'3',
    ]
);
// The syscall fuzzer: 100,000 calls whose numbers and arguments come from a xorshift64 seeded with the argument.
//     mov r12, [rsp]             ; the seed
//     mov r13d, 100000
// 1:  xorshift64 r12 (<< 13, >> 7, << 17)
//     rdi, rsi, rdx, r10, r8, r9 = r12 rotated by 0, 21, 42, 11, 33, 50
//     if r12 & 0x10: rdi = rsp - 256 (its own stack), esi &= 0x3ff, edx = 3   ; a real buffer, maybe too long
//     else: edx &= 7                                                        ; a random pointer, any level
//     rax = r12 >> 59; if rax == 31: rax = r12                              ; 0-30 (every call, and
//                                                                          ; unknown ones), or any 64-bit number
//     if rax == 1 (exit) or 9 (panic): rax = 0; if rax == 4 (sleep): edi = 0 ; keep running, never wait a tick
//     syscall; dec r13d; jnz 1b
//     exit(0)
program!(
    FUZZER,
    "r3-fuzzer",
    [
        0x4c, 0x8b, 0x24, 0x24, 0x41, 0xbd, 0xa0, 0x86, 0x01, 0x00, 0x4c, 0x89, 0xe0, 0x48, 0xc1, 0xe0, 0x0d, 0x49,
        0x31, 0xc4, 0x4c, 0x89, 0xe0, 0x48, 0xc1, 0xe8, 0x07, 0x49, 0x31, 0xc4, 0x4c, 0x89, 0xe0, 0x48, 0xc1, 0xe0,
        0x11, 0x49, 0x31, 0xc4, 0x4c, 0x89, 0xe7, 0x4c, 0x89, 0xe6, 0x48, 0xc1, 0xce, 0x15, 0x4c, 0x89, 0xe2, 0x48,
        0xc1, 0xca, 0x2a, 0x4d, 0x89, 0xe2, 0x49, 0xc1, 0xca, 0x0b, 0x4d, 0x89, 0xe0, 0x49, 0xc1, 0xc8, 0x21, 0x4d,
        0x89, 0xe1, 0x49, 0xc1, 0xc9, 0x32, 0x41, 0xf6, 0xc4, 0x10, 0x74, 0x15, 0x48, 0x8d, 0xbc, 0x24, 0x00, 0xff,
        0xff, 0xff, 0x81, 0xe6, 0xff, 0x03, 0x00, 0x00, 0xba, 0x03, 0x00, 0x00, 0x00, 0xeb, 0x03, 0x83, 0xe2, 0x07,
        0x4c, 0x89, 0xe0, 0x48, 0xc1, 0xe8, 0x3b, 0x83, 0xf8, 0x1f, 0x75, 0x03, 0x4c, 0x89, 0xe0, 0x48, 0x83, 0xf8,
        0x01, 0x75, 0x02, 0x31, 0xc0, 0x48, 0x83, 0xf8, 0x09, 0x75, 0x02, 0x31, 0xc0, 0x48, 0x83, 0xf8, 0x04, 0x75,
        0x02, 0x31, 0xff, 0x0f, 0x05, 0x41, 0xff, 0xcd, 0x0f, 0x85, 0x6c, 0xff, 0xff, 0xff, 0x31, 0xff, 0xb8, 0x01,
        0x00, 0x00, 0x00, 0x0f, 0x05,
    ]
);
// Flags ring 3 may set that the kernel must not inherit: 1: pushfq; or qword ptr [rsp], 0x4000 (NT); popfq;
// mov eax, 2 (YIELD); syscall; jmp 1b
program!(
    NESTED_TASK,
    "r3-nested-task",
    [0x9c, 0x48, 0x81, 0x0c, 0x24, 0x00, 0x40, 0x00, 0x00, 0x9d, 0xb8, 0x02, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xed,]
);
// A stack pointer that is not canonical, kept while interrupts come and go: movabs rsp, 1 << 63; 1: jmp 1b
program!(BAD_STACK, "r3-bad-stack", [0x48, 0xbc, 0, 0, 0, 0, 0, 0, 0, 0x80, 0xeb, 0xfe]);

/// Calls the fuzzer makes.
const FUZZ_CALLS: u64 = 100_000;

program!(EXIT, "r3-exit", [0x31, 0xff, 0xb8, 1, 0, 0, 0, 0x0f, 0x05]); // xor edi, edi; mov eax, 1; syscall

/// Frames and kernel-heap bytes the leak checks allow once the updates in flight are taken ([`quiesce`]):
/// frames and the heap are the machine's, and other cores (a SIP being reclaimed there, a table or lane made on
/// first use) may take or give back a few while a check runs. A leak of anything per SIP or per call shows as
/// many times more over these runs (the smallest record a SIP could leak is a pointer: 8 bytes a cycle, 8,000
/// over the 1,000 spawn/exit cycles).
const SLACK_FRAMES: i64 = 8;
/// See [`SLACK_FRAMES`].
const SLACK_HEAP: i64 = 4096;

/// Frames free and kernel heap in use, taken when this core has no update in flight to the others.
struct Baseline {
    free: u64,
    heap: usize,
}

impl Baseline {
    fn take() -> Self {
        quiesce();
        Self { free: frames::stats().free, heap: crate::memory::heap::stats().used }
    }

    /// Frames and the kernel heap are back at the baseline, within the slacks; `what` names the runs.
    fn check_back(&self, what: &str) -> Result<(), alloc::string::String> {
        quiesce();
        let leaked = self.free as i64 - frames::stats().free as i64;
        crate::check!(leaked <= SLACK_FRAMES, "{what} leaked {leaked} frames");
        let grown = crate::memory::heap::stats().used as i64 - self.heap as i64;
        crate::check!(grown <= SLACK_HEAP, "{what} grew the kernel heap by {grown} bytes");
        Ok(())
    }
}

/// Waits until every update this core has sent to the others (a SIP's start and end reach every core's replica)
/// has been taken: a probe along the tree follows the updates through the same lanes, in order. Until then the
/// messages in flight hold kernel heap (under `--smp 4` on a loaded host, 6,320 bytes once), which a leak check
/// must not count.
fn quiesce() {
    let _ = crate::ipc::intercore::probe_all(crate::ipc::intercore::Scheme::Tree);
}

/// Runs `program` in ring 3 with the number `argument`, waits for its end and returns how it ended.
fn run(
    program: &'static Program,
    protection: Protection,
    argument: u64,
) -> Result<alloc::string::String, alloc::string::String> {
    run_with(program, protection, &alloc::format!("{argument:#x}"))
}

/// Runs `program` in ring 3 with the argument string `args`, waits for its end and returns how it ended.
fn run_with(
    program: &'static Program,
    protection: Protection,
    args: &str,
) -> Result<alloc::string::String, alloc::string::String> {
    let id =
        spawn(program, protection, args).map_err(|e| alloc::format!("{}: spawn failed: {e}", program.manifest.name))?;
    crate::sip::wait(id.0);
    crate::sip::end_report(id.0).ok_or_else(|| alloc::format!("{}#{}: no end report", program.manifest.name, id.0))
}

crate::selftest! {
    /// Each fault class ends the ring-3 SIP that commits it, alone, with a report that names it, in both ring-3
    /// modes; a kernel address is never reached; bad call arguments are answered with errors; frames return.
    fn ring3_faults_end_only_that_sip() {
        let kernel_data = &super::super::NEXT_SIP_ID as *const _ as u64;
        let kernel_text = super::run as *const () as u64;
        let gp = "general protection fault in ring 3";
        let cases: [(&'static Program, u64, &[&str]); 16] = [
            (&CLI, 0, &[gp]),
            (&HLT, 0, &[gp]),
            (&WRMSR, 0, &[gp]),
            (&MOV_CR3, 0, &[gp]),
            (&INT3, 0, &[gp]),
            (&INT80, 0, &[gp]),
            (&WRITE_ARG, kernel_data, &["page fault in ring 3: write of", "(kernel memory)"]),
            (&READ_ARG, kernel_data, &["page fault in ring 3: read of", "(kernel memory)"]),
            (&JUMP_ARG, kernel_text, &["page fault in ring 3: execute of", "(kernel memory)"]),
            (&READ_ARG, 0, &["page fault in ring 3: read of 0x0 "]),
            (&DIVIDE, 0, &["divide error in ring 3"]),
            (&UD2, 0, &["invalid opcode in ring 3"]),
            (&OVERFLOW, 0, &["stack overflow in ring 3"]),
            (&LOG_ARG, kernel_data, &["exited with failure code -2"]),
            (&UNKNOWN_CALL, 0, &["exited with failure code -1"]),
            (&HELLO, 0, &["exited"]),
        ];
        // Warm up: the core's shared space is made at its first ring-3 SIP and stays.
        run(&EXIT, Protection::Ring3, 0)?;
        let free = frames::stats().free;
        for protection in [Protection::Ring3, Protection::Ring3Own] {
            for (program, argument, expected) in cases {
                let report = run(program, protection, argument)?;
                for part in expected {
                    crate::check!(report.contains(part), "{} ({protection}) ended '{report}', not '{part}'", program.manifest.name);
                }
                if expected == ["exited"] {
                    crate::check!(report == "exited", "{} ({protection}) ended '{report}'", program.manifest.name);
                }
            }
        }
        let leaked = free as i64 - frames::stats().free as i64;
        crate::check!(leaked <= SLACK_FRAMES, "32 ring-3 SIPs leaked {leaked} frames");
        crate::check!(
            spawn(&HELLO, Protection::Type, "").map(|_| ()) == Err(SpawnError::NeedsHardwareProtection),
            "a ring-3 program was started in ring 0"
        );
        Ok(())
    }
}

crate::selftest! {
    /// Another SIP's memory: in the shared space a raw program reads it (the MMU does not separate `ring3` SIPs:
    /// only the type system does, and this program is not typed code); in a space of its own the read faults.
    fn ring3_own_spaces_separate_sips() {
        let victim = spawn(&SPIN, Protection::Ring3, "").map_err(|e| alloc::format!("spawn failed: {e}"))?;
        let victim_code = crate::sip::with_user_slot(victim.0).ok_or("the victim has no ring-3 slot")?;
        let shared = run(&READ_ARG, Protection::Ring3, victim_code);
        let own = run(&READ_ARG, Protection::Ring3Own, victim_code);
        let killed = crate::sip::kill(victim.0);
        let shared = shared?;
        let own = own?;
        crate::check!(killed.is_ok(), "cannot kill the victim: {killed:?}");
        crate::check!(shared == alloc::format!("exited with failure code {SURVIVED}"), "in the shared space the read ended '{shared}'");
        crate::check!(own.contains("page fault in ring 3: read of"), "in its own space the read ended '{own}'");
        Ok(())
    }
}

crate::selftest! {
    /// A ring-3 SIP that spins is preempted by the timer (this thread, which sleeps meanwhile, runs again), and a
    /// kill ends it.
    fn ring3_spinning_sip_is_preempted_and_killed() {
        let id = spawn(&SPIN, Protection::Ring3Own, "").map_err(|e| alloc::format!("spawn failed: {e}"))?;
        crate::sched::sleep(30_000_000);
        let alive = crate::sip::is_alive(id.0);
        let killed = crate::sip::kill(id.0);
        crate::check!(alive, "the spinning SIP ended by itself: {:?}", crate::sip::end_report(id.0));
        crate::check!(killed.is_ok(), "kill failed: {killed:?}");
        let report = crate::sip::end_report(id.0).unwrap_or_default();
        crate::check!(report == "was killed", "the spinning SIP ended '{report}'");
        Ok(())
    }
}

crate::selftest! {
    /// 1,000 `ring3-own` SIPs start and exit; frames (page tables included), the kernel heap and the exchange heap
    /// return to what they were. Logs the cost of one create + exit (with the wait for its end) in both ring-3
    /// modes.
    fn ring3_own_spawn_and_exit_return_memory() {
        const CYCLES: u64 = 1000;
        // Both modes before measuring: the first `ring3` SIP of a core makes its shared space, which stays.
        for _ in 0..40 {
            run(&EXIT, Protection::Ring3Own, 0)?;
            run(&EXIT, Protection::Ring3, 0)?;
        }
        let baseline = Baseline::take();
        let exchange = crate::ipc::exchange_heap::totals();
        let start = crate::arch::cpu::rdtsc();
        for i in 0..CYCLES {
            let report = run(&EXIT, Protection::Ring3Own, 0)?;
            crate::check!(report == "exited", "cycle {i}: the SIP ended '{report}'");
        }
        let own = (crate::arch::cpu::rdtsc() - start) / CYCLES;
        let start = crate::arch::cpu::rdtsc();
        for _ in 0..20 {
            run(&EXIT, Protection::Ring3, 0)?;
        }
        let shared = (crate::arch::cpu::rdtsc() - start) / 20;
        log::info!(
            "ring 3: create + exit {own} cycles in ring3-own, {shared} in ring3 (guest instructions under --icount)"
        );
        baseline.check_back(&alloc::format!("{CYCLES} cycles"))?;
        let after = crate::ipc::exchange_heap::totals();
        // No growth (another core's SIP being reclaimed meanwhile may free some).
        crate::check!(
            after.0 <= exchange.0 && after.1 <= exchange.1,
            "{CYCLES} cycles grew the exchange heap: {exchange:?} before, {after:?} after"
        );
        Ok(())
    }
}

crate::selftest! {
    /// The syscall fuzzer: a `ring3-own` SIP makes 100,000 calls with numbers and arguments from a xorshift seeded
    /// per boot (the seed is logged); the kernel answers every one and stays up, the SIP exits normally, and
    /// frames and the kernel heap are back where they were.
    fn ring3_syscall_fuzzer() {
        let seed = crate::arch::cpu::rdtsc() | 1;
        log::info!("syscall fuzzer: seed {seed:#x}, {FUZZ_CALLS} calls");
        let baseline = Baseline::take();
        let answered = super::calls_answered() + crate::ring3::null_calls();
        let report = run(&FUZZER, Protection::Ring3Own, seed)?;
        let answered = super::calls_answered() + crate::ring3::null_calls() - answered;
        crate::check!(report == "exited", "the fuzzer (seed {seed:#x}) ended '{report}'");
        crate::check!(answered >= FUZZ_CALLS, "the kernel answered {answered} of the fuzzer's {FUZZ_CALLS} calls");
        baseline.check_back(&alloc::format!("the fuzzer (seed {seed:#x})"))
    }
}

crate::selftest! {
    /// The Rust programs of the ring-3 image: `hello` logs and exits; the deliberately unsafe `unsafe-test` and the
    /// safe `soundness` (rust-lang/rust#25860) are stopped by the MMU at kernel memory in both modes, and at
    /// another SIP's memory in `ring3-own` only; in the shared space the safe program's write lands.
    fn ring3_image_programs_run_and_fault_alone() {
        let program = |name| super::image_program(name).ok_or(alloc::format!("no image program '{name}'"));
        let (hello, unsafe_test, soundness) = (program("hello")?, program("unsafe-test")?, program("soundness")?);
        let kernel_data = &super::super::NEXT_SIP_ID as *const _ as u64;
        for protection in [Protection::Ring3, Protection::Ring3Own] {
            let report = run_with(hello, protection, "a b")?;
            crate::check!(report == "exited", "hello ({protection}) ended '{report}'");
            for (args, expected) in [
                (alloc::string::String::from("cli"), "general protection fault in ring 3"),
                (alloc::format!("write {kernel_data:#x}"), "page fault in ring 3: write of"),
                (alloc::format!("jump {kernel_data:#x}"), "page fault in ring 3: execute of"),
                (alloc::string::String::from("recurse"), "stack overflow in ring 3"),
            ] {
                let report = run_with(unsafe_test, protection, &args)?;
                crate::check!(report.contains(expected), "unsafe-test {args} ({protection}) ended '{report}'");
            }
            let report = run_with(soundness, protection, &alloc::format!("{kernel_data:#x}"))?;
            crate::check!(report.contains("page fault in ring 3: write of"), "soundness ({protection}) ended '{report}'");
        }
        // Another SIP's stack: writable to its owner, in the shared space reachable by every `ring3` SIP.
        let victim = spawn(&SPIN, Protection::Ring3, "").map_err(|e| alloc::format!("spawn failed: {e}"))?;
        let slot = crate::sip::with_user_slot(victim.0).ok_or("the victim has no ring-3 slot")?;
        let target = alloc::format!("{:#x}", slot + crate::memory::layout::USER_SLOT_SIZE - 4096 - 64);
        let shared = run_with(soundness, Protection::Ring3, &target);
        let own = run_with(soundness, Protection::Ring3Own, &target);
        let killed = crate::sip::kill(victim.0);
        let (shared, own) = (shared?, own?);
        crate::check!(killed.is_ok(), "cannot kill the victim: {killed:?}");
        crate::check!(shared == alloc::format!("exited with failure code {SURVIVED}"), "soundness in the shared space ended '{shared}'");
        crate::check!(own.contains("page fault in ring 3: write of"), "soundness in its own space ended '{own}'");
        crate::check!(
            crate::sip::spawn("unsafe-test", "cli", None) == Err(SpawnError::NeedsHardwareProtection),
            "a ring-3 program was not refused in ring 0"
        );
        Ok(())
    }
}

crate::selftest! {
    /// A service runs in ring 3 from the same crate as in ring 0 (`template`, linked into the kernel and the
    /// image alike); a service with contracts is refused there; a ring-3 heap grows by call within its quota, and
    /// beyond it the SIP ends for the quota, alone.
    fn ring3_services_and_heaps() {
        let template = crate::sip::manifest("template").ok_or("no template service")?;
        let fault = crate::sip::manifest("fault").ok_or("no fault service")?;
        let alloc_program = super::image_program("alloc").ok_or("no image program 'alloc'")?;
        crate::check!(super::image::has_service("template"), "the image's manifests do not list template");
        crate::check!(!super::image::has_service("fault"), "the image's manifests list fault, which it does not have");
        for protection in [Protection::Ring3, Protection::Ring3Own] {
            let id = super::spawn_named(template.name, "from a self-test", protection, None, channels::Owner::KERNEL, 0)
                .map_err(|(e, _)| alloc::format!("template ({protection}): {e}"))?;
            crate::sip::wait(id.0);
            let report = crate::sip::end_report(id.0).unwrap_or_default();
            crate::check!(report == "exited", "template ({protection}) ended '{report}'");
            let refused = super::spawn_named(fault.name, "", protection, None, channels::Owner::KERNEL, 0);
            crate::check!(
                matches!(refused, Err((SpawnError::NoRing3Build, None))),
                "fault (not in the image) was not refused in {protection}"
            );
            let report = run_with(alloc_program, protection, "40000")?;
            crate::check!(report == "exited", "alloc 40000 ({protection}) ended '{report}'");
            let report = run_with(alloc_program, protection, "1000000")?;
            crate::check!(report == "exceeded its heap quota", "alloc 1000000 ({protection}) ended '{report}'");
        }
        Ok(())
    }
}

crate::selftest! {
    /// What ring-3 code leaves in the CPU when it enters the kernel cannot hurt the kernel: a SIP that sets the
    /// nested-task flag before each yield (were the kernel to run with it, the next `iretq` of any thread would
    /// fault in ring 0) while new ring-3 SIPs start and end beside it, and a SIP that spins on a non-canonical
    /// stack pointer through timer interrupts. Both are killed; the kernel and their neighbours are unharmed.
    fn ring3_cannot_leave_flags_or_a_bad_stack_to_the_kernel() {
        let nested = spawn(&NESTED_TASK, Protection::Ring3Own, "").map_err(|e| alloc::format!("spawn failed: {e}"))?;
        let bad_stack = spawn(&BAD_STACK, Protection::Ring3, "").map_err(|e| alloc::format!("spawn failed: {e}"))?;
        let mut reports = alloc::vec::Vec::new();
        for _ in 0..20 {
            reports.push(run(&EXIT, Protection::Ring3Own, 0));
        }
        crate::sched::sleep(30_000_000);
        let alive = (crate::sip::is_alive(nested.0), crate::sip::is_alive(bad_stack.0));
        let killed = (crate::sip::kill(nested.0), crate::sip::kill(bad_stack.0));
        for report in reports {
            let report = report?;
            crate::check!(report == "exited", "a neighbour ended '{report}'");
        }
        crate::check!(alive == (true, true), "the flag setter and the bad stack are not both alive: {alive:?}");
        crate::check!(killed.0.is_ok() && killed.1.is_ok(), "kills failed: {killed:?}");
        Ok(())
    }
}

crate::selftest! {
    /// A hostile ring-3 SIP against the channel calls (the image's `channel-attacks`, in both ring-3 modes): bad
    /// buffers, forged handles, bytes that are no message, unknown contracts, nonsense waits, double closes and
    /// channels until its quota is spent are each answered as documented; the ring-0 peer whose channel it broke
    /// sees `Closed`; frames, the kernel heap and the exchange heap come back when it ends (measured on a second
    /// run: the first may grow the heaps and make the shared space, which stay).
    fn ring3_channel_calls_withstand_a_hostile_sip() {
        let program = super::image_program("channel-attacks").ok_or("no image program 'channel-attacks'")?;
        for (protection, round) in [Protection::Ring3, Protection::Ring3Own].into_iter().flat_map(|p| [(p, 0), (p, 1)]) {
            let baseline = Baseline::take();
            let exchange = crate::ipc::exchange_heap::totals();
            let (client, server) = contracts::echo::channel();
            let startup = Startup::new(server).map_err(|_| "no exchange memory for the startup value")?;
            let id = super::spawn_named(program.manifest.name, "", protection, Some(startup), channels::Owner::KERNEL, 0)
                .map_err(|(e, _)| alloc::format!("channel-attacks ({protection}): {e}"))?;
            crate::sip::wait(id.0);
            let report = crate::sip::end_report(id.0).unwrap_or_default();
            crate::check!(report == "exited", "channel-attacks ({protection}) ended '{report}' (the step that failed)");
            crate::check!(client.is_peer_closed(), "the Echo client did not see its broken channel closed ({protection})");
            drop(client);
            if round == 0 {
                continue;
            }
            baseline.check_back(&alloc::format!("channel-attacks ({protection})"))?;
            let now = crate::ipc::exchange_heap::totals();
            crate::check!(now == exchange, "channel-attacks ({protection}): exchange heap {exchange:?} before, {now:?} after");
        }
        Ok(())
    }
}

crate::selftest! {
    /// A ring-3 SIP without capabilities against the `KERNEL` call (the image's `kernel-requests`, in both ring-3
    /// modes): bytes that are no request, lengths and rooms out of range and buffers that are not its memory are
    /// refused before anything is done; every privileged request is refused as it is in ring 0 (the kernel
    /// answers with the ring-0 implementation); what anyone may ask is answered; frames and the kernel heap come
    /// back when it ends (measured on a second run).
    fn ring3_kernel_requests_are_checked_as_in_ring_0() {
        let program = super::image_program("kernel-requests").ok_or("no image program 'kernel-requests'")?;
        for (protection, round) in [Protection::Ring3, Protection::Ring3Own].into_iter().flat_map(|p| [(p, 0), (p, 1)]) {
            let baseline = Baseline::take();
            let id = super::spawn(program, protection, "").map_err(|e| alloc::format!("kernel-requests ({protection}): {e}"))?;
            crate::sip::wait(id.0);
            let report = crate::sip::end_report(id.0).unwrap_or_default();
            crate::check!(report == "exited", "kernel-requests ({protection}) ended '{report}' (the step that failed)");
            if round == 0 {
                continue;
            }
            baseline.check_back(&alloc::format!("kernel-requests ({protection})"))?;
        }
        Ok(())
    }
}
