//! Ring hash (Karger et al., as in Envoy): each endpoint owns virtual nodes on a 64-bit ring, in
//! proportion to its weight; a key goes to the first virtual node at or after its hash. Adding or
//! removing one of N endpoints moves about 1/N of the keys.

use super::hashing::{address_hash, mix};
use super::Balancer;
use crate::tables::endpoint::Endpoint;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Largest ring.
const MAX_RING: u64 = 1 << 18;
/// Virtual nodes of an endpoint of the cluster's highest weight: 160 while the ring stays under
/// `MAX_RING`, so that up to ~1,600 endpoints an endpoint's virtual nodes do not depend on how many
/// others there are (adding one moves only its own share of keys); fewer, down to 16, beyond.
const MAX_VNODES: u64 = 160;
const MIN_VNODES: u64 = 16;

/// A sorted ring of virtual nodes, each one 8-byte word: the node's hash with its low bits replaced
/// by the endpoint's index (so the ring is half the size of (hash, index) pairs), and a bucket index
/// by the hash's top bits that narrows the search to the few virtual nodes of one bucket (about four:
/// one cache line). A pick is two or three memory reads at any ring size, where a binary search over
/// a 262,144-node ring is eighteen dependent reads, most of them cache misses.
#[derive(Debug)]
pub(super) struct RingHash {
    ring: Vec<u64>,
    /// The low bits of a ring word that hold the endpoint index.
    owner_mask: u64,
    /// `buckets[b]`: the first position whose hash has top bits `>= b`; one more entry at the end.
    buckets: Vec<u32>,
    /// Top bits used for the bucket index.
    bits: u32,
    /// Spreads requests that carry no key.
    unkeyed: AtomicU64,
}

impl RingHash {
    /// The ring of these candidates.
    pub(super) fn new(endpoints: &[Endpoint]) -> Self {
        let n = endpoints.len().max(1) as u64;
        let top = (MAX_RING / n).clamp(MIN_VNODES, MAX_VNODES);
        let max_weight = endpoints
            .iter()
            .map(|e| u64::from(e.weight.max(1)))
            .max()
            .unwrap_or(1);
        // Enough low bits for every index; the hash keeps the rest (at least 32 bits at any size).
        let owner_bits = (64 - (n.saturating_sub(1)).leading_zeros()).max(1);
        let owner_mask = (1u64 << owner_bits) - 1;
        let mut ring = Vec::with_capacity((top * n) as usize);
        for (i, e) in endpoints.iter().enumerate() {
            let base = address_hash(e.upstream.address);
            // In proportion to weight, at least one.
            let vnodes = (top * u64::from(e.weight.max(1))).div_ceil(max_weight);
            for r in 0..vnodes {
                let hash = mix(base ^ r.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                ring.push((hash & !owner_mask) | i as u64);
            }
        }
        ring.sort_unstable();
        // About four virtual nodes per bucket.
        let bits = (ring.len().max(8).next_power_of_two().trailing_zeros() - 2).clamp(1, 20);
        let mut buckets = Vec::with_capacity((1usize << bits) + 1);
        let mut at = 0usize;
        for b in 0..(1u64 << bits) {
            while at < ring.len() && (ring[at] >> (64 - bits)) < b {
                at += 1;
            }
            buckets.push(at as u32);
        }
        buckets.push(ring.len() as u32);
        RingHash {
            ring,
            owner_mask,
            buckets,
            bits,
            unkeyed: AtomicU64::new(0),
        }
    }
}

impl Balancer for RingHash {
    fn pick(&self, endpoints: &[Endpoint]) -> Option<usize> {
        self.pick_keyed(endpoints, mix(self.unkeyed.fetch_add(1, Relaxed)))
    }

    fn keyed(&self) -> bool {
        true
    }

    fn pick_keyed(&self, endpoints: &[Endpoint], key: u64) -> Option<usize> {
        if self.ring.is_empty() || endpoints.is_empty() {
            return None;
        }
        let b = (key >> (64 - self.bits)) as usize;
        let (start, end) = (
            *self.buckets.get(b)? as usize,
            *self.buckets.get(b + 1)? as usize,
        );
        // Every node in the bucket shares the key's top bits; past it, all are larger: the first at
        // or after the key (compared on the hash bits a word keeps) is in the bucket or is the
        // bucket's end (wrapping to the start).
        let key = key & !self.owner_mask;
        let at = start + self.ring.get(start..end)?.partition_point(|&w| w < key);
        let word = self.ring.get(at).or_else(|| self.ring.first())?;
        Some((word & self.owner_mask) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::balancer::hashing::stable_hash;
    use crate::tables::balancer::test_support::{endpoints, moved_share};

    #[test]
    fn adding_one_of_n_moves_about_one_nth_of_the_keys() {
        let ten = endpoints(&[1; 10]);
        let eleven = endpoints(&[1; 11]);
        let share = moved_share(&RingHash::new(&ten), &ten, &RingHash::new(&eleven), &eleven);
        // Ideal 1/11 ≈ 0.091.
        assert!((0.05..=0.14).contains(&share), "{share}");
    }

    #[test]
    fn the_bucket_index_finds_what_a_binary_search_finds() {
        for n in [1, 2, 3, 10, 1_000, 3_000] {
            let eps = endpoints(&vec![1; n]);
            let r = RingHash::new(&eps);
            let mut keys: Vec<u64> = (0..20_000u64)
                .map(|k| stable_hash(&k.to_le_bytes()))
                .collect();
            keys.extend([0, 1, u64::MAX, r.ring[0], r.ring[r.ring.len() - 1]]);
            for key in keys {
                let at = r.ring.partition_point(|&w| w < key & !r.owner_mask);
                let want = (r.ring.get(at).unwrap_or(&r.ring[0]) & r.owner_mask) as usize;
                assert_eq!(
                    r.pick_keyed(&eps, key),
                    Some(want),
                    "n = {n}, key = {key:#x}"
                );
            }
        }
    }

    #[test]
    fn shares_follow_weights_and_nodes_agree() {
        let eps = endpoints(&[1, 3]);
        let a = RingHash::new(&eps);
        let b = RingHash::new(&eps);
        let mut counts = [0usize; 2];
        for k in 0..40_000u64 {
            let key = stable_hash(&k.to_le_bytes());
            let i = a.pick_keyed(&eps, key).unwrap();
            assert_eq!(b.pick_keyed(&eps, key), Some(i), "two builds, same answer");
            counts[i] += 1;
        }
        let share = counts[1] as f64 / 40_000.0;
        assert!((0.70..=0.80).contains(&share), "{counts:?}");
    }
}
