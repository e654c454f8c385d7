//! Names its neighbour.

use crate::right::R;

pub struct L;
