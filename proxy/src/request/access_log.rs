//! The access log: one line per request at `info` on the `edgeplane::access` target, when
//! `node.access_log` is on. What it needs of the request is taken before the request is sent on.

use crate::request::shared::{ConnInfo, Shared};
use crate::request::{added_headers, trace_context};
use crate::telemetry::RouteMetrics;
use http::{header, HeaderValue, Request, StatusCode, Uri};
use hyper::body::Incoming;

/// What the access log needs of a request, taken before the request is sent on.
pub(crate) struct AccessEntry {
    method: http::Method,
    uri: Uri,
    host: Option<HeaderValue>,
    request_id: HeaderValue,
    trace_id: Option<String>,
}

impl AccessEntry {
    /// What the log line needs of request number `n`.
    pub(crate) fn of(req: &Request<Incoming>, shared: &Shared, n: u64) -> AccessEntry {
        let (seed, headers) = (shared.id_seed, req.headers());
        AccessEntry {
            method: req.method().clone(),
            uri: req.uri().clone(),
            host: headers.get(header::HOST).cloned(),
            request_id: added_headers::request_id(headers, seed, n),
            trace_id: trace_context::request_trace_id(headers, shared.tracing, seed, n),
        }
    }

    /// Logs the request's line.
    pub(crate) fn log(
        self,
        conn: &ConnInfo,
        m: &RouteMetrics,
        status: StatusCode,
        elapsed: std::time::Duration,
    ) {
        let text = |v: &Option<HeaderValue>| {
            v.as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string()
        };
        tracing::info!(
            target: "edgeplane::access",
            client = conn.client_ip.to_str().unwrap_or("-"),
            method = %self.method,
            host = %text(&self.host),
            path = %self.uri.path(),
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1e3,
            route = %m.route,
            cluster = %m.cluster,
            request_id = self.request_id.to_str().unwrap_or("-"),
            trace_id = self.trace_id.as_deref().unwrap_or("-"),
        );
    }
}
