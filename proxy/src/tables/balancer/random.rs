//! Weighted random by health: an endpoint is drawn with probability proportional to its weight (a
//! binary search over prefix sums built with the snapshot), then kept with probability health / 100;
//! after 8 rejections the last draw is kept. Expected O(log n) per pick, no scan of live state.

use super::rng::Rng;
use super::Balancer;
use crate::tables::endpoint::Endpoint;

/// Draws by weight, thins by health.
#[derive(Debug)]
pub(super) struct WeightedRandom {
    rng: Rng,
    /// Running sums of the candidates' weights.
    prefix: Vec<u64>,
}

impl WeightedRandom {
    /// For these candidates, with a random seed.
    pub(super) fn new(endpoints: &[Endpoint]) -> Self {
        WeightedRandom::with_rng(endpoints, Rng::from_entropy())
    }

    /// With a fixed seed (tests).
    #[cfg(test)]
    pub(super) fn seeded(endpoints: &[Endpoint], seed: u64) -> Self {
        WeightedRandom::with_rng(endpoints, Rng::seeded(seed))
    }

    fn with_rng(endpoints: &[Endpoint], rng: Rng) -> Self {
        let mut sum = 0u64;
        let prefix = endpoints
            .iter()
            .map(|e| {
                sum += u64::from(e.weight.max(1));
                sum
            })
            .collect();
        WeightedRandom { rng, prefix }
    }

    fn draw(&self) -> Option<usize> {
        let total = *self.prefix.last()?;
        let x = self.rng.below(total);
        Some(self.prefix.partition_point(|&s| s <= x))
    }
}

impl Balancer for WeightedRandom {
    fn pick(&self, endpoints: &[Endpoint]) -> Option<usize> {
        if endpoints.len() != self.prefix.len() {
            return None;
        }
        let mut last = None;
        for _ in 0..8 {
            let i = self.draw()?;
            let health = endpoints.get(i)?.upstream.health();
            if self.rng.below(100) < u64::from(health) {
                return Some(i);
            }
            last = Some(i);
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::balancer::test_support::{counts, endpoints};
    use edgeplane_controller::LiveEndpoint;

    #[test]
    fn proportional_to_weight_then_health() {
        let eps = endpoints(&[1, 3]);
        let b = WeightedRandom::seeded(&eps, 5);
        let c = counts(&b, &eps, 40_000);
        assert!((9_500..=10_500).contains(&c[0]), "{c:?}");
        // Health 100 and 33 on weights 1 and 3: about equal shares.
        eps[1].upstream.set_health(33);
        let c = counts(&b, &eps, 40_000);
        let ratio = c[1] as f64 / c[0] as f64;
        assert!((0.9..=1.1).contains(&ratio), "{c:?}");
    }
}
