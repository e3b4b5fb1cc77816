//! Per-route request metrics: handles registered when a snapshot is built, so that the request path
//! only increments (an atomic add, a lock-free histogram push).

use super::traffic::TrafficTotals;
use super::{Telemetry, CLASSES};
use crate::error::ERROR_CODES;
use metrics::{Counter, Histogram};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The metric handles of one route (or of the requests no route matched).
#[derive(Debug)]
pub(crate) struct RouteMetrics {
    /// Route name (for the access log).
    pub(crate) route: Arc<str>,
    /// Cluster name (for the access log).
    pub(crate) cluster: Arc<str>,
    requests: [Counter; 5],
    duration: [Histogram; 5],
    errors: [Counter; ERROR_CODES.len()],
    retries: Counter,
    /// The node's totals, all routes together (absent without telemetry).
    traffic: Option<Arc<TrafficTotals>>,
    /// `edgeplane_grpc_responses_total` by status code (index 17: a code out of range), registered
    /// at the route's first gRPC answer with that code.
    grpc: [OnceLock<Counter>; 18],
    /// Where to register them (absent without telemetry).
    registry: Option<Arc<Telemetry>>,
}

impl RouteMetrics {
    /// Handles for `route` to `cluster` from `telemetry`; no-op handles without it.
    pub(crate) fn new(
        telemetry: Option<&Arc<Telemetry>>,
        route: &str,
        cluster: &str,
    ) -> RouteMetrics {
        let Some(t) = telemetry else {
            return RouteMetrics {
                route: route.into(),
                cluster: cluster.into(),
                ..RouteMetrics::noop()
            };
        };
        let labels =
            |class: &'static str| [("route", route), ("cluster", cluster), ("class", class)];
        RouteMetrics {
            route: route.into(),
            cluster: cluster.into(),
            requests: CLASSES.map(|c| t.counter("edgeplane_requests_total", &labels(c))),
            duration: CLASSES
                .map(|c| t.histogram("edgeplane_request_duration_seconds", &labels(c))),
            errors: ERROR_CODES.map(|k| {
                t.counter(
                    "edgeplane_proxy_errors_total",
                    &[("cluster", cluster), ("kind", k)],
                )
            }),
            retries: t.counter("edgeplane_upstream_retries_total", &[("cluster", cluster)]),
            traffic: Some(t.traffic().clone()),
            grpc: Default::default(),
            registry: Some(t.clone()),
        }
    }

    /// Handles that record nothing (tables built without telemetry, as in unit tests and benches).
    pub(crate) fn noop() -> RouteMetrics {
        RouteMetrics {
            route: "none".into(),
            cluster: "none".into(),
            requests: std::array::from_fn(|_| Counter::noop()),
            duration: std::array::from_fn(|_| Histogram::noop()),
            errors: std::array::from_fn(|_| Counter::noop()),
            retries: Counter::noop(),
            traffic: None,
            grpc: Default::default(),
            registry: None,
        }
    }

    /// Counts an answered request with its status and time to response headers.
    pub(crate) fn answered(&self, status: u16, elapsed: Duration) {
        let class = super::status_class(status);
        if let (Some(c), Some(h)) = (self.requests.get(class), self.duration.get(class)) {
            c.increment(1);
            h.record(elapsed.as_secs_f64());
        }
        if let Some(t) = &self.traffic {
            t.answered(status, elapsed);
        }
    }

    /// Counts a request the proxy answered itself, by [`crate::error::ProxyError::code_index`].
    pub(crate) fn error(&self, code_index: usize) {
        if let Some(c) = self.errors.get(code_index) {
            c.increment(1);
        }
        if let (Some(t), Some(code)) = (&self.traffic, ERROR_CODES.get(code_index)) {
            t.proxy_error(code);
        }
    }

    /// Counts a gRPC answer with its `grpc-status` code.
    pub(crate) fn grpc_status(&self, code: u32) {
        let Some(registry) = &self.registry else {
            return;
        };
        let index = (code as usize).min(17);
        let counter = self.grpc[index].get_or_init(|| {
            let name = crate::grpc::code_name(code);
            registry.counter(
                "edgeplane_grpc_responses_total",
                &[
                    ("route", &self.route),
                    ("cluster", &self.cluster),
                    ("grpc_status", name),
                ],
            )
        });
        counter.increment(1);
    }

    /// Counts a request sent again after a pooled connection failed unsent.
    pub(crate) fn retried(&self) {
        self.retries.increment(1);
    }
}
