//! Middle: names the bottom and its neighbour.
use crate::low;

pub fn f() -> u32 {
    crate::shout!();
    low::VALUE + crate::right::g()
}
