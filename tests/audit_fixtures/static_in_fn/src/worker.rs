//! A block does not make a `static` local: it is still one global for every caller.

pub fn work() -> u32 {
    let x = 1;
    {
        // Counts calls across every instance of the service.
        static CALLS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
        CALLS.fetch_add(x, core::sync::atomic::Ordering::Relaxed)
    }
}
