//! The access log, when `node.access_log` is set: one `tracing` event per request at info on the
//! `edgeplane::access` target (`access_log = true`), or lines of its own, JSON or a template
//! (`[node.access_log]`), handed to a writer thread. What a line needs of the request is taken before
//! the request is sent on; the line is made when the response head goes to the client.

mod line;

use crate::downstream::body::ClientBody;
use crate::request::shared::{ConnInfo, Shared};
use crate::request::{added_headers, trace_context};
use crate::telemetry::access_writer::AccessLogger;
use crate::telemetry::RouteMetrics;
use http::{header, HeaderValue, Request, StatusCode, Uri, Version};
use std::net::SocketAddr;

/// What the access log needs of a request, taken before the request is sent on.
pub(crate) struct AccessEntry {
    client: HeaderValue,
    method: http::Method,
    uri: Uri,
    version: Version,
    host: Option<HeaderValue>,
    request_id: HeaderValue,
    trace_id: Option<String>,
    user_agent: Option<HeaderValue>,
    referer: Option<HeaderValue>,
}

/// How a request ended, for its line.
pub(crate) struct Ending<'a> {
    /// The route's (or the unrouted requests') metrics, which name the route and cluster.
    pub(crate) metrics: &'a RouteMetrics,
    /// The response status.
    pub(crate) status: StatusCode,
    /// From the request head to the response head.
    pub(crate) elapsed: std::time::Duration,
    /// The endpoint tried last.
    pub(crate) upstream: Option<SocketAddr>,
    /// The proxy's error code when it answered itself.
    pub(crate) error: Option<&'static str>,
    /// A gRPC call's status.
    pub(crate) grpc_status: Option<u32>,
}

impl AccessEntry {
    /// What the log line needs of request number `n`.
    pub(crate) fn of(
        req: &Request<ClientBody>,
        shared: &Shared,
        conn: &ConnInfo,
        n: u64,
    ) -> AccessEntry {
        let (seed, headers) = (shared.id_seed, req.headers());
        AccessEntry {
            client: conn.client_ip.clone(),
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            host: headers.get(header::HOST).cloned(),
            request_id: added_headers::request_id(headers, seed, n),
            trace_id: trace_context::request_trace_id(headers, shared.tracing, seed, n),
            user_agent: headers.get(header::USER_AGENT).cloned(),
            referer: headers.get(header::REFERER).cloned(),
        }
    }

    /// Logs the request's line.
    pub(crate) fn log(self, logger: &AccessLogger, end: &Ending<'_>) {
        match logger {
            AccessLogger::Tracing => self.event(end),
            AccessLogger::Lines(format, sink) => {
                let now = std::time::SystemTime::now();
                sink.send(line::render(format, &self, end, now));
            }
        }
    }

    /// The request's host: its `Host` header, else the target's authority (HTTP/2).
    fn host(&self) -> Option<&str> {
        match &self.host {
            Some(h) => h.to_str().ok(),
            None => self.uri.authority().map(|a| a.as_str()),
        }
    }

    fn event(self, end: &Ending<'_>) {
        let m = end.metrics;
        tracing::info!(
            target: "edgeplane::access",
            client = self.client.to_str().unwrap_or("-"),
            method = %self.method,
            host = %self.host().unwrap_or("-"),
            path = %self.uri.path(),
            status = end.status.as_u16(),
            duration_ms = end.elapsed.as_secs_f64() * 1e3,
            route = %m.route,
            cluster = %m.cluster,
            upstream = %end.upstream.map_or_else(|| "-".to_string(), |a| a.to_string()),
            error = end.error.unwrap_or("-"),
            grpc_status = %end.grpc_status.map_or_else(|| "-".to_string(), |c| c.to_string()),
            request_id = self.request_id.to_str().unwrap_or("-"),
            trace_id = self.trace_id.as_deref().unwrap_or("-"),
        );
    }
}
