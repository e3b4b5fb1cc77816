//! A cluster's ejection bookkeeping, kept across snapshots in its [`crate::upstream::cluster_state::ClusterState`]: why
//! endpoints were taken out (counted by reason), connect failures that were this node's own, and the
//! lock under which outlier detection decides an ejection (so that `max_ejected_percent` holds). The
//! decisions themselves are in `outlier/`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};

/// Why an endpoint was taken out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// A connect to it was refused, reset or timed out.
    Connect,
    /// `consecutive_failures` failures in a row.
    Streak,
    /// Its failure rate reached `failure_rate`.
    Rate,
    /// It failed again right after coming back (half-open).
    HalfOpen,
}

impl Why {
    /// Every reason, in [`Why::index`] order, with its metric label.
    pub(crate) const LABELS: [&'static str; 4] = [
        "connect",
        "consecutive_failures",
        "failure_rate",
        "half_open",
    ];

    pub(crate) fn index(self) -> usize {
        match self {
            Why::Connect => 0,
            Why::Streak => 1,
            Why::Rate => 2,
            Why::HalfOpen => 3,
        }
    }

    pub(crate) fn text(self) -> &'static str {
        match self {
            Why::Connect => "connect refused or timed out",
            Why::Streak => "consecutive failures",
            Why::Rate => "failure rate",
            Why::HalfOpen => "failed again after coming back",
        }
    }
}

/// A cluster's outlier bookkeeping that outlives snapshots (it lives in the cluster's
/// [`crate::upstream::cluster_state::ClusterState`]).
#[derive(Debug, Default)]
pub(crate) struct ClusterBook {
    /// Held while deciding to eject: the count of ejected endpoints and the ejection agree.
    decide: Mutex<()>,
    /// Ejections so far, by [`Why`].
    ejections: [AtomicU64; 4],
    /// Connect failures caused by this node's own resources (never charged to an endpoint).
    local_errors: AtomicU64,
    /// When a local connect error was last logged, in seconds since the process's first log.
    local_logged: AtomicU64,
}

impl ClusterBook {
    /// Held while deciding to eject, so that the count of ejected endpoints and the ejection agree.
    pub(crate) fn decide(&self) -> MutexGuard<'_, ()> {
        self.decide.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts an ejection for `why`.
    pub(crate) fn count(&self, why: Why) {
        self.ejections[why.index()].fetch_add(1, Relaxed);
    }

    /// Ejections so far, by reason ([`Why::LABELS`] order).
    pub(crate) fn ejections(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.ejections[i].load(Relaxed))
    }

    /// Connect failures caused by this node's own resources.
    pub(crate) fn local_errors(&self) -> u64 {
        self.local_errors.load(Relaxed)
    }

    /// Counts a connect failure caused by this node's own resources, and logs it (at most once a
    /// second per cluster).
    pub(crate) fn local_error(&self, cluster: &str, endpoint: std::net::SocketAddr, error: &str) {
        if self.count_local() {
            tracing::warn!(%cluster, %endpoint, error, "connect failed for lack of local resources (file descriptors, ports, memory); not charged to the endpoint");
        }
    }

    /// Counts a connect failure caused by this node's own resources that a request waited out (until
    /// a connection of the cluster came back or closed), and logs it (at most once a second per
    /// cluster).
    pub(crate) fn local_wait(&self, endpoint: std::net::SocketAddr, error: &str) {
        if self.count_local() {
            tracing::warn!(%endpoint, error, "connect failed for lack of local resources (file descriptors, ports, memory); the request waited for a connection to come back");
        }
    }

    /// Counts a local connect failure; whether it is the first of this second (to be logged).
    fn count_local(&self) -> bool {
        self.local_errors.fetch_add(1, Relaxed);
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let now = START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs()
            + 1;
        self.local_logged.swap(now, Relaxed) != now
    }
}
