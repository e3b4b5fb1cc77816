//! Least connections: the endpoint with the fewest in-flight requests relative to its weight.
//!
//! Ties are broken by a rotating start, so that idle endpoints share a light load evenly instead of
//! the first one taking it all.

use super::Balancer;
use crate::tables::endpoint::Endpoint;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Scans the candidates from a rotating start for the lowest `(in_flight + 1) / weight`.
#[derive(Debug, Default)]
pub(super) struct LeastConnections {
    start: AtomicUsize,
}

impl Balancer for LeastConnections {
    fn pick(&self, endpoints: &[Endpoint]) -> Option<usize> {
        let n = endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.start.fetch_add(1, Relaxed) % n;
        let load = |i: usize| {
            let e = &endpoints[i];
            (
                u64::from(e.upstream.in_flight()) + 1,
                u64::from(e.weight.max(1)),
            )
        };
        let mut best = start;
        let (mut best_load, mut best_weight) = load(start);
        for k in 1..n {
            let i = (start + k) % n;
            let (l, w) = load(i);
            // l / w < best_load / best_weight, without division.
            if l * best_weight < best_load * w {
                best = i;
                best_load = l;
                best_weight = w;
            }
        }
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::balancer::test_support::{counts, endpoints};

    #[test]
    fn prefers_the_least_loaded() {
        let eps = endpoints(&[1, 1, 1]);
        let _busy: Vec<_> = (0..3).map(|_| eps[0].upstream.start_request()).collect();
        let _one = eps[1].upstream.start_request();
        let b = LeastConnections::default();
        for _ in 0..10 {
            assert_eq!(b.pick(&eps), Some(2));
        }
    }

    #[test]
    fn idle_endpoints_share_evenly() {
        let eps = endpoints(&[1, 1, 1, 1]);
        let b = LeastConnections::default();
        assert_eq!(counts(&b, &eps, 400), [100, 100, 100, 100]);
    }

    #[test]
    fn weight_scales_capacity() {
        let eps = endpoints(&[1, 4]);
        // 3 in flight on the weight-4 endpoint still beats 1 on the weight-1 endpoint: 4/4 < 2/1.
        let _a = eps[0].upstream.start_request();
        let _b: Vec<_> = (0..3).map(|_| eps[1].upstream.start_request()).collect();
        let b = LeastConnections::default();
        assert_eq!(b.pick(&eps), Some(1));
    }
}
