//! Validated settings of a cluster beyond routing and balancing: retries, circuit-breaker limits,
//! session affinity, TLS to the endpoints.

use std::time::Duration;

/// Retries of a failed try on another endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Retries after the first try, at most (0 = off; default 1).
    pub attempts: u32,
    /// Which failures are retried (default: connect failures only).
    pub on: RetryOn,
    /// First backoff; the n-th retry waits a random time up to `base × 2^(n-1)` (default 25ms).
    pub backoff_base: Duration,
    /// Longest backoff (default 250ms).
    pub backoff_max: Duration,
    /// Retries in flight at most, as a percentage of the cluster's requests in flight (default 20).
    pub budget_percent: u8,
    /// Retries always allowed in flight at once, whatever the budget says (default 3).
    pub min_concurrent: u32,
    /// Request bodies up to this many bytes are buffered so that they can be replayed (default
    /// 65536); larger or unsized bodies are streamed and such requests are never replayed.
    pub buffer_body: usize,
}

impl Retry {
    /// The defaults: one retry, on connect failures only.
    pub const DEFAULT: Retry = Retry {
        attempts: 1,
        on: RetryOn::CONNECT_FAILURE,
        backoff_base: Duration::from_millis(25),
        backoff_max: Duration::from_millis(250),
        budget_percent: 20,
        min_concurrent: 3,
        buffer_body: 64 * 1024,
    };

    /// Whether a try that failed after the request was sent may be replayed (then the proxy keeps
    /// a copy of replayable requests).
    pub fn replays(&self) -> bool {
        self.attempts > 0 && self.on.0 & !RetryOn::CONNECT_FAILURE.0 != 0
    }
}

/// A set of retry conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryOn(pub u16);

impl RetryOn {
    /// Connecting failed: nothing was sent, so any request may go elsewhere.
    pub const CONNECT_FAILURE: RetryOn = RetryOn(1);
    /// The connection failed after the request was sent, before response headers.
    pub const RESET: RetryOn = RetryOn(2);
    /// No response headers within the per-try timeout.
    pub const TIMEOUT: RetryOn = RetryOn(4);
    /// Any 5xx response.
    pub const STATUS_5XX: RetryOn = RetryOn(8);
    /// A 502, 503 or 504 response.
    pub const GATEWAY_ERROR: RetryOn = RetryOn(16);
    /// A 429 response.
    pub const STATUS_429: RetryOn = RetryOn(32);
    /// A gRPC answer without a body whose `grpc-status` is 1 (CANCELLED).
    pub const GRPC_CANCELLED: RetryOn = RetryOn(64);
    /// ... 4 (DEADLINE_EXCEEDED).
    pub const GRPC_DEADLINE_EXCEEDED: RetryOn = RetryOn(128);
    /// ... 8 (RESOURCE_EXHAUSTED).
    pub const GRPC_RESOURCE_EXHAUSTED: RetryOn = RetryOn(256);
    /// ... 13 (INTERNAL).
    pub const GRPC_INTERNAL: RetryOn = RetryOn(512);
    /// ... 14 (UNAVAILABLE).
    pub const GRPC_UNAVAILABLE: RetryOn = RetryOn(1024);
    /// Every gRPC condition.
    pub const GRPC: RetryOn = RetryOn(64 | 128 | 256 | 512 | 1024);

    /// Every condition with its config name.
    pub const NAMES: [(&'static str, RetryOn); 11] = [
        ("connect_failure", RetryOn::CONNECT_FAILURE),
        ("reset", RetryOn::RESET),
        ("timeout", RetryOn::TIMEOUT),
        ("5xx", RetryOn::STATUS_5XX),
        ("gateway_error", RetryOn::GATEWAY_ERROR),
        ("429", RetryOn::STATUS_429),
        ("cancelled", RetryOn::GRPC_CANCELLED),
        ("deadline_exceeded", RetryOn::GRPC_DEADLINE_EXCEEDED),
        ("resource_exhausted", RetryOn::GRPC_RESOURCE_EXHAUSTED),
        ("internal", RetryOn::GRPC_INTERNAL),
        ("unavailable", RetryOn::GRPC_UNAVAILABLE),
    ];

    /// Whether every condition of `other` is in the set.
    pub fn contains(self, other: RetryOn) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether a response with this status is retried.
    pub fn status(self, status: u16) -> bool {
        (self.contains(RetryOn::STATUS_5XX) && (500..600).contains(&status))
            || (self.contains(RetryOn::GATEWAY_ERROR) && matches!(status, 502..=504))
            || (self.contains(RetryOn::STATUS_429) && status == 429)
    }

    /// Whether an answer with this `grpc-status` code is retried.
    pub fn grpc(self, code: u32) -> bool {
        let condition = match code {
            1 => RetryOn::GRPC_CANCELLED,
            4 => RetryOn::GRPC_DEADLINE_EXCEEDED,
            8 => RetryOn::GRPC_RESOURCE_EXHAUSTED,
            13 => RetryOn::GRPC_INTERNAL,
            14 => RetryOn::GRPC_UNAVAILABLE,
            _ => return false,
        };
        self.contains(condition)
    }

    /// The config names of the set's conditions.
    pub fn names(self) -> Vec<&'static str> {
        RetryOn::NAMES
            .iter()
            .filter(|(_, c)| self.contains(*c))
            .map(|(n, _)| *n)
            .collect()
    }
}

/// Circuit-breaker limits of a cluster on one node: beyond them, requests get 503 at once instead of
/// piling onto struggling upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CircuitBreaker {
    /// Requests in flight at most.
    pub max_requests: Option<u32>,
    /// Open upstream connections (busy and idle) at most.
    pub max_connections: Option<u32>,
    /// With `max_connections`: requests waiting for a connection at most (default 1024).
    pub max_pending: u32,
    /// Retries in flight at most (on top of the retry budget).
    pub max_retries: Option<u32>,
}

/// Session affinity: the proxy names the endpoint that served a client in a cookie or header, and
/// sends the client's next requests there while it is usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affinity {
    /// Where the endpoint's token travels.
    pub by: AffinityBy,
    /// Cookie lifetime (`Max-Age`; default 1h).
    pub ttl: Duration,
}

/// The carrier of an affinity token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AffinityBy {
    /// A cookie the proxy sets (name).
    Cookie(String),
    /// A response header the proxy sets and the client sends back (lower-case name).
    Header(String),
}

/// TLS to a cluster's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// SNI and verified name; `None`: the endpoint's IP address (no SNI is sent for an IP).
    pub sni: Option<String>,
    /// CA file; `None`: the system's roots.
    pub ca: Option<std::path::PathBuf>,
    /// Client certificate and key files (mutual TLS).
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Offer HTTP/2 by ALPN.
    pub h2: bool,
}
