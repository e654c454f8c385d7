//! Self-tests of the scheduler: yield order, preemption, block/wake, stack reclamation, and the kernel reserve
//! of SIP threads' stacks.

use super::*;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize};

/// Yields until `done` holds or `limit_ms` pass; false on timeout.
fn wait_until(limit_ms: u64, done: impl Fn() -> bool) -> bool {
    let start = crate::time::uptime_nanos();
    while !done() {
        if crate::time::uptime_nanos() - start > limit_ms * 1_000_000 {
            return false;
        }
        yield_now();
    }
    true
}

crate::selftest! {
    /// Two threads that yield to each other alternate strictly (round robin).
    fn threads_alternate_on_yield() {
        // Room for every entry up front: no allocation (and no lock that might yield) between a push and its yield.
        let log = Arc::new(spin::Mutex::new(Vec::with_capacity(6)));
        let finished = Arc::new(AtomicUsize::new(0));
        // Neither thread logs before both are inside their interrupts-off part: each says so (`ready`), and only
        // then is `go` set. Waiting only for both to exist was not enough: a new thread starts with interrupts on,
        // and a timer tick that preempted `b` before it turned them off let `a` log twice ("aababb", about one
        // `--smp 4` run in six, and in CI).
        let ready = Arc::new(AtomicUsize::new(0));
        let go = Arc::new(AtomicBool::new(false));
        for tag in ['a', 'b'] {
            let (log, finished, ready, go) = (log.clone(), finished.clone(), ready.clone(), go.clone());
            spawn(Account::Kernel, 16 * 1024, move || {
                // With interrupts off the timer cannot preempt between the push and the yield, so only the
                // yields decide the order.
                interrupts::without_interrupts(|| {
                    ready.fetch_add(1, Ordering::SeqCst);
                    while !go.load(Ordering::SeqCst) {
                        yield_now();
                    }
                    for _ in 0..3 {
                        log.lock().push(tag);
                        yield_now();
                    }
                });
                finished.fetch_add(1, Ordering::SeqCst);
            })
            .map_err(|e| alloc::format!("spawn failed: {e:?}"))?;
        }
        let started = wait_until(2000, || ready.load(Ordering::SeqCst) == 2);
        go.store(true, Ordering::SeqCst);
        crate::check!(started, "threads did not start");
        crate::check!(wait_until(2000, || finished.load(Ordering::SeqCst) == 2), "threads did not finish");
        // Either thread may go first; after that they must strictly alternate.
        let log: String = log.lock().iter().collect();
        let alternates = log.len() == 6 && log.as_bytes().windows(2).all(|w| w[0] != w[1]);
        crate::check!(alternates, "order was {log}");
        Ok(())
    }
}

crate::selftest! {
    /// A thread that never yields is preempted by the timer, so others still run.
    fn spinning_thread_is_preempted() {
        let stop = Arc::new(AtomicBool::new(false));
        let spins = Arc::new(AtomicUsize::new(0));
        let (s, n) = (stop.clone(), spins.clone());
        spawn(Account::Kernel, 16 * 1024, move || {
            while !s.load(Ordering::Relaxed) {
                n.fetch_add(1, Ordering::Relaxed);
                core::hint::spin_loop();
            }
        })
        .map_err(|e| alloc::format!("spawn failed: {e:?}"))?;
        // We get the core back only if the spinner is preempted.
        crate::check!(wait_until(3000, || spins.load(Ordering::Relaxed) > 1000), "spinner never ran");
        yield_now();
        stop.store(true, Ordering::Relaxed);
        crate::check!(wait_until(3000, || census().ready == 0), "spinner did not end");
        Ok(())
    }
}

crate::selftest! {
    /// A parked thread runs only after it is woken, and a wake that comes first is not lost.
    fn block_and_wake() {
        let stage = Arc::new(AtomicUsize::new(0));
        let st = stage.clone();
        let id = spawn(Account::Kernel, 16 * 1024, move || {
            st.store(1, Ordering::SeqCst);
            block_current();
            st.store(2, Ordering::SeqCst);
            block_current(); // the second wake arrived before this block
            st.store(3, Ordering::SeqCst);
        })
        .map_err(|e| alloc::format!("spawn failed: {e:?}"))?;
        crate::check!(wait_until(2000, || stage.load(Ordering::SeqCst) == 1), "thread did not start");
        for _ in 0..5 {
            yield_now();
        }
        crate::check!(stage.load(Ordering::SeqCst) == 1, "thread ran while parked");
        crate::check!(census().blocked >= 1, "thread is not parked");
        wake(id);
        crate::check!(wait_until(2000, || stage.load(Ordering::SeqCst) >= 2), "woken thread did not run");
        wake(id);
        crate::check!(wait_until(2000, || stage.load(Ordering::SeqCst) == 3), "early wake was lost");
        Ok(())
    }
}

