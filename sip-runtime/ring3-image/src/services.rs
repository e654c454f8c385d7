//! The services linked into the image. Naming each crate links it, and with it the manifest its `sip!`
//! registers (linkme: a crate that is only depended on is not linked).
//!
//! A service the image lacks is refused in ring 3 (`SpawnError::NoRing3Build`); the kernel reads which are here
//! from the image's manifests.

use benchmark as _;
use echo as _;
use kv as _;
use names as _;
use shell as _;
use template as _;
