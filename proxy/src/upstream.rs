//! Live state of one upstream endpoint, shared by every snapshot in which the endpoint keeps its
//! identity (cluster name and address), so that a reload never resets load or health.

use crate::pool::Pool;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// One upstream endpoint's identity, counters and idle connections. Lives behind an `Arc` that
/// successive snapshots share.
#[derive(Debug)]
pub struct Upstream {
    /// Where to connect.
    pub address: SocketAddr,
    /// Idle keep-alive connections to this endpoint.
    pub pool: Pool,
    stats: Stats,
}

#[derive(Debug, Default)]
struct Stats {
    in_flight: AtomicU32,
    /// EWMA of time to response headers, in microseconds; 0 until the first sample.
    ewma_micros: AtomicU64,
    consecutive_failures: AtomicU32,
    requests: AtomicU64,
    failures: AtomicU64,
}

/// Weight of the newest sample in the latency EWMA, as a fraction 1/EWMA_DIVISOR.
const EWMA_DIVISOR: u64 = 8;

impl Upstream {
    /// A new endpoint with zeroed counters and an empty pool.
    pub fn new(address: SocketAddr, pool: Pool) -> Self {
        Upstream {
            address,
            pool,
            stats: Stats::default(),
        }
    }

    /// Requests sent to this endpoint whose response has not finished.
    pub fn in_flight(&self) -> u32 {
        self.stats.in_flight.load(Relaxed)
    }

    /// Smoothed time to response headers; `None` before the first response.
    pub fn ewma_latency(&self) -> Option<Duration> {
        match self.stats.ewma_micros.load(Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Failures (connect errors, upstream errors, timeouts) since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.stats.consecutive_failures.load(Relaxed)
    }

    /// Requests sent, ever.
    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Relaxed)
    }

    /// Failed requests, ever.
    pub fn failures(&self) -> u64 {
        self.stats.failures.load(Relaxed)
    }

    /// Marks a request as started; the guard ends it when dropped.
    pub fn start_request(self: &std::sync::Arc<Self>) -> InFlight {
        self.stats.in_flight.fetch_add(1, Relaxed);
        self.stats.requests.fetch_add(1, Relaxed);
        InFlight(self.clone())
    }

    /// Records a response's time to headers and resets the failure streak.
    pub fn record_success(&self, latency: Duration) {
        let sample = (latency.as_micros() as u64).max(1);
        let old = self.stats.ewma_micros.load(Relaxed);
        let new = if old == 0 {
            sample
        } else {
            // Integer EWMA; a lost update under a race only drops one sample.
            (old * (EWMA_DIVISOR - 1) + sample) / EWMA_DIVISOR
        };
        self.stats.ewma_micros.store(new.max(1), Relaxed);
        if self.stats.consecutive_failures.load(Relaxed) != 0 {
            self.stats.consecutive_failures.store(0, Relaxed);
        }
    }

    /// Records a failed request.
    pub fn record_failure(&self) {
        self.stats.consecutive_failures.fetch_add(1, Relaxed);
        self.stats.failures.fetch_add(1, Relaxed);
    }
}

/// Holds one in-flight request on an endpoint; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight(std::sync::Arc<Upstream>);

impl InFlight {
    /// The endpoint the request went to.
    pub fn upstream(&self) -> &std::sync::Arc<Upstream> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.stats.in_flight.fetch_sub(1, Relaxed);
    }
}
