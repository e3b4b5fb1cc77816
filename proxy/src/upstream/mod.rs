//! Live state of one upstream endpoint, shared by every snapshot in which the endpoint keeps its
//! identity (cluster name and address), so that a reload never resets load or health.
//!
//! Around it, everything that reaches the endpoints: idle connections ([`pool`]), one connection
//! ([`conn`]), edgeplane's own HTTP/1.1 client ([`h1`]), TLS to upstreams ([`tls`]); and what judges
//! them: active health checks ([`health_check`]), passive outlier detection ([`outlier`]) with its
//! bookkeeping ([`ejections`]), and the cluster's circuit breaker and live flags ([`cluster_state`]).

pub(crate) mod cluster_state;
pub(crate) mod conn;
pub(crate) mod ejections;
pub mod h1;
pub mod health_check;
pub(crate) mod outlier;
pub(crate) mod pool;
pub(crate) mod resolver;
pub(crate) mod tls;

mod in_flight;
mod live_endpoint;
mod records;

pub(crate) use in_flight::InFlight;
pub use records::AdminState;
pub(crate) use records::{CheckState, OutlierState};

use crate::upstream::pool::Pool;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::Duration;

/// One upstream endpoint's identity, counters and idle connections. Lives behind an `Arc` that
/// successive snapshots share.
#[derive(Debug)]
pub struct Upstream {
    /// Where to connect.
    pub address: SocketAddr,
    /// Idle keep-alive connections to this endpoint.
    pub(crate) pool: Pool,
    /// The live state of the endpoint's cluster (connection count, limits' counters).
    pub(crate) cluster: std::sync::Arc<crate::upstream::cluster_state::ClusterState>,
    stats: Stats,
    live: Live,
    /// Outlier detection's state.
    pub(crate) outlier: std::sync::Mutex<OutlierState>,
    /// Active health checks' state.
    pub(crate) checks: std::sync::Mutex<CheckState>,
}

const DRAINING: u8 = 1;
const ADMIN_DRAIN: u8 = 2;
const ADMIN_DISABLE: u8 = 4;
const EJECTED: u8 = 8;
const CHECK_FAILED: u8 = 16;
/// Half-open after an ejection: one trial request at a time until the first success.
const TRIAL: u8 = 32;

/// What the controller writes in place: health and drain from heartbeats and scaling events, and the
/// load the instance reports about itself.
#[derive(Debug)]
struct Live {
    health: AtomicU8,
    /// [`DRAINING`] (from the controller) and [`ADMIN_DRAIN`] / [`ADMIN_DISABLE`] (from this node's
    /// admin API), so that a pick reads them with one load.
    flags: AtomicU8,
    reported_in_flight: AtomicU32,
    /// CPU use in thousandths.
    reported_cpu_permille: AtomicU32,
    /// Latency the instance reports, in microseconds.
    reported_latency_micros: AtomicU64,
    /// When the endpoint joined or came back, in [`clock_millis`] (0: not warming up).
    warm_from_ms: AtomicU64,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            health: AtomicU8::new(100),
            flags: AtomicU8::new(0),
            reported_in_flight: AtomicU32::new(0),
            reported_cpu_permille: AtomicU32::new(0),
            reported_latency_micros: AtomicU64::new(0),
            warm_from_ms: AtomicU64::new(0),
        }
    }
}

#[derive(Debug)]
struct Stats {
    in_flight: AtomicU32,
    /// EWMA of time to response headers, in microseconds; 0 until the first sample.
    ewma_micros: AtomicU64,
    /// Peak-sensitive EWMA: jumps to a slower sample at once, decays like the EWMA otherwise, and
    /// doubles on a failure, so a slowing or failing endpoint loses traffic quickly. Microseconds.
    peak_micros: AtomicU64,
    consecutive_failures: AtomicU32,
    requests: AtomicU64,
    failures: AtomicU64,
    /// EWMA of the success rate in thousandths (1000 until a failure).
    success_permille: AtomicU32,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            in_flight: AtomicU32::new(0),
            ewma_micros: AtomicU64::new(0),
            peak_micros: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            success_permille: AtomicU32::new(1000),
        }
    }
}

/// Milliseconds since the process's first call, never 0.
fn clock_millis() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 1
}

/// Weight share of a warming endpoint at the start of its ramp, in thousandths.
const WARM_START_PERMILLE: u64 = 100;

/// Weight of the newest sample in the latency EWMA, as a fraction 1/EWMA_DIVISOR.
const EWMA_DIVISOR: u64 = 8;

