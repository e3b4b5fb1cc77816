//! Smooth weighted round robin, precomputed.
//!
//! nginx keeps a mutable "current weight" per peer under a lock. Here the whole cycle of picks is
//! computed once when the snapshot is built, so a pick is one atomic increment and one array read.
//! The cycle has `sum(weights) / gcd(weights)` entries; beyond [`MAX_CYCLE`] the weights are scaled
//! down proportionally (each stays at least 1), which keeps the shares to within a fraction of a percent.
//!
//! nginx's algorithm costs O(endpoints) per step, so its cycle costs O(endpoints × cycle) to compute:
//! fine for small clusters, 200 ms at 10,000 endpoints. Beyond [`NGINX_BUDGET`] steps the cycle is
//! computed by earliest-deadline-first instead (each endpoint due every `1/weight`, first at half that),
//! in O(cycle + endpoints): the same shares per cycle and the same smoothness (an endpoint's picks are
//! evenly spaced), though not nginx's exact order.

use super::Balancer;
use crate::tables::endpoint::Endpoint;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Longest precomputed cycle (entries are `u32`, so at most 256 KiB per cluster).
pub(super) const MAX_CYCLE: u64 = 1 << 16;

/// Largest `endpoints × cycle` computed with nginx's exact algorithm.
pub(super) const NGINX_BUDGET: u64 = 1 << 12;

/// The precomputed pick order.
#[derive(Debug)]
pub(super) struct SmoothWeighted {
    cycle: Box<[u32]>,
    next: AtomicUsize,
}

impl SmoothWeighted {
    /// Precomputes the cycle for these endpoints' weights.
    pub(super) fn new(endpoints: &[Endpoint]) -> Self {
        let weights: Vec<u64> = endpoints
            .iter()
            .map(|e| u64::from(e.weight.max(1)))
            .collect();
        SmoothWeighted {
            cycle: schedule(&weights).into_boxed_slice(),
            next: AtomicUsize::new(0),
        }
    }
}

impl Balancer for SmoothWeighted {
    fn pick(&self, endpoints: &[Endpoint]) -> Option<usize> {
        if self.cycle.is_empty() {
            return None;
        }
        let i = self.cycle[self.next.fetch_add(1, Relaxed) % self.cycle.len()] as usize;
        // The cycle was built for this exact list; the check only guards against misuse.
        (i < endpoints.len()).then_some(i)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// nginx's smooth weighted round robin, run for one full cycle.
fn schedule(weights: &[u64]) -> Vec<u32> {
    if weights.is_empty() {
        return Vec::new();
    }
    let g = weights.iter().fold(0, |g, &w| gcd(g, w)).max(1);
    let mut w: Vec<i64> = weights.iter().map(|&x| (x / g) as i64).collect();
    let total: u64 = w.iter().map(|&x| x as u64).sum();
    if total > MAX_CYCLE {
        for x in &mut w {
            *x = ((*x as u64 * MAX_CYCLE / total) as i64).max(1);
        }
    }
    let total: i64 = w.iter().sum();
    if (total as u64).saturating_mul(w.len() as u64) > NGINX_BUDGET {
        return earliest_deadline_first(&w, total as usize);
    }
    let mut current = vec![0i64; w.len()];
    let mut cycle = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..w.len() {
            current[i] += w[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        cycle.push(best as u32);
    }
    cycle
}

/// The cycle by earliest deadline first: endpoint `i`'s `k`-th pick is due at `(k + 1/2) / w[i]` of
/// the cycle. Each pick goes to its slot `floor(total × due)` by a counting sort, O(total + endpoints)
/// with no division in the loop; picks that share a slot keep endpoint order.
fn earliest_deadline_first(w: &[i64], total: usize) -> Vec<u32> {
    let t = total as u64;
    // For each endpoint, walk slot = floor(t (2k + 1) / (2 w)) by quotient and remainder steps.
    let each = |f: &mut dyn FnMut(usize, usize)| {
        for (i, &wi) in w.iter().enumerate() {
            let den = 2 * wi as u64;
            let (mut q, mut r) = (t / den, t % den);
            let (step_q, step_r) = ((2 * t) / den, (2 * t) % den);
            for _ in 0..wi {
                f(i, q as usize);
                q += step_q;
                r += step_r;
                if r >= den {
                    q += 1;
                    r -= den;
                }
            }
        }
    };
    let mut start = vec![0usize; total + 1];
    each(&mut |_, slot| start[slot.min(total - 1) + 1] += 1);
    for s in 1..=total {
        start[s] += start[s - 1];
    }
    let mut cycle = vec![0u32; total];
    each(&mut |i, slot| {
        let slot = slot.min(total - 1);
        cycle[start[slot]] = i as u32;
        start[slot] += 1;
    });
    cycle
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::balancer::test_support::{counts, endpoints};

    #[test]
    fn matches_nginx_sequence() {
        // nginx's documented example: weights a=5, b=1, c=1 give a a b a c a a.
        assert_eq!(schedule(&[5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn shares_follow_weights_exactly_per_cycle() {
        let eps = endpoints(&[3, 1, 6]);
        let b = SmoothWeighted::new(&eps);
        assert_eq!(counts(&b, &eps, 10_000), [3_000, 1_000, 6_000]);
    }

    #[test]
    fn huge_weights_are_scaled_not_dropped() {
        let weights: Vec<u32> = (0..100).map(|i| 9_000 + i).collect();
        let eps = endpoints(&weights);
        let b = SmoothWeighted::new(&eps);
        assert!(b.cycle.len() as u64 <= MAX_CYCLE + 100);
        let c = counts(&b, &eps, b.cycle.len());
        assert!(c.iter().all(|&n| n > 0));
    }

    #[test]
    fn large_clusters_use_edf_with_exact_shares_and_even_spacing() {
        let weights: Vec<i64> = (0..2_000).map(|i| 1 + i % 5).collect();
        let total: i64 = weights.iter().sum();
        let cycle = schedule(&weights.iter().map(|&w| w as u64).collect::<Vec<_>>());
        assert_eq!(cycle.len() as i64, total);
        let mut counts = vec![0i64; weights.len()];
        for &i in &cycle {
            counts[i as usize] += 1;
        }
        assert_eq!(
            counts, weights,
            "each endpoint exactly its weight per cycle"
        );
        // Evenly spaced: an endpoint of weight 5 never waits much more than a fifth of the cycle.
        let positions: Vec<usize> = cycle
            .iter()
            .enumerate()
            .filter(|(_, &i)| i == 4)
            .map(|(p, _)| p)
            .collect();
        for pair in positions.windows(2) {
            assert!(
                (pair[1] - pair[0]) as i64 <= total / 5 + weights.len() as i64,
                "{positions:?}"
            );
        }
    }

    #[test]
    fn empty_cluster_picks_nothing() {
        let b = SmoothWeighted::new(&[]);
        assert_eq!(b.pick(&[]), None);
    }
}
