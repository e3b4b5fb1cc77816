//! A small lock-free random source for the randomized balancers: SplitMix64 over an atomic counter.
//! Deterministic from its seed (tests seed it); a pick costs one atomic add and a few multiplies.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// SplitMix64 stream.
#[derive(Debug)]
pub(crate) struct Rng(AtomicU64);

impl Rng {
    /// A stream starting at `seed`.
    pub(crate) fn seeded(seed: u64) -> Rng {
        Rng(AtomicU64::new(seed))
    }

    /// A stream seeded from the clock and the address of a stack value (differs per build).
    pub(crate) fn from_entropy() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let local = 0u8;
        Rng::seeded(nanos ^ (std::ptr::addr_of!(local) as u64).rotate_left(29))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self.0.fetch_add(0x9e37_79b9_7f4a_7c15, Relaxed);
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform number in `0..n` (`n` > 0), by multiply-shift (no modulo bias worth measuring).
    pub(crate) fn below(&self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Two distinct uniform indices in `0..n` (`n` ≥ 2): the second is an offset in `1..n` from the
    /// first.
    pub(crate) fn two_distinct(&self, n: usize) -> (usize, usize) {
        let a = self.below(n as u64) as usize;
        let b = (a + 1 + self.below(n as u64 - 1) as usize) % n;
        (a, b)
    }
}