/// Weight of the newest outcome in the success-rate EWMA, as a fraction 1/SUCCESS_DIVISOR.
const SUCCESS_DIVISOR: u32 = 16;

impl Upstream {
    /// A new endpoint of the cluster whose live state is `cluster`, with zeroed counters and an empty
    /// pool.
    pub(crate) fn new(
        address: SocketAddr,
        pool: Pool,
        cluster: std::sync::Arc<crate::upstream::cluster_state::ClusterState>,
    ) -> Self {
        Upstream {
            address,
            pool,
            cluster,
            stats: Stats::default(),
            live: Live::default(),
            outlier: std::sync::Mutex::new(OutlierState::default()),
            checks: std::sync::Mutex::new(Default::default()),
        }
    }

    /// Whether the endpoint may take new requests: not draining, ejected or failing checks, not down
    /// (health 0), and healthy at least to `threshold`. Half-open after an ejection, it takes one
    /// trial request at a time.
    #[inline]
    pub(crate) fn usable(&self, threshold: u8) -> bool {
        let health = self.live.health.load(Relaxed);
        if health == 0 || health < threshold {
            return false;
        }
        match self.live.flags.load(Relaxed) {
            0 => true,
            TRIAL => self.stats.in_flight.load(Relaxed) == 0,
            _ => false,
        }
    }

    /// Whether the endpoint is half-open: back from an ejection, its first success not yet seen.
    pub(crate) fn on_trial(&self) -> bool {
        self.live.flags.load(Relaxed) & TRIAL != 0
    }

    /// Marks the endpoint half-open (one request at a time) or closes that.
    pub(crate) fn set_trial(&self, on: bool) {
        if on {
            self.live.flags.fetch_or(TRIAL, Relaxed);
        } else {
            self.live.flags.fetch_and(!TRIAL, Relaxed);
        }
    }

    /// Health score, 0 (down) to 100 (the default without heartbeats).
    pub fn health(&self) -> u8 {
        self.live.health.load(Relaxed)
    }

    /// Whether the endpoint is draining by the controller (heartbeat or scaling event).
    pub fn draining(&self) -> bool {
        self.live.flags.load(Relaxed) & DRAINING != 0
    }

    /// Whether outlier detection has taken the endpoint out.
    pub fn ejected(&self) -> bool {
        self.live.flags.load(Relaxed) & EJECTED != 0
    }

    /// Takes the endpoint out (`true`) or lets it back in (warming up again), and starts a new
    /// failure streak. Outlier detection ([`crate::upstream::outlier`]) decides; it also closes the idle pooled
    /// connections of an endpoint it takes out.
    pub(crate) fn set_ejected(&self, ejected: bool) {
        if ejected {
            self.live.flags.fetch_or(EJECTED, Relaxed);
        } else if self.live.flags.fetch_and(!EJECTED, Relaxed) & EJECTED != 0 {
            self.start_warming();
            // Its failure rate is judged afresh from here.
            self.stats.success_permille.store(1000, Relaxed);
        }
        self.stats.consecutive_failures.store(0, Relaxed);
    }

    /// Whether active health checks have taken the endpoint out.
    pub fn check_failed(&self) -> bool {
        self.live.flags.load(Relaxed) & CHECK_FAILED != 0
    }

    /// Takes the endpoint out for failing health checks (`true`), closing its idle pooled connections,
    /// or lets it back in.
    pub(crate) fn set_check_failed(&self, failed: bool) {
        if failed {
            self.live.flags.fetch_or(CHECK_FAILED, Relaxed);
            self.pool.clear();
        } else if self.live.flags.fetch_and(!CHECK_FAILED, Relaxed) & CHECK_FAILED != 0 {
            self.start_warming();
        }
    }

    /// What this node's admin API set on the endpoint.
    pub(crate) fn admin_state(&self) -> AdminState {
        let flags = self.live.flags.load(Relaxed);
        if flags & ADMIN_DISABLE != 0 {
            AdminState::Disabled
        } else if flags & ADMIN_DRAIN != 0 {
            AdminState::Draining
        } else {
            AdminState::Enabled
        }
    }

    /// Sets this node's admin override. Disabling also closes the idle pooled connections.
    pub fn set_admin_state(&self, state: AdminState) {
        let l = &self.live.flags;
        l.fetch_and(!(ADMIN_DRAIN | ADMIN_DISABLE), Relaxed);
        match state {
            AdminState::Enabled => {}
            AdminState::Draining => {
                l.fetch_or(ADMIN_DRAIN, Relaxed);
            }
            AdminState::Disabled => {
                l.fetch_or(ADMIN_DISABLE, Relaxed);
                self.pool.clear();
            }
        }
    }

