//! The services linked into the image. Naming each crate links it, and with it the manifest its `sip!`
//! registers (linkme: a crate that is only depended on is not linked).
//!
//! Only services without contracts are here so far: channels do not cross into ring 3 yet, and the kernel
//! refuses to start a service with contracts in ring 3 (docs/protection.md).

use template as _;
