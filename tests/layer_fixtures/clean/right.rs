//! Middle: names the bottom.
pub fn g() -> u32 {
    let _ = format_args!("{}", crate::low::VALUE);
    0
}
