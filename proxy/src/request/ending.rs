//! How a request ends: its metrics and its access log line, when the response head goes out; for a
//! gRPC call, when its response body ends, with the call's `grpc-status` (counted per route and
//! cluster, and logged).

use crate::error::ProxyError;
use crate::request::access_log::{AccessEntry, Ending};
use crate::request::body::ProxyBody;
use crate::request::grpc_body::GrpcBody;
use crate::request::shared::Shared;
use crate::telemetry::RouteMetrics;
use http::Response;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What the forwarding tells of a request besides its response.
pub(crate) struct Served {
    /// When the request's head arrived (also the clock of its rate limits).
    pub(crate) received: std::time::Instant,
    /// When the upstream's answer the client gets arrived (`None` until then, and again after a
    /// retried one): the clock is read once for the endpoint's latency and the request's duration.
    pub(crate) answered: Option<std::time::Instant>,
    /// The matched route's metrics (for the cluster that served it).
    pub(crate) metrics: Option<Arc<RouteMetrics>>,
    /// The endpoint tried last.
    pub(crate) upstream: Option<SocketAddr>,
    /// Rate-limit fields the response carries (limits with `response_headers`).
    pub(crate) granted: Option<Box<crate::limits::headers::Granted>>,
}

impl Served {
    /// A request whose head arrived at `received`.
    pub(crate) fn new(received: std::time::Instant) -> Served {
        Served {
            received,
            answered: None,
            metrics: None,
            upstream: None,
            granted: None,
        }
    }
}

/// The client's response for the forwarding's `result`, with the request counted and logged
/// (`access`: its entry, if the node logs; `grpc`: the request is a gRPC call; `elapsed`: since the
/// request head). Inlined into the request's handler, where the response is made: a call would
/// copy it in and out.
#[inline(always)]
pub(crate) fn finish(
    shared: &Shared,
    served: Served,
    result: Result<Response<ProxyBody>, ProxyError>,
    access: Option<Box<AccessEntry>>,
    grpc: bool,
    elapsed: Duration,
) -> Response<ProxyBody> {
    let metrics = served.metrics.as_deref().unwrap_or(&shared.unrouted);
    let mut error = None;
    let mut resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(error = %e, status = e.status().as_u16(), "request failed at the proxy");
            metrics.error(e.code_index());
            error = Some(e.code());
            crate::request::body::error_response(e)
        }
    };
    if let Some(granted) = &served.granted {
        granted.write(resp.headers_mut());
    }
    metrics.answered(resp.status().as_u16(), elapsed);
    let status = resp.status();
    // Only a gRPC call takes the route's metrics along (an atomic count the others need not pay).
    let deferred = if grpc { served.metrics.clone() } else { None };
    if let Some(route_metrics) = deferred {
        let log = access.zip(shared.access_log.clone());
        // The call's status comes with the body's end: count and log it then.
        let on_end = Box::new(move |code: u32| {
            route_metrics.grpc_status(code);
            if let Some((entry, logger)) = log {
                let end = Ending {
                    metrics: &route_metrics,
                    status,
                    elapsed,
                    upstream: served.upstream,
                    error,
                    grpc_status: Some(code),
                };
                entry.log(&logger, &end);
            }
        });
        let head = crate::grpc::status(resp.headers());
        return resp
            .map(|b| ProxyBody::Grpc(Box::new(GrpcBody::new(b, status.as_u16(), head, on_end))));
    }
    if let (Some(entry), Some(logger)) = (access, &shared.access_log) {
        let end = Ending {
            metrics,
            status,
            elapsed,
            upstream: served.upstream,
            error,
            grpc_status: None,
        };
        entry.log(logger, &end);
    }
    resp
}
