//! Names its neighbour back.

use super::left::L;

pub struct R;
