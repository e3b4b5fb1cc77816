//! The adaptive score: two random candidates (power of two choices), and the better score wins. The
//! score combines what each signal alone gets wrong:
//!
//! ```text
//! cost = peak-EWMA latency × (in-flight + 1) × (1 + reported CPU)
//!        ─────────────────────────────────────────────────────────
//!              weight × health × success rate
//! ```
//!
//! A backend that fails fast with 5xx or 429 looks fast to a latency-only EWMA; here every failure
//! doubles its latency estimate and lowers its success rate, so its cost rises on both counts.

use super::rng::Rng;
use super::Balancer;
use crate::tables::endpoint::Endpoint;

/// Two random choices, the lower cost wins.
#[derive(Debug)]
pub(super) struct Adaptive {
    rng: Rng,
}

impl Adaptive {
    /// With a random seed.
    pub(super) fn new() -> Self {
        Adaptive {
            rng: Rng::from_entropy(),
        }
    }

    /// With a fixed seed (tests).
    #[cfg(test)]
    pub(super) fn seeded(seed: u64) -> Self {
        Adaptive {
            rng: Rng::seeded(seed),
        }
    }
}

/// The cost as a fraction (numerator, denominator), compared without division.
fn cost(e: &Endpoint) -> (u128, u128) {
    let u = &e.upstream;
    let latency = u128::from(u.peak_latency_micros().max(1));
    let load = u128::from(u.in_flight()) + 1;
    let (_, cpu, _) = u.reported_load();
    let cpu_permille = 1000 + (cpu.clamp(0.0, 1.0) * 1000.0) as u128;
    let health = u128::from(u.health().max(1));
    // A floor keeps an endpoint that failed everything comparable (and able to win back).
    let success = u128::from(u.success_permille().max(10));
    (
        latency * load * cpu_permille,
        u128::from(e.weight.max(1)) * health * success,
    )
}

impl Balancer for Adaptive {
    fn pick(&self, endpoints: &[Endpoint]) -> Option<usize> {
        super::p2c::cheaper_of_two(&self.rng, endpoints, cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::balancer::test_support::{counts, endpoints};
    use edgeplane_controller::LiveEndpoint;
    use std::time::Duration;

    #[test]
    fn equal_endpoints_share_evenly() {
        let eps = endpoints(&[1, 1, 1, 1]);
        let c = counts(&Adaptive::seeded(5), &eps, 40_000);
        assert!(c.iter().all(|&x| (9_500..=10_500).contains(&x)), "{c:?}");
    }

    #[test]
    fn failing_fast_is_not_favoured_and_recovery_wins_traffic_back() {
        let eps = endpoints(&[1, 1]);
        // The healthy one answers in 20 ms; the other answers 503 in 1 ms, over and over (the
        // request path records a 5xx as a failure, whatever its speed).
        for _ in 0..50 {
            eps[0].upstream.record_success(Duration::from_millis(20));
            eps[1].upstream.record_failure();
        }
        assert!(eps[1].upstream.success_permille() < 100);
        let b = Adaptive::seeded(9);
        assert_eq!(counts(&b, &eps, 1_000), [1_000, 0]);
        // It recovers: fast successes raise its success rate and lower its estimate again.
        for _ in 0..200 {
            eps[1].upstream.record_success(Duration::from_millis(1));
        }
        assert_eq!(counts(&b, &eps, 1_000), [0, 1_000]);
    }

    #[test]
    fn health_load_and_reported_cpu_count() {
        let eps = endpoints(&[1, 1]);
        for e in &eps {
            e.upstream.record_success(Duration::from_millis(5));
        }
        let b = Adaptive::seeded(3);
        eps[0].upstream.set_health(40);
        assert_eq!(counts(&b, &eps, 100), [0, 100], "lower health loses");
        eps[0].upstream.set_health(100);
        eps[1].upstream.set_reported(0, 0.9, 5.0);
        assert_eq!(counts(&b, &eps, 100), [100, 0], "a busy CPU loses");
        let _busy: Vec<_> = (0..3).map(|_| eps[0].upstream.start_request()).collect();
        assert_eq!(
            counts(&b, &eps, 100),
            [0, 100],
            "4× the load outweighs 1.9× the CPU"
        );
    }
}
