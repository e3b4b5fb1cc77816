//! Ring hash (Karger et al., as in Envoy): each endpoint owns virtual nodes on a 64-bit ring, in
//! proportion to its weight; a key goes to the first virtual node at or after its hash. Adding or
//! removing one of N endpoints moves about 1/N of the keys.

use super::hashing::{address_hash, mix};
use super::Balancer;
use crate::tables::Endpoint;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Largest ring.
const MAX_RING: u64 = 1 << 18;
/// Virtual nodes of an endpoint of the cluster's highest weight: 160 while the ring stays under
/// `MAX_RING`, so that up to ~1,600 endpoints an endpoint's virtual nodes do not depend on how many
/// others there are (adding one moves only its own share of keys); fewer, down to 16, beyond.
const MAX_VNODES: u64 = 160;
const MIN_VNODES: u64 = 16;

/// A sorted ring: the virtual nodes' hashes, and beside them (same positions) their endpoints, so that
/// the binary search touches only the 8-byte hashes.
#[derive(Debug)]
pub struct RingHash {
    hashes: Vec<u64>,
    owners: Vec<u32>,
    /// Spreads requests that carry no key.
    unkeyed: AtomicU64,
}

impl RingHash {
    /// The ring of these candidates.
    pub fn new(endpoints: &[Endpoint]) -> Self {
        let n = endpoints.len().max(1) as u64;
        let top = (MAX_RING / n).clamp(MIN_VNODES, MAX_VNODES);
        let max_weight = endpoints
            .iter()
            .map(|e| u64::from(e.weight.max(1)))
            .max()
            .unwrap_or(1);
        let mut ring = Vec::with_capacity((top * n) as usize);
        for (i, e) in endpoints.iter().enumerate() {
            let base = address_hash(e.upstream.address);
            // In proportion to weight, at least one.
            let vnodes = (top * u64::from(e.weight.max(1))).div_ceil(max_weight);
            for r in 0..vnodes {
                ring.push((mix(base ^ r.wrapping_mul(0x9e37_79b9_7f4a_7c15)), i as u32));
            }
        }
        ring.sort_unstable();
        RingHash {
            hashes: ring.iter().map(|&(h, _)| h).collect(),
            owners: ring.iter().map(|&(_, i)| i).collect(),
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
        if self.hashes.is_empty() || endpoints.is_empty() {
            return None;
        }
        let at = self.hashes.partition_point(|&h| h < key);
        let i = self.owners.get(at).or_else(|| self.owners.first())?;
        Some(*i as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::hashing::stable_hash;
    use crate::balancer::test_support::{endpoints, moved_share};

    #[test]
    fn adding_one_of_n_moves_about_one_nth_of_the_keys() {
        let ten = endpoints(&[1; 10]);
        let eleven = endpoints(&[1; 11]);
        let share = moved_share(&RingHash::new(&ten), &ten, &RingHash::new(&eleven), &eleven);
        // Ideal 1/11 ≈ 0.091.
        assert!((0.05..=0.14).contains(&share), "{share}");
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
