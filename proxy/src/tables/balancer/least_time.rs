//! Least response time: the endpoint with the lowest latency EWMA × (in-flight + 1) / weight, over
//! every candidate. Endpoints without a latency sample yet count as the fastest, so new endpoints get
//! traffic and a sample. Ties are broken by a rotating start.

use super::Balancer;
use crate::tables::endpoint::Endpoint;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Scans the candidates from a rotating start.
#[derive(Debug, Default)]
pub(super) struct LeastResponseTime {
    start: AtomicUsize,
}

/// An endpoint's cost as a fraction (numerator, weight), compared without division.
pub(super) fn cost(e: &Endpoint, latency_micros: u64) -> (u128, u128) {
    let load = u128::from(e.upstream.in_flight()) + 1;
    (
        u128::from(latency_micros.max(1)) * load,
        u128::from(e.weight.max(1)),
    )
}

/// Whether cost `a` is below cost `b`.
pub(super) fn cheaper(a: (u128, u128), b: (u128, u128)) -> bool {
    a.0 * b.1 < b.0 * a.1
}

impl Balancer for LeastResponseTime {
    fn pick(&self, endpoints: &[Endpoint]) -> Option<usize> {
        let n = endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.start.fetch_add(1, Relaxed) % n;
        let latency = |e: &Endpoint| {
            e.upstream
                .ewma_latency()
                .map_or(0, |d| d.as_micros() as u64)
        };
        let mut best = start;
        let mut best_cost = cost(&endpoints[start], latency(&endpoints[start]));
        for k in 1..n {
            let i = (start + k) % n;
            let c = cost(&endpoints[i], latency(&endpoints[i]));
            if cheaper(c, best_cost) {
                best = i;
                best_cost = c;
            }
        }
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::balancer::test_support::{counts, endpoints};
    use std::time::Duration;

    #[test]
    fn prefers_the_fastest_and_weighs_load() {
        let eps = endpoints(&[1, 1, 1]);
        eps[0].upstream.record_success(Duration::from_millis(30));
        eps[1].upstream.record_success(Duration::from_millis(10));
        eps[2].upstream.record_success(Duration::from_millis(20));
        let b = LeastResponseTime::default();
        assert_eq!(counts(&b, &eps, 10), [0, 10, 0]);
        // Three in flight at the fastest: 10 ms × 4 > 20 ms × 1.
        let _busy: Vec<_> = (0..3).map(|_| eps[1].upstream.start_request()).collect();
        assert_eq!(counts(&b, &eps, 10), [0, 0, 10]);
    }

    #[test]
    fn equal_endpoints_share_evenly() {
        let eps = endpoints(&[1, 1, 1, 1]);
        let b = LeastResponseTime::default();
        assert_eq!(counts(&b, &eps, 400), [100, 100, 100, 100]);
    }
}
