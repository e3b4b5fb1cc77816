//! The node's answered requests, all routes together, as plain counters and a fixed-bucket histogram
//! of the time to response headers: what a node reports in its status for rollout gates (5xx ratio,
//! proxy-error ratio, p99). One atomic add per answered request, two for a 5xx.

use edgeplane_bus::wire::HEADER_BOUNDS_MS;
use edgeplane_controller::TrafficCounts;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Bucket bounds in microseconds, for a comparison without floating point on the request path.
const BOUNDS_US: [u64; HEADER_BOUNDS_MS.len()] = {
    let mut out = [0u64; HEADER_BOUNDS_MS.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = (HEADER_BOUNDS_MS[i] * 1000.0) as u64;
        i += 1;
    }
    out
};

/// Counters since the node started.
#[derive(Debug, Default)]
pub(crate) struct TrafficTotals {
    status_5xx: AtomicU64,
    proxy_errors: AtomicU64,
    buckets: [AtomicU64; HEADER_BOUNDS_MS.len() + 1],
}

impl TrafficTotals {
    /// Counts a response with `status`, `elapsed` after the request arrived.
    pub(crate) fn answered(&self, status: u16, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_US.partition_point(|&b| b < us);
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Relaxed);
        }
        if status >= 500 {
            self.status_5xx.fetch_add(1, Relaxed);
        }
    }

    /// Counts a request the proxy answered itself; `code` is its `x-edgeplane-error` code. The
    /// client's own faults (`bad_request`, `client_timeout`, `payload_too_large`) are not the
    /// proxy's errors.
    pub(crate) fn proxy_error(&self, code: &str) {
        if !matches!(code, "bad_request" | "client_timeout" | "payload_too_large") {
            self.proxy_errors.fetch_add(1, Relaxed);
        }
    }

    /// The counters now.
    pub(crate) fn counts(&self) -> TrafficCounts {
        let headers_ms: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        TrafficCounts {
            answered: headers_ms.iter().sum(),
            status_5xx: self.status_5xx.load(Relaxed),
            proxy_errors: self.proxy_errors.load(Relaxed),
            headers_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_upper_bound_inclusive() {
        let t = TrafficTotals::default();
        t.answered(200, Duration::from_micros(500)); // 0.5 ms: first bucket
        t.answered(200, Duration::from_micros(501)); // second
        t.answered(503, Duration::from_millis(60)); // 75 ms bucket
        t.answered(200, Duration::from_secs(11)); // slower than every bound
        t.proxy_error("no_endpoint");
        t.proxy_error("bad_request");
        let c = t.counts();
        assert_eq!((c.answered, c.status_5xx, c.proxy_errors), (4, 1, 1));
        assert_eq!((c.headers_ms[0], c.headers_ms[1]), (1, 1));
        let i75 = HEADER_BOUNDS_MS.iter().position(|&b| b == 75.0).unwrap();
        assert_eq!(c.headers_ms[i75], 1);
        assert_eq!(c.headers_ms[HEADER_BOUNDS_MS.len()], 1);
    }
}
