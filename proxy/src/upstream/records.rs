//! What is kept per endpoint beside its atomics, under a lock the request path never takes: the
//! operator's override (admin API), passive outlier detection's bookkeeping and the active health
//! checks'.

/// An operator's override of one endpoint on this node (admin API), kept across rebuilds but not
/// across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    /// No override: the endpoint serves if healthy.
    Enabled,
    /// No new requests; in-flight ones finish.
    Draining,
    /// No new requests, and idle pooled connections are closed.
    Disabled,
}

impl AdminState {
    /// Name in the admin API.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AdminState::Enabled => "enabled",
            AdminState::Draining => "draining",
            AdminState::Disabled => "disabled",
        }
    }
}

/// Passive outlier detection's bookkeeping for one endpoint (touched by the sweeper and the admin API,
/// never by the request path).
#[derive(Debug, Default)]
pub(crate) struct OutlierState {
    /// Ejections so far, decayed while the endpoint stays in.
    pub(crate) ejections: u32,
    /// Ejected until then.
    pub(crate) until: Option<tokio::time::Instant>,
    /// When the endpoint last came back (or last had its ejection count decayed).
    pub(crate) since: Option<tokio::time::Instant>,
    /// Back from an ejection and not yet proven (half-open): a failure before the first success
    /// ejects it again at once.
    pub(crate) probation: bool,
    /// Failures and requests counted when it came back.
    pub(crate) at_return: (u64, u64),
    /// The current ejection is for a refused or timed-out connect: a passing health check ends it.
    pub(crate) for_connect: bool,
}

/// One endpoint's active health-check bookkeeping (written by `health_check`'s scheduler).
#[derive(Debug, Default)]
pub(crate) struct CheckState {
    /// When the next check is due.
    pub(crate) next: Option<tokio::time::Instant>,
    /// Passes in a row.
    pub(crate) passes: u32,
    /// Failures in a row.
    pub(crate) failures: u32,
}