crate::selftest! {
    /// Threads that exit give their stacks back: frames return to the baseline.
    fn exited_threads_free_their_stacks() {
        // Warm up with the same batch size, so the stack slots and the page tables covering them exist.
        let finished = Arc::new(AtomicUsize::new(0));
        // All threads of a batch are alive at once (they wait for `go`), so each batch uses the same slots.
        let run_batch = |n: usize| -> Result<(), String> {
            let target = finished.load(Ordering::SeqCst) + n;
            let go = Arc::new(AtomicBool::new(false));
            for _ in 0..n {
                let (f, go) = (finished.clone(), go.clone());
                spawn(Account::Kernel, 32 * 1024, move || {
                    while !go.load(Ordering::SeqCst) {
                        yield_now();
                    }
                    f.fetch_add(1, Ordering::SeqCst);
                })
                .map_err(|e| alloc::format!("spawn failed: {e:?}"))?;
            }
            go.store(true, Ordering::SeqCst);
            crate::check!(wait_until(5000, || finished.load(Ordering::SeqCst) >= target), "threads did not finish");
            yield_now(); // let the last one be reaped
            Ok(())
        };
        run_batch(100)?;
        let before = (crate::memory::frames::stats(), crate::memory::heap::stats().used);
        run_batch(100)?;
        let after = (crate::memory::frames::stats(), crate::memory::heap::stats().used);
        // Frames exactly; the heap within 1 KiB, as another core may allocate or free a few bytes meanwhile
        // (`heap_allocate_and_free`): a leak of anything per thread shows a hundred times over.
        crate::check!(
            after.0 == before.0 && after.1.abs_diff(before.1) <= 1024,
            "(frames, heap used) {after:?} after 100 threads, {before:?} before"
        );
        Ok(())
    }
}

crate::selftest! {
    /// A SIP's thread gets `KERNEL_RESERVE` bytes below the stack it asked for, and the switch publishes the
    /// reserve's upper end as the per-CPU stack limit; a kernel thread's limit is 0.
    fn sip_threads_get_the_kernel_reserve() {
        const ASKED: u64 = 12 * 1024;
        // (whether it is the SIP's thread, limit seen by the thread, its stack's bottom and top), in the order the
        // threads got there: a tick may let the kernel thread finish first.
        let seen = Arc::new(spin::Mutex::new(Vec::new()));
        // An owner no SIP has: the thread only looks at its own stack and ends.
        for owner in [Account::Sip(u64::MAX - 1), Account::Kernel] {
            let seen = seen.clone();
            spawn(owner, ASKED, move || {
                let limit = percpu::current().stack_limit.load(Ordering::Relaxed);
                let bounds = with_current(|t| t.stack().map(|s| (s.bottom(), s.top()))).flatten();
                seen.lock().push((matches!(owner, Account::Sip(_)), limit, bounds));
            })
            .map_err(|e| alloc::format!("spawn failed: {e:?}"))?;
        }
        crate::check!(wait_until(2000, || seen.lock().len() == 2), "threads did not run");
        let mut seen = seen.lock().clone();
        seen.sort_by_key(|(sip, ..)| !sip);
        let [(true, sip_limit, Some((sip_bottom, sip_top))), (false, kernel_limit, Some((kernel_bottom, kernel_top)))] =
            seen[..]
        else {
            return Err(alloc::format!("unexpected records {seen:?}"));
        };
        crate::check!(
            sip_limit == sip_bottom + stacks::KERNEL_RESERVE,
            "SIP thread: limit {sip_limit:#x}, bottom {sip_bottom:#x}"
        );
        let above = sip_top - sip_limit;
        crate::check!(above >= ASKED, "SIP thread: {above} bytes above its limit, asked for {ASKED}");
        crate::check!(kernel_limit == 0, "kernel thread: limit {kernel_limit:#x}");
        let size = kernel_top - kernel_bottom;
        crate::check!(size == ASKED, "kernel thread: stack of {size} bytes, asked for {ASKED}");
        Ok(())
    }
}

crate::selftest! {
    /// The largest stack a manifest may ask for, with the kernel reserve added, still fits a stack slot (with
    /// its guard page), and one byte more is refused by the manifest check.
    fn largest_manifest_stack_fits_its_slot() {
        fn entry(_: sip_runtime::SipContext) {}
        let manifest = |stack_size: u64| sip_runtime::Manifest {
            name: "largest-stack",
            entry: sip_runtime::Entry::Thread(entry),
            exports: &[],
            imports: &[],
            heap_quota: 4096,
            stack_size: stack_size as usize,
            restart: sip_runtime::RestartPolicy::Never,
            capabilities: &[],
            crate_name: "kernel",
            exchange_quota: sip_runtime::DEFAULT_EXCHANGE_QUOTA,
            threads: sip_runtime::DEFAULT_THREADS,
            protection: sip_runtime::Protection::Type,
        };
        let largest = stacks::MAX_STACK - stacks::KERNEL_RESERVE;
        crate::check!(manifest(largest).check(&[]).is_ok(), "a {largest}-byte stack is refused");
        crate::check!(manifest(largest + 1).check(&[]).is_err(), "a {}-byte stack is accepted", largest + 1);
        let stack = Stack::new(largest + stacks::KERNEL_RESERVE, crate::memory::frames::Use::Sip).map_err(|e| alloc::format!("{e:?}"))?;
        crate::check!(stack.is_overflow(stack.bottom() - 1), "no guard below the largest stack");
        Ok(())
    }
}
