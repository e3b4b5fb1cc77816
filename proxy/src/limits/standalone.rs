//! One rate limit on its own, checked exactly as the request path checks it: for the benchmarks.

use super::key::KeySource;
use super::{check, Limiter, Owner};
use edgeplane_config::model::RateLimit;
use std::time::Instant;

/// A rate limit outside any snapshot (no metrics, no fleet share).
#[derive(Debug)]
pub struct StandaloneLimit {
    limiters: [Limiter; 1],
}

impl StandaloneLimit {
    /// The limit `spec`.
    pub fn new(spec: &RateLimit) -> StandaloneLimit {
        StandaloneLimit {
            limiters: [Limiter::new(spec, Owner::Route, "bench", None, None)],
        }
    }

    /// Whether a request with these headers from `client_ip` (as text), arriving at `received`, is
    /// admitted.
    pub fn admits(&self, headers: &http::HeaderMap, client_ip: &[u8], received: Instant) -> bool {
        let source = KeySource {
            headers,
            peer: client_ip,
            trusted: &[],
        };
        check(&self.limiters, &source, received, &mut None).is_ok()
    }
}
