//! A unit of its own in the top layer: names the bottom through `super`.
pub fn i() -> u32 {
    super::super::low::VALUE
}
