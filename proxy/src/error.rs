//! Errors of the request path and the responses the proxy makes for them.

use http::StatusCode;

/// The header on every response the proxy produced itself, naming the cause.
pub(crate) const ERROR_HEADER: &str = "x-edgeplane-error";

/// Every [`ProxyError::code`], in [`ProxyError::code_index`] order.
pub(crate) const ERROR_CODES: [&str; 10] = [
    "no_route",
    "no_endpoint",
    "bad_request",
    "connect_failed",
    "upstream_timeout",
    "upstream_error",
    "circuit_open",
    "client_timeout",
    "payload_too_large",
    "rate_limited",
];

/// What a failed connect says about the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectCause {
    /// The endpoint, or the network on the way to it, refused or reset the connection, or cannot be
    /// reached: nothing listens there.
    Refused,
    /// No answer to the connect within the cluster's connect timeout.
    TimedOut,
    /// This node ran out of something (file descriptors, ephemeral ports, socket buffers, memory):
    /// the failure says nothing about the endpoint.
    Local,
    /// Anything else: a failed TLS or HTTP/2 handshake, a connection closed before the request went
    /// out.
    Other,
    /// Not tried: the endpoint was taken out (outlier ejection) before a new connection to it was
    /// opened. Nothing was sent and nothing is charged to it.
    Withdrawn,
}

impl ConnectCause {
    /// The cause of a failed TCP connect.
    pub(crate) fn of(e: &std::io::Error) -> ConnectCause {
        use std::io::ErrorKind as K;
        match e.raw_os_error() {
            Some(
                libc::EMFILE
                | libc::ENFILE
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::EADDRNOTAVAIL
                | libc::EADDRINUSE,
            ) => return ConnectCause::Local,
            Some(libc::ETIMEDOUT) => return ConnectCause::TimedOut,
            _ => {}
        }
        match e.kind() {
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::HostUnreachable
            | K::NetworkUnreachable => ConnectCause::Refused,
            K::TimedOut => ConnectCause::TimedOut,
            K::OutOfMemory | K::AddrNotAvailable | K::AddrInUse => ConnectCause::Local,
            _ => ConnectCause::Other,
        }
    }

    /// Whether this failure takes the endpoint out at once (with outlier detection on): the endpoint
    /// is not listening or does not answer.
    pub(crate) fn ejects(self) -> bool {
        matches!(self, ConnectCause::Refused | ConnectCause::TimedOut)
    }
}

/// Why a request could not be proxied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// No route matches the request.
    #[error("no route matches the request")]
    NoRoute,
    /// The cluster has no endpoint to send to.
    #[error("no available endpoint in cluster {0}")]
    NoEndpoint(std::sync::Arc<str>),
    /// The request is malformed for proxying (e.g. no Host).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Connecting to the upstream failed (refused, unreachable, timed out); nothing was sent.
    #[error("upstream connect failed: {1}")]
    Connect(ConnectCause, String),
    /// The upstream did not answer with headers in time.
    #[error("upstream response timed out")]
    Timeout,
    /// The upstream connection failed after the request was sent, or the upstream sent garbage.
    #[error("upstream error: {0}")]
    Upstream(String),
    /// A circuit-breaker limit of the cluster is reached (the limit's name).
    #[error("circuit breaker open: {0} reached")]
    CircuitOpen(&'static str),
    /// The client had not sent its whole request body when the try's time was up.
    #[error("request body not received in time")]
    ClientTimeout,
    /// The request body is larger than its route's `max_request_body` (by its `Content-Length`, or
    /// counted as it streamed).
    #[error("request body larger than the route allows")]
    PayloadTooLarge,
    /// The request is over a rate limit of its route or cluster.
    #[error("rate limit {} exceeded", .0.limit)]
    RateLimited(Box<crate::limits::headers::Refusal>),
}

impl ProxyError {
    /// The status sent to the client.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::NoEndpoint(_) | ProxyError::CircuitOpen(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::Connect(..) | ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// A short, stable code for the error header, logs and metrics.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ProxyError::NoRoute => "no_route",
            ProxyError::NoEndpoint(_) => "no_endpoint",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::Connect(..) => "connect_failed",
            ProxyError::Timeout => "upstream_timeout",
            ProxyError::Upstream(_) => "upstream_error",
            ProxyError::CircuitOpen(_) => "circuit_open",
            ProxyError::ClientTimeout => "client_timeout",
            ProxyError::PayloadTooLarge => "payload_too_large",
            ProxyError::RateLimited(_) => "rate_limited",
        }
    }

    /// Index of [`ProxyError::code`] in [`ERROR_CODES`].
    pub(crate) fn code_index(&self) -> usize {
        match self {
            ProxyError::NoRoute => 0,
            ProxyError::NoEndpoint(_) => 1,
            ProxyError::BadRequest(_) => 2,
            ProxyError::Connect(..) => 3,
            ProxyError::Timeout => 4,
            ProxyError::Upstream(_) => 5,
            ProxyError::CircuitOpen(_) => 6,
            ProxyError::ClientTimeout => 7,
            ProxyError::PayloadTooLarge => 8,
            ProxyError::RateLimited(_) => 9,
        }
    }
}

/// A setting that cannot be used when building the tables (a certificate that does not load, a CA
/// file that is not PEM...): its path and what is wrong. A rejected routing is reported with one of
/// these per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SettingError {
    /// Path of the setting, e.g. `clusters.api.tls.ca`.
    pub(crate) path: String,
    /// What is wrong with it.
    pub(crate) message: String,
}

impl SettingError {
    /// The error of the setting at `path`.
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> SettingError {
        SettingError {
            path: path.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectCause;
    use std::io::Error;

    #[test]
    fn a_connect_error_is_charged_to_the_endpoint_only_when_the_endpoint_caused_it() {
        let of = |errno| ConnectCause::of(&Error::from_raw_os_error(errno));
        for errno in [
            libc::ECONNREFUSED,
            libc::ECONNRESET,
            libc::EHOSTUNREACH,
            libc::ENETUNREACH,
        ] {
            assert_eq!(of(errno), ConnectCause::Refused, "{errno}");
        }
        assert_eq!(of(libc::ETIMEDOUT), ConnectCause::TimedOut);
        for errno in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EADDRNOTAVAIL,
        ] {
            assert_eq!(of(errno), ConnectCause::Local, "{errno}");
        }
        assert_eq!(of(libc::EPERM), ConnectCause::Other);
        assert!(ConnectCause::Refused.ejects() && ConnectCause::TimedOut.ejects());
        assert!(!ConnectCause::Local.ejects() && !ConnectCause::Withdrawn.ejects());
    }
}
