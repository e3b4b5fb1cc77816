//! Errors of the request path and the responses the proxy makes for them.

use crate::body::ProxyBody;
use http::{header, HeaderValue, Response, StatusCode};

/// The header on every response the proxy produced itself, naming the cause.
pub const ERROR_HEADER: &str = "x-edgeplane-error";

/// Every [`ProxyError::code`], in [`ProxyError::code_index`] order.
pub const ERROR_CODES: [&str; 7] = [
    "no_route",
    "no_endpoint",
    "bad_request",
    "connect_failed",
    "upstream_timeout",
    "upstream_error",
    "circuit_open",
];

/// Which side of the proxy an error comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The client sent something we cannot serve.
    Downstream,
    /// The upstream could not be reached or misbehaved.
    Upstream,
    /// Our own configuration has nothing for the request.
    Config,
}

/// Why a request could not be proxied.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
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
    #[error("upstream connect failed: {0}")]
    Connect(String),
    /// The upstream did not answer with headers in time.
    #[error("upstream response timed out")]
    Timeout,
    /// The upstream connection failed after the request was sent, or the upstream sent garbage.
    #[error("upstream error: {0}")]
    Upstream(String),
    /// A circuit-breaker limit of the cluster is reached (the limit's name).
    #[error("circuit breaker open: {0} reached")]
    CircuitOpen(&'static str),
}

impl ProxyError {
    /// The status sent to the client.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::NoEndpoint(_) | ProxyError::CircuitOpen(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::Connect(_) | ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// A short, stable code for the error header, logs and (later) metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::NoRoute => "no_route",
            ProxyError::NoEndpoint(_) => "no_endpoint",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::Connect(_) => "connect_failed",
            ProxyError::Timeout => "upstream_timeout",
            ProxyError::Upstream(_) => "upstream_error",
            ProxyError::CircuitOpen(_) => "circuit_open",
        }
    }

    /// Index of [`ProxyError::code`] in [`ERROR_CODES`].
    pub fn code_index(&self) -> usize {
        match self {
            ProxyError::NoRoute => 0,
            ProxyError::NoEndpoint(_) => 1,
            ProxyError::BadRequest(_) => 2,
            ProxyError::Connect(_) => 3,
            ProxyError::Timeout => 4,
            ProxyError::Upstream(_) => 5,
            ProxyError::CircuitOpen(_) => 6,
        }
    }

    /// Which side the error comes from.
    pub fn class(&self) -> ErrorClass {
        match self {
            ProxyError::NoRoute | ProxyError::NoEndpoint(_) => ErrorClass::Config,
            ProxyError::BadRequest(_) => ErrorClass::Downstream,
            ProxyError::Connect(_)
            | ProxyError::Timeout
            | ProxyError::Upstream(_)
            | ProxyError::CircuitOpen(_) => ErrorClass::Upstream,
        }
    }

    /// Whether the request may be sent again elsewhere: only if nothing reached an upstream.
    pub fn retryable(&self) -> bool {
        matches!(self, ProxyError::Connect(_))
    }

    /// The response for this error: its status, a one-line body and the [`ERROR_HEADER`].
    pub fn into_response(self) -> Response<ProxyBody> {
        let status = self.status();
        let body = format!("{} {}\n", status.as_u16(), self);
        let mut resp = Response::new(ProxyBody::local(body));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(ERROR_HEADER, HeaderValue::from_static(self.code()));
        resp
    }
}
