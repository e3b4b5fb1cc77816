//! Power of two choices over peak EWMA (as Finagle and Linkerd do): two distinct random candidates,
//! and the one with the lower peak-EWMA latency × (in-flight + 1) / weight wins. O(1) per pick at any
//! size, and it reacts at once to an endpoint slowing down or failing (the peak estimate jumps up and
//! doubles on failures, see [`crate::upstream::Upstream::peak_latency_micros`]).

use super::least_time::{cheaper, cost};
use super::rng::Rng;
use super::Balancer;
use crate::tables::endpoint::Endpoint;

/// Two random choices, the cheaper wins.
#[derive(Debug)]
pub(super) struct PowerOfTwo {
    rng: Rng,
}

impl PowerOfTwo {
    /// With a random seed.
    pub(super) fn new() -> Self {
        PowerOfTwo {
            rng: Rng::from_entropy(),
        }
    }

    /// With a fixed seed (tests).
    #[cfg(test)]
    pub(super) fn seeded(seed: u64) -> Self {
        PowerOfTwo {
            rng: Rng::seeded(seed),
        }
    }
}

impl Balancer for PowerOfTwo {
    fn pick(&self, endpoints: &[Endpoint]) -> Option<usize> {
        cheaper_of_two(&self.rng, endpoints, |e| {
            cost(e, e.upstream.peak_latency_micros())
        })
    }
}

/// Two distinct random candidates; the one whose `cost` (a fraction, compared without division) is
/// lower wins, the first on a tie.
pub(super) fn cheaper_of_two(
    rng: &Rng,
    endpoints: &[Endpoint],
    cost: impl Fn(&Endpoint) -> (u128, u128),
) -> Option<usize> {
    match endpoints.len() {
        0 => return None,
        1 => return Some(0),
        _ => {}
    }
    let (a, b) = rng.two_distinct(endpoints.len());
    Some(if cheaper(cost(&endpoints[b]), cost(&endpoints[a])) {
        b
    } else {
        a
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::balancer::test_support::{counts, endpoints};
    use std::time::Duration;

    #[test]
    fn equal_endpoints_share_evenly() {
        let eps = endpoints(&[1, 1, 1, 1]);
        let b = PowerOfTwo::seeded(7);
        let c = counts(&b, &eps, 40_000);
        // Each near 10,000: within 5 % (a loose bound for a seeded, deterministic run).
        assert!(c.iter().all(|&x| (9_500..=10_500).contains(&x)), "{c:?}");
    }

    #[test]
    fn a_slow_or_failing_endpoint_loses_traffic() {
        let eps = endpoints(&[1, 1, 1]);
        for e in &eps {
            e.upstream.record_success(Duration::from_millis(5));
        }
        eps[0].upstream.record_success(Duration::from_millis(200));
        let b = PowerOfTwo::seeded(11);
        let c = counts(&b, &eps, 30_000);
        // The slow one only wins when drawn against itself, which cannot happen: it gets nothing.
        assert_eq!(c[0], 0, "{c:?}");
        // Failing fast is not rewarded: a failure doubles the estimate (at least 10 ms), so the
        // failing endpoint now loses every draw against the healthy one and wins only against the
        // slow one: a third of the picks, the healthy one two thirds.
        eps[1].upstream.record_failure();
        let c = counts(&b, &eps, 30_000);
        assert!((9_500..=10_500).contains(&c[1]), "{c:?}");
        assert!((19_500..=20_500).contains(&c[2]), "{c:?}");
    }

    #[test]
    fn weight_and_load_count() {
        let eps = endpoints(&[1, 3]);
        for e in &eps {
            e.upstream.record_success(Duration::from_millis(5));
        }
        let b = PowerOfTwo::seeded(3);
        // With two endpoints both are always drawn: the heavier wins every tie-free comparison.
        assert_eq!(counts(&b, &eps, 100), [0, 100]);
        let _busy: Vec<_> = (0..4).map(|_| eps[1].upstream.start_request()).collect();
        // (4 + 1) / 3 > 1 / 1: now the light, idle one wins.
        assert_eq!(counts(&b, &eps, 100), [100, 0]);
    }
}
