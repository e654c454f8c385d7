//! Top: names everything below, and its own child.
pub mod inner;

use crate::{left, right};

pub fn h() -> u32 {
    left::f() + right::g() + inner::i()
}
