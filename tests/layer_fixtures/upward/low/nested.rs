//! Nested below `low`.
pub fn n() -> u32 {
    let _ = 0;
    super::super::high::inner::deep();
    let _ = 1;
    crate::high::VALUE
}
