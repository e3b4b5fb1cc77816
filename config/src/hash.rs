//! Content hash of the routing document, so that nodes and publishers can name a version by what it holds.

use sha2::{Digest, Sha256};
use std::fmt;

/// SHA-256 of the canonical JSON form of a routing document (routes and clusters; node settings excluded).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// Hashes the canonical bytes of a document.
    pub(crate) fn of(canonical: &[u8]) -> Self {
        ContentHash(Sha256::digest(canonical).into())
    }

    /// The first 12 hex digits, enough to tell versions apart in logs.
    pub fn short(&self) -> String {
        self.to_string()[..12].to_string()
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.short())
    }
}
