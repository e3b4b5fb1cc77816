//! Maglev hashing (Eisenbud et al., NSDI 2016; weighted as in Envoy): a lookup table of prime size M
//! filled from each endpoint's own permutation of the slots, endpoints taking turns in proportion to
//! their weights. A pick is one table read; adding one of N endpoints moves about 1/N of the keys.

use super::hashing::{address_hash, mix};
use super::Balancer;
use crate::tables::endpoint::Endpoint;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Table size for clusters up to 256 endpoints, and above (primes; ≥ 100 slots per endpoint below
/// 256 endpoints, as the paper advises).
const SMALL: u64 = 4_099;
const LARGE: u64 = 65_537;

/// The lookup table.
#[derive(Debug)]
pub(super) struct Maglev {
    table: Vec<u32>,
    unkeyed: AtomicU64,
}

impl Maglev {
    /// The table of these candidates.
    pub(super) fn new(endpoints: &[Endpoint]) -> Self {
        let n = endpoints.len();
        if n == 0 {
            return Maglev {
                table: Vec::new(),
                unkeyed: AtomicU64::new(0),
            };
        }
        let m = if n <= 256 { SMALL } else { LARGE };
        let max_weight = endpoints.iter().map(|e| e.weight.max(1)).max().unwrap_or(1);
        let prefs: Vec<(u64, u64)> = endpoints
            .iter()
            .map(|e| {
                let h = address_hash(e.upstream.address);
                (h % m, mix(h ^ 0x5bd1_e995) % (m - 1) + 1)
            })
            .collect();
        let mut next = vec![0u64; n];
        let mut claimed = vec![0u64; n];
        let mut table = vec![u32::MAX; m as usize];
        let mut filled = 0u64;
        let mut round = 1u64;
        'fill: loop {
            for (i, e) in endpoints.iter().enumerate() {
                // Endpoint i may take another slot once its weight has earned it: after `round`
                // rounds a weight w has earned round × w / max slots.
                if claimed[i] * u64::from(max_weight) >= round * u64::from(e.weight.max(1)) {
                    continue;
                }
                let (offset, skip) = prefs[i];
                loop {
                    let slot = ((offset + next[i] * skip) % m) as usize;
                    next[i] += 1;
                    if table[slot] == u32::MAX {
                        table[slot] = i as u32;
                        claimed[i] += 1;
                        filled += 1;
                        break;
                    }
                }
                if filled == m {
                    break 'fill;
                }
            }
            round += 1;
        }
        Maglev {
            table,
            unkeyed: AtomicU64::new(0),
        }
    }
}

impl Balancer for Maglev {
    fn pick(&self, endpoints: &[Endpoint]) -> Option<usize> {
        self.pick_keyed(endpoints, mix(self.unkeyed.fetch_add(1, Relaxed)))
    }

    fn keyed(&self) -> bool {
        true
    }

    fn pick_keyed(&self, endpoints: &[Endpoint], key: u64) -> Option<usize> {
        if self.table.is_empty() || endpoints.is_empty() {
            return None;
        }
        let slot = (key % self.table.len() as u64) as usize;
        self.table.get(slot).map(|&i| i as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::balancer::test_support::{endpoints, moved_share};

    #[test]
    fn adding_one_of_n_moves_about_one_nth_of_the_keys() {
        let ten = endpoints(&[1; 10]);
        let eleven = endpoints(&[1; 11]);
        let share = moved_share(&Maglev::new(&ten), &ten, &Maglev::new(&eleven), &eleven);
        // Ideal 1/11 ≈ 0.091; Maglev trades a little extra movement for balance.
        assert!((0.05..=0.16).contains(&share), "{share}");
    }

    #[test]
    fn table_shares_follow_weights() {
        let eps = endpoints(&[1, 3, 2]);
        let table = Maglev::new(&eps).table;
        let mut counts = [0usize; 3];
        for &i in &table {
            counts[i as usize] += 1;
        }
        let m = table.len() as f64;
        let share = |i: usize| counts[i] as f64 / m;
        assert!((share(0) - 1.0 / 6.0).abs() < 0.01, "{counts:?}");
        assert!((share(1) - 3.0 / 6.0).abs() < 0.01, "{counts:?}");
        assert!((share(2) - 2.0 / 6.0).abs() < 0.01, "{counts:?}");
    }
}
