//! Round robin: each endpoint in turn, ignoring weights.

use super::Balancer;
use crate::tables::endpoint::Endpoint;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// A shared counter modulo the number of endpoints.
#[derive(Debug, Default)]
pub(super) struct RoundRobin {
    next: AtomicUsize,
}

impl Balancer for RoundRobin {
    fn pick(&self, endpoints: &[Endpoint]) -> Option<usize> {
        if endpoints.is_empty() {
            return None;
        }
        Some(self.next.fetch_add(1, Relaxed) % endpoints.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::balancer::test_support::{counts, endpoints};

    #[test]
    fn visits_each_in_turn() {
        let eps = endpoints(&[1, 5, 1]);
        let b = RoundRobin::default();
        let picks: Vec<_> = (0..6).map(|_| b.pick(&eps).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert_eq!(counts(&b, &eps, 300), [100, 100, 100]);
        assert_eq!(b.pick(&[]), None);
    }
}
