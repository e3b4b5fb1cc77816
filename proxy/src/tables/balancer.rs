//! Balancers: given a cluster's candidate endpoints, pick one.
//!
//! A balancer is built on the cold path whenever a snapshot is built (weights expanded, schedules
//! precomputed) and only read on the request path, where `pick` takes no lock and allocates nothing.
//! Each policy is one file; adding one means a new file, a [`Balancing`] variant and a line in [`build`].

mod adaptive;
pub(crate) mod hashing;
mod least_conn;
mod least_time;
mod maglev;
mod p2c;
mod random;
mod ring;
pub(crate) mod rng;
mod round_robin;
mod weighted;

use crate::tables::endpoint::Endpoint;
use edgeplane_config::model::Balancing;
use std::fmt;

/// Picks an endpoint for a request.
pub(crate) trait Balancer: Send + Sync + fmt::Debug {
    /// Returns an index into `endpoints`, which is the same candidate list the balancer was built for,
    /// or `None` if it is empty.
    fn pick(&self, endpoints: &[Endpoint]) -> Option<usize>;

    /// Picks for a request whose hash key is `key` (consistent hashing); other policies ignore it.
    fn pick_keyed(&self, endpoints: &[Endpoint], key: u64) -> Option<usize> {
        let _ = key;
        self.pick(endpoints)
    }

    /// Whether the policy uses a request key (then the request path computes one).
    fn keyed(&self) -> bool {
        false
    }
}

/// Builds the balancer of `policy` for these candidate endpoints.
pub(crate) fn build(policy: Balancing, endpoints: &[Endpoint]) -> Box<dyn Balancer> {
    match policy {
        Balancing::RoundRobin => Box::new(round_robin::RoundRobin::default()),
        Balancing::WeightedRoundRobin => Box::new(weighted::SmoothWeighted::new(endpoints)),
        Balancing::LeastConnections => Box::new(least_conn::LeastConnections::default()),
        Balancing::LeastResponseTime => Box::new(least_time::LeastResponseTime::default()),
        Balancing::PowerOfTwo => Box::new(p2c::PowerOfTwo::new()),
        Balancing::Random => Box::new(random::WeightedRandom::new(endpoints)),
        Balancing::RingHash => Box::new(ring::RingHash::new(endpoints)),
        Balancing::Maglev => Box::new(maglev::Maglev::new(endpoints)),
        Balancing::Adaptive => Box::new(adaptive::Adaptive::new()),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::tables::endpoint::Endpoint;
    use crate::upstream::pool::Pool;
    use crate::upstream::Upstream;
    use std::sync::Arc;
    use std::time::Duration;

    /// Endpoints on 127.0.0.1:1.. with the given weights.
    pub(crate) fn endpoints(weights: &[u32]) -> Vec<Endpoint> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Endpoint {
                upstream: Arc::new(Upstream::new(
                    ([127, 0, 0, 1], 1 + i as u16).into(),
                    Pool::new(edgeplane_config::model::Pool {
                        max_idle_per_endpoint: Some(1),
                        idle_timeout: Duration::from_secs(1),
                    }),
                    Default::default(),
                )),
                weight,
                zone: None,
                priority: 0,
            })
            .collect()
    }

    /// The share of 20,000 keys whose endpoint (by address) differs between two balancers.
    pub(crate) fn moved_share(
        before: &dyn super::Balancer,
        b_eps: &[Endpoint],
        after: &dyn super::Balancer,
        a_eps: &[Endpoint],
    ) -> f64 {
        let keys = 20_000u64;
        let moved = (0..keys)
            .filter(|k| {
                let key = super::hashing::stable_hash(&k.to_le_bytes());
                let x = before
                    .pick_keyed(b_eps, key)
                    .map(|i| b_eps[i].upstream.address);
                let y = after
                    .pick_keyed(a_eps, key)
                    .map(|i| a_eps[i].upstream.address);
                x != y
            })
            .count();
        moved as f64 / keys as f64
    }

    /// How often each index is picked in `n` picks.
    pub(crate) fn counts(b: &dyn super::Balancer, eps: &[Endpoint], n: usize) -> Vec<usize> {
        let mut counts = vec![0; eps.len()];
        for _ in 0..n {
            counts[b.pick(eps).expect("non-empty")] += 1;
        }
        counts
    }
}
