//! The node's scrape-time collector: connections, uptime, node info, and every endpoint's live state
//! read from the snapshot in place.

use super::Telemetry;
use crate::tables::Tables;
use edgeplane_config::model::Node;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// Registers the collector of `node`'s own state.
pub(crate) fn collect_node(
    telemetry: &Telemetry,
    node: &Node,
    tables: Arc<Tables>,
    (open, parked): (Arc<AtomicUsize>, Arc<AtomicUsize>),
) {
    let started = Instant::now();
    let info = telemetry.gauge(
        "edgeplane_node_info",
        &[
            ("node", &node.id),
            ("zone", node.zone.as_deref().unwrap_or("")),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
    );
    telemetry.collect_with(Box::new(move |t: &Telemetry| {
        info.set(1.0);
        t.gauge("edgeplane_uptime_seconds", &[])
            .set(started.elapsed().as_secs_f64());
        t.gauge("edgeplane_connections_active", &[])
            .set(open.load(Relaxed) as f64);
        t.gauge("edgeplane_connections_parked", &[])
            .set(parked.load(Relaxed) as f64);
        let snap = tables.load();
        t.gauge("edgeplane_snapshot_generation", &[])
            .set(snap.generation as f64);
        crate::limits::collect(t, &snap.limits);
        for c in &snap.clusters {
            let cluster = &*c.name;
            t.gauge("edgeplane_cluster_endpoints", &[("cluster", cluster)])
                .set(c.endpoints.len() as f64);
            t.gauge("edgeplane_cluster_panic", &[("cluster", cluster)])
                .set(if c.state.panic() { 1.0 } else { 0.0 });
            let b = &c.state;
            t.gauge(
                "edgeplane_cluster_upstream_connections",
                &[("cluster", cluster)],
            )
            .set(f64::from(b.connections()));
            t.counter(
                "edgeplane_upstream_connections_opened_total",
                &[("cluster", cluster)],
            )
            .absolute(b.opened());
            t.gauge("edgeplane_cluster_pending", &[("cluster", cluster)])
                .set(f64::from(b.pending()));
            t.gauge(
                "edgeplane_cluster_retries_in_flight",
                &[("cluster", cluster)],
            )
            .set(f64::from(b.retries()));
            t.counter("edgeplane_cluster_overflow_total", &[("cluster", cluster)])
                .absolute(b.rejected());
            if c.outlier.is_some() {
                let counts = b.outliers.ejections();
                for (reason, n) in crate::upstream::outlier::Why::LABELS.iter().zip(counts) {
                    t.counter(
                        "edgeplane_outlier_ejections_total",
                        &[("cluster", cluster), ("reason", reason)],
                    )
                    .absolute(n);
                }
            }
            t.counter(
                "edgeplane_upstream_local_connect_errors_total",
                &[("cluster", cluster)],
            )
            .absolute(b.outliers.local_errors());
            let shares = b.level_shares();
            for (level, e) in c.levels().enumerate() {
                let priority = e.first().map_or(0, |e| e.priority).to_string();
                t.gauge(
                    "edgeplane_cluster_priority_share",
                    &[("cluster", cluster), ("priority", priority.as_str())],
                )
                .set(f64::from(shares.get(level).copied().unwrap_or(0)) / 1000.0);
            }
            if let Some(max) = c.limits.max_requests {
                let in_flight = c.state.in_flight();
                t.gauge("edgeplane_cluster_in_flight", &[("cluster", cluster)])
                    .set(f64::from(in_flight));
                t.gauge("edgeplane_cluster_circuit_open", &[("cluster", cluster)])
                    .set(if in_flight >= max { 1.0 } else { 0.0 });
            }
            for e in &c.endpoints {
                let u = &e.upstream;
                let address = u.address.to_string();
                let labels = [("cluster", cluster), ("endpoint", address.as_str())];
                t.gauge("edgeplane_endpoint_in_flight", &labels)
                    .set(f64::from(u.in_flight()));
                t.gauge("edgeplane_endpoint_health", &labels)
                    .set(f64::from(u.health()));
                t.gauge("edgeplane_endpoint_check_failed", &labels)
                    .set(if u.check_failed() { 1.0 } else { 0.0 });
                t.gauge("edgeplane_endpoint_ejected", &labels)
                    .set(if u.ejected() { 1.0 } else { 0.0 });
                t.gauge("edgeplane_endpoint_draining", &labels)
                    .set(if u.draining() { 1.0 } else { 0.0 });
                t.gauge("edgeplane_endpoint_latency_ewma_seconds", &labels)
                    .set(u.ewma_latency().map_or(0.0, |d| d.as_secs_f64()));
                t.gauge("edgeplane_endpoint_success_rate", &labels)
                    .set(f64::from(u.success_permille()) / 1000.0);
                t.gauge("edgeplane_endpoint_warming", &labels)
                    .set(if u.warming() { 1.0 } else { 0.0 });
                t.counter("edgeplane_endpoint_requests_total", &labels)
                    .absolute(u.requests());
                t.counter("edgeplane_endpoint_failures_total", &labels)
                    .absolute(u.failures());
            }
        }
    }));
}
