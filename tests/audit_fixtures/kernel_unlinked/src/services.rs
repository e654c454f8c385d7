//! Names every service crate so the linker keeps it: `clean-service` is missing here and in Cargo.toml.

use fault as _;
use template as _;
