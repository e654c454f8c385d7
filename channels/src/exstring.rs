//! [`ExString`]: UTF-8 text in the exchange heap.
//!
//! Invariant: the bytes are always valid UTF-8 (only `&str`s and `char`s are ever appended).

use crate::exchangeable::Exchangeable;
use crate::exvec::ExVec;
use crate::platform::AllocError;
use crate::walk::Walk;
use crate::wire::{Decoder, Encoder, WireError};
use core::fmt;
use core::ops::Deref;

/// A growable UTF-8 string in the exchange heap.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ExString {
    bytes: ExVec<u8>,
}

impl ExString {
    /// An empty string; allocates nothing.
    pub const fn new() -> Self {
        Self { bytes: ExVec::new() }
    }

    /// `text` in the exchange heap, or the error if the heap (or the caller's exchange quota) is exhausted.
    pub fn try_from_str(text: &str) -> Result<Self, AllocError> {
        let mut bytes = ExVec::new();
        bytes.try_reserve(text.len())?;
        bytes.extend_from_slice(text.as_bytes());
        Ok(Self { bytes })
    }

    /// Appends `text`.
    pub fn push_str(&mut self, text: &str) {
        self.bytes.extend_from_slice(text.as_bytes());
    }

    /// Appends `c`.
    pub fn push(&mut self, c: char) {
        self.push_str(c.encode_utf8(&mut [0; 4]));
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Never fails by the type's invariant; an empty string is a safe answer if it ever did.
        core::str::from_utf8(&self.bytes).unwrap_or_default()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The underlying exchange-heap bytes.
    pub fn as_bytes(&self) -> &ExVec<u8> {
        &self.bytes
    }
}

impl From<&str> for ExString {
    fn from(text: &str) -> Self {
        let mut s = Self::new();
        s.push_str(text);
        s
    }
}

impl Deref for ExString {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for ExString {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ExString {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for ExString {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ExString {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for ExString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ExString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Write for ExString {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

// SAFETY: a string holds what its bytes hold: their buffer.
unsafe impl Exchangeable for ExString {
    const __TRACKED: bool = true;

    fn __visit(&self, walk: &mut Walk<'_>) {
        self.bytes.__visit(walk);
    }

    fn __encode(self, out: &mut Encoder<'_>) -> Result<(), WireError> {
        out.put_len(self.len())?;
        out.put_bytes(self.as_str().as_bytes())
    }

    fn __decode(input: &mut Decoder<'_>) -> Result<Self, WireError> {
        let len = input.take_len()?;
        let text = core::str::from_utf8(input.take_bytes(len)?).map_err(|_| WireError::BadValue)?;
        Self::try_from_str(text).map_err(|_| WireError::OutOfMemory)
    }
}
