//! Names every service crate so the linker keeps it.

use clean as _;
