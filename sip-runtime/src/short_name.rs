//! [`ShortName`]: a name of at most 32 bytes held by value, so that what names a service, a contract or a
//! resource crosses the ABI as plain data (a ring-3 SIP cannot be handed a `&'static str` of the kernel's).
//!
//! Invariant: the bytes up to `len` are valid UTF-8 (a longer name is cut at a character boundary).

use contracts::Exchangeable;
use core::fmt;

/// Most bytes a [`ShortName`] holds: a service name's limit (`Manifest::check`), and more than any contract name.
pub const SHORT_NAME_LEN: usize = 32;

/// A name of at most [`SHORT_NAME_LEN`] bytes, by value.
#[derive(Exchangeable, Clone, Copy, PartialEq, Eq)]
pub struct ShortName {
    bytes: [u8; SHORT_NAME_LEN],
    len: u8,
}

impl ShortName {
    /// `name`, cut at the last character boundary within [`SHORT_NAME_LEN`] bytes if it is longer.
    pub fn new(name: &str) -> Self {
        let mut len = name.len().min(SHORT_NAME_LEN);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; SHORT_NAME_LEN];
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        Self { bytes, len: len as u8 }
    }

    /// The name. (Bytes that arrived from elsewhere and are not UTF-8 read as `?`.)
    pub fn as_str(&self) -> &str {
        let len = usize::from(self.len).min(SHORT_NAME_LEN);
        core::str::from_utf8(&self.bytes[..len]).unwrap_or("?")
    }
}

impl fmt::Display for ShortName {
    /// As the text, padded and aligned as `str` is (`{:<16}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for ShortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<&str> for ShortName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_kept_and_a_long_one_cut_at_a_character() {
        assert_eq!(ShortName::new("echo").as_str(), "echo");
        assert_eq!(ShortName::new("").as_str(), "");
        let long = "a".repeat(40);
        assert_eq!(ShortName::new(&long).as_str(), &long[..32]);
        // 31 ASCII bytes and a two-byte character: the character does not fit, and is not split.
        let split = alloc::format!("{}é", "b".repeat(31));
        assert_eq!(ShortName::new(&split).as_str(), &split[..31]);
        assert_eq!(ShortName::new("kv"), "kv");
        assert_eq!(alloc::format!("{:?}", ShortName::new("kv")), "\"kv\"");
        assert_eq!(alloc::format!("[{:<4}]", ShortName::new("kv")), "[kv  ]");
    }

    #[test]
    fn bytes_from_elsewhere_never_read_past_the_array_or_as_bad_text() {
        let bytes = channels::wire::encode(ShortName::new("names"), &mut channels::wire::NoEndpoints).expect("plain");
        let mut forged = bytes.clone();
        forged[SHORT_NAME_LEN] = 200; // a length beyond the array
        let decoded: ShortName = channels::wire::decode(&forged, &mut channels::wire::NoEndpoints).expect("bytes");
        assert_eq!(decoded.as_str(), "names\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        forged[0] = 0xff; // not UTF-8
        let decoded: ShortName = channels::wire::decode(&forged, &mut channels::wire::NoEndpoints).expect("bytes");
        assert_eq!(decoded.as_str(), "?");
    }
}