    /// Starts the slow-start ramp: the endpoint just joined or came back.
    pub fn start_warming(&self) {
        self.live.warm_from_ms.store(clock_millis(), Relaxed);
    }

    /// Whether a warming endpoint takes this pick: with probability ramping from 10 % to 100 % over
    /// `window` since it joined or came back (`draw` is a uniform random number). Always true once
    /// warm; the first pick past the window ends the ramp.
    #[inline]
    pub(crate) fn warm_enough(&self, window: Duration, draw: u64) -> bool {
        let from = self.live.warm_from_ms.load(Relaxed);
        if from == 0 {
            return true;
        }
        let elapsed = clock_millis().saturating_sub(from);
        let window = (window.as_millis() as u64).max(1);
        if elapsed >= window {
            self.live.warm_from_ms.store(0, Relaxed);
            return true;
        }
        let share = WARM_START_PERMILLE + (1000 - WARM_START_PERMILLE) * elapsed / window;
        draw % 1000 < share
    }

    /// Whether the endpoint is in its slow-start ramp (or was, and no pick has looked since).
    pub(crate) fn warming(&self) -> bool {
        self.live.warm_from_ms.load(Relaxed) != 0
    }

    /// Success rate EWMA in thousandths: 1000 = every recent request succeeded.
    pub fn success_permille(&self) -> u32 {
        self.stats.success_permille.load(Relaxed)
    }

    /// Load the instance last reported: (in-flight, CPU 0..=1, latency).
    pub(crate) fn reported_load(&self) -> (u32, f32, Duration) {
        (
            self.live.reported_in_flight.load(Relaxed),
            self.live.reported_cpu_permille.load(Relaxed) as f32 / 1000.0,
            Duration::from_micros(self.live.reported_latency_micros.load(Relaxed)),
        )
    }

    /// Requests sent to this endpoint whose response has not finished.
    pub fn in_flight(&self) -> u32 {
        self.stats.in_flight.load(Relaxed)
    }

    /// Smoothed time to response headers; `None` before the first response.
    pub(crate) fn ewma_latency(&self) -> Option<Duration> {
        match self.stats.ewma_micros.load(Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Failures (connect errors, upstream errors, timeouts) since the last success.
    pub(crate) fn consecutive_failures(&self) -> u32 {
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

    /// Records a response's time to headers and resets the failure streak.
    pub(crate) fn record_success(&self, latency: Duration) {
        let sample = (latency.as_micros() as u64).max(1);
        let old = self.stats.ewma_micros.load(Relaxed);
        let new = if old == 0 {
            sample
        } else {
            // Integer EWMA; a lost update under a race only drops one sample.
            (old * (EWMA_DIVISOR - 1) + sample) / EWMA_DIVISOR
        };
        self.stats.ewma_micros.store(new.max(1), Relaxed);
        let peak = self.stats.peak_micros.load(Relaxed);
        let next = if sample >= peak {
            sample
        } else {
            (peak * (EWMA_DIVISOR - 1) + sample) / EWMA_DIVISOR
        };
        self.stats.peak_micros.store(next.max(1), Relaxed);
        if self.stats.consecutive_failures.load(Relaxed) != 0 {
            self.stats.consecutive_failures.store(0, Relaxed);
        }
        let rate = self.stats.success_permille.load(Relaxed);
        if rate < 1000 {
            self.stats
                .success_permille
                .store(rate + (1000 - rate).div_ceil(SUCCESS_DIVISOR), Relaxed);
        }
    }

    /// Peak-sensitive latency estimate in microseconds; 0 before the first response or failure.
    pub(crate) fn peak_latency_micros(&self) -> u64 {
        self.stats.peak_micros.load(Relaxed)
    }

    /// Records a failed request.
    pub(crate) fn record_failure(&self) {
        // A failure costs like a slow answer: double the estimate, at least 10 ms, so that an
        // endpoint failing fast is not preferred for being fast.
        let peak = self.stats.peak_micros.load(Relaxed);
        self.stats
            .peak_micros
            .store(peak.saturating_mul(2).clamp(10_000, 60_000_000), Relaxed);
        self.stats.consecutive_failures.fetch_add(1, Relaxed);
        self.stats.failures.fetch_add(1, Relaxed);
        let rate = self.stats.success_permille.load(Relaxed);
        self.stats
            .success_permille
            .store(rate - rate.div_ceil(SUCCESS_DIVISOR).min(rate), Relaxed);
    }
}
