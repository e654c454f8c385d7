//! The multiprocessor layer: starting the application processors (`start`), and each core's monitor thread,
//! which serves the messages other cores send it and runs jobs posted to its mailbox (`monitor`).
//!
//! The core table itself (which cores exist, their states, stopping them) is a lower layer's (`cores`), so that
//! every layer from there up can ask which cores run; the inter-core transport is `ipc::intercore`'s. This
//! file holds the layer's self-tests, which run the per-core tests on every core.

mod monitor;
mod start;

pub use monitor::{run_on, start_boot_core_monitor};
pub use start::{init, start_application_processors};

use crate::cores::{self, CoreState};
use crate::percpu;
use alloc::vec::Vec;

/// Self-tests that check the core they run on; [`per_core_selftests_pass_on_every_core`] runs them on every AP.
/// (Tests of global state, such as frame counts, are left out: other cores change it meanwhile.)
const PER_CORE_TESTS: &[&str] = &[
    "percpu::percpu_record_is_self_consistent",
    "percpu::ist_stacks_are_installed",
    "interrupts::devices::device_interrupts_run_on_their_own_stack",
    "time::timer_ticks_advance",
    "interrupts::exceptions::breakpoint_returns",
    "sched::selftests::threads_alternate_on_yield",
    "sched::selftests::spinning_thread_is_preempted",
    "sched::selftests::block_and_wake",
    "smp::this_core_is_online_with_its_own_tables",
    "ring3::selftests::null_calls_from_ring_3",
    "ring3::selftests::syscall_and_supervisor_protections_are_on",
    "sip::ring3::selftests::ring3_faults_end_only_that_sip",
    "sip::ring3::selftests::ring3_spinning_sip_is_preempted_and_killed",
];

crate::selftest! {
    /// The core running this is online in the core table, with its own IDT, GDT and TSS.
    fn this_core_is_online_with_its_own_tables() {
        let me = percpu::current();
        let core = cores::cores().get(me.index as usize).ok_or("this core is not in the core table")?;
        crate::check!(core.state() == CoreState::Online, "cpu {} is {:?}", me.index, core.state());
        crate::check!(core.apic_id == me.apic_id, "core table and record disagree on the APIC ID");
        let idt = x86_64::instructions::tables::sidt().base.as_u64();
        let gdt = x86_64::instructions::tables::sgdt().base.as_u64();
        for other in cores::cores().iter().filter(|c| c.index != me.index) {
            crate::check!(other.record().is_none_or(|r| !core::ptr::eq(r, me)), "two cores share a record");
        }
        crate::check!(idt != 0 && gdt != 0, "no IDT or GDT loaded");
        if me.index != 0 {
            crate::check!(crate::memory::heap::contains(idt as usize), "cpu {} runs on the boot core's IDT", me.index);
            crate::check!(crate::memory::heap::contains(gdt as usize), "cpu {} runs on the boot core's GDT", me.index);
        }
        Ok(())
    }
}

crate::selftest! {
    /// Every core the MADT names is online, and each application processor passes the per-core self-tests
    /// (per-CPU record, IST stacks, timer, breakpoint recovery, its own scheduler) on itself.
    fn per_core_selftests_pass_on_every_core() {
        for core in cores::cores() {
            crate::check!(core.state() == CoreState::Online, "cpu {} (APIC id {}) is {:?}", core.index, core.apic_id, core.state());
        }
        let tests: Vec<_> = crate::selftest::SELFTESTS
            .iter()
            .filter(|t| PER_CORE_TESTS.iter().any(|name| t.name.strip_prefix("kernel::") == Some(name)))
            .collect();
        crate::check!(tests.len() == PER_CORE_TESTS.len(), "only {} of the per-core tests exist", tests.len());
        for core in cores::cores().iter().filter(|c| c.index != percpu::current_index()) {
            let elsewhere = run_on(core.index, || {
                crate::check!(percpu::current_index() != 0, "a job for another core ran on the boot core");
                Ok(())
            });
            crate::check!(elsewhere == Ok(Ok(())), "cpu {}: {elsewhere:?}", core.index);
            for test in &tests {
                match run_on(core.index, test.run) {
                    Ok(Ok(())) => {}
                    Ok(Err(why)) => return Err(alloc::format!("cpu {}: {}: {why}", core.index, test.name)),
                    Err(e) => return Err(alloc::format!("cpu {}: cannot run {}: {e:?}", core.index, test.name)),
                }
            }
        }
        Ok(())
    }
}
