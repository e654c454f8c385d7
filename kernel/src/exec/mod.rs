//! The execution context: whose account the running code is on (the kernel's or a SIP's), which decides where
//! its memory comes from and who is blamed for its faults.
//!
//! `account` holds the accounts and the guard that enters the kernel's; `allocator` is the global allocator,
//! which routes every allocation by the account; `watermark` is an experiment that measures how deep kernel
//! code goes on SIP stacks. This layer sits on the per-CPU words it keeps (`percpu`) and on memory; it knows of
//! SIPs only as account numbers, and ends one only through the endings the SIP layer installs.

mod account;
mod allocator;
pub mod watermark;

pub use account::{
    Account, KernelAccount, SipEndings, check_sip_stack, current_sip, current_sip_on, end_doomed, end_sip_for_fault,
    install_sip_endings, running_sip, sip_mode_kernel_code,
};
pub use allocator::SMALL_HEAP_TAG;
