//! Every metric a node exports: name, kind, labels and meaning. docs/metrics.md mirrors this table,
//! and a test checks that every name rendered at `/metrics` is in it.

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets when the process restarts).
    Counter,
    /// Goes up and down; set at scrape time.
    Gauge,
    /// Distribution in buckets.
    Histogram,
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Full name.
    pub name: &'static str,
    /// Type.
    pub kind: Kind,
    /// Label names.
    pub labels: &'static str,
    /// Help text.
    pub(crate) help: &'static str,
}

const fn m(name: &'static str, kind: Kind, labels: &'static str, help: &'static str) -> Entry {
    Entry {
        name,
        kind,
        labels,
        help,
    }
}

use Kind::{Counter, Gauge, Histogram};

/// The exported metrics.
pub const CATALOG: &[Entry] = &[
    m("edgeplane_node_info", Gauge, "node, zone, version", "Always 1; labels describe the node."),
    m("edgeplane_uptime_seconds", Gauge, "", "Seconds since the node started."),
    m("edgeplane_requests_total", Counter, "route, cluster, class", "Requests answered, by route, cluster and status class (route and cluster \"none\" when no route matched)."),
    m("edgeplane_request_duration_seconds", Histogram, "route, cluster, class", "Time from receiving a request's headers to sending the response headers."),
    m("edgeplane_proxy_errors_total", Counter, "cluster, kind", "Requests the proxy answered itself, by cause: no_route, no_endpoint, bad_request, connect_failed, upstream_timeout, upstream_error, circuit_open, client_timeout, payload_too_large, rate_limited."),
    m("edgeplane_dns_resolutions_total", Counter, "name, result", "Resolutions of endpoint names (name:port), by result: ok or failed (a failure keeps the last addresses)."),
    m("edgeplane_grpc_responses_total", Counter, "route, cluster, grpc_status", "gRPC calls (content-type application/grpc) by the status they ended with: the grpc-status of the trailers (or of a trailers-only answer), else the one a client takes from the HTTP status; CANCELLED when the client went away first. Each code's series appears at its first call."),
    m("edgeplane_mirror_requests_total", Counter, "route, cluster, outcome", "Requests of a route with [routes.mirror], by what became of their copy to the shadow cluster: answered, failed (no endpoint, connect error, timeout, reset), busy (max_concurrent copies in flight), too_large (body over max_body or of unknown length). Requests left out by percent are not counted."),
    m("edgeplane_rate_limited_total", Counter, "route, cluster, limit, mode", "Requests over a rate limit (route set for a route's limit, cluster for a cluster's), by mode: enforce (refused with 429) or shadow (counted and let through)."),
    m("edgeplane_rate_limit_keys", Gauge, "route, cluster, limit", "Keys of a rate limit whose bucket is not full on this node (those it must remember), at most max_keys."),
    m("edgeplane_rate_limit_evictions_total", Counter, "route, cluster, limit", "Keys still being limited that a rate limit forgot to make room for a new key (its table was full): each starts again with a full burst."),
    m("edgeplane_rate_limit_fleet_share", Gauge, "route, cluster, limit", "A fleet limit: this node's part of the fleet's reported demand on its hot keys, 0 to 1 (1 when no other node reports demand)."),
    m("edgeplane_rate_limit_fleet_nodes", Gauge, "route, cluster, limit", "A fleet limit: nodes sharing it, this one included, as their usage reports show."),
    m("edgeplane_rate_limit_reports_total", Counter, "result", "Rate-limit usage reports on the bus: sent by this node, received from others, malformed (dropped, never counted in a share)."),
    m("edgeplane_autoscale_desired_instances", Gauge, "cluster", "Instances this node recommends for a cluster with [clusters.<name>.autoscale] (published by the lease holder only)."),
    m("edgeplane_autoscale_current_instances", Gauge, "cluster", "Instances serving in a cluster with [clusters.<name>.autoscale] (usable, not draining)."),
    m("edgeplane_autoscale_leader", Gauge, "", "1 while this node holds the fleet's autoscale lease and publishes recommendations."),
    m("edgeplane_events_total", Counter, "kind", "Fleet events this node published on <prefix>.event.<kind>.<node>, by kind (docs/bus.md)."),
    m("edgeplane_events_suppressed_total", Counter, "", "Fleet events held back by the event budget (a flapping endpoint) and stood for by a later event's suppressed count."),
    m("edgeplane_upstream_retries_total", Counter, "cluster", "Tries sent again: on another endpoint by the retry policy, or on a fresh connection after a pooled one failed before anything was sent."),
    m("edgeplane_downstream_received_bytes_total", Counter, "", "Bytes read from clients, headers and bodies (counted per connection, added every 64 KiB and at close)."),
    m("edgeplane_downstream_sent_bytes_total", Counter, "", "Bytes written to clients, headers and bodies (counted per connection, added every 64 KiB and at close)."),
    m("edgeplane_access_log_dropped_lines_total", Counter, "", "Access log lines dropped because the writer's queue was full (node.access_log.buffer_lines): the disk or pipe is slower than the traffic."),
    m("edgeplane_access_log_write_errors_total", Counter, "", "Failed writes (or reopens after rotation) of the access log; the lines are lost."),
    m("edgeplane_connections_active", Gauge, "", "Open downstream connections."),
    m("edgeplane_connections_parked", Gauge, "", "Open downstream connections holding no HTTP state (idle HTTP/1.x connections parked, and new ones before their first bytes), as of the last sample (every 250 ms)."),
    m("edgeplane_endpoint_in_flight", Gauge, "cluster, endpoint", "Requests this node has in flight to an endpoint."),
    m("edgeplane_endpoint_health", Gauge, "cluster, endpoint", "Health score of an endpoint, 0 (down) to 100."),
    m("edgeplane_endpoint_check_failed", Gauge, "cluster, endpoint", "1 while active health checks keep an endpoint out."),
    m("edgeplane_endpoint_ejected", Gauge, "cluster, endpoint", "1 while outlier detection keeps an endpoint out."),
    m("edgeplane_endpoint_draining", Gauge, "cluster, endpoint", "1 while an endpoint is draining."),
    m("edgeplane_endpoint_requests_total", Counter, "cluster, endpoint", "Requests sent to an endpoint."),
    m("edgeplane_endpoint_failures_total", Counter, "cluster, endpoint", "Failed tries charged to an endpoint: connect errors, upstream errors, timeouts, 5xx and 429 answers (not: connects that failed for lack of local resources, nor refused connects to an endpoint already ejected for refusing)."),
    m("edgeplane_endpoint_latency_ewma_seconds", Gauge, "cluster, endpoint", "Smoothed time to response headers of an endpoint."),
    m("edgeplane_cluster_in_flight", Gauge, "cluster", "Requests in flight to a cluster with a circuit breaker, on this node."),
    m("edgeplane_cluster_circuit_open", Gauge, "cluster", "1 while a cluster's circuit breaker is full (requests get 503 circuit_open)."),
    m("edgeplane_cluster_panic", Gauge, "cluster", "1 while a cluster is in panic mode (too few usable endpoints; picks ignore health)."),
    m("edgeplane_cluster_endpoints", Gauge, "cluster", "Endpoints in a cluster's tables."),
    m("edgeplane_cluster_upstream_connections", Gauge, "cluster", "Open upstream connections of a cluster on this node, busy and idle."),
    m("edgeplane_upstream_connections_opened_total", Counter, "cluster", "Upstream connections a cluster opened on this node (a steady load should add none: see the pool's sizing in docs/config.md)."),
    m("edgeplane_cluster_pending", Gauge, "cluster", "Requests waiting for a connection under a cluster's max_connections."),
    m("edgeplane_cluster_retries_in_flight", Gauge, "cluster", "Retries in flight to a cluster."),
    m("edgeplane_cluster_overflow_total", Counter, "cluster", "Requests and retries a cluster's limits turned away (max_requests, max_pending, max_retries, retry budget)."),
    m("edgeplane_outlier_ejections_total", Counter, "cluster, reason", "Endpoints outlier detection took out, by reason: connect (refused, reset or timed out), consecutive_failures, failure_rate, half_open."),
    m("edgeplane_upstream_local_connect_errors_total", Counter, "cluster", "Connects to a cluster's endpoints that failed for lack of this node's own resources (file descriptors, ports, memory); never charged to an endpoint."),
    m("edgeplane_cluster_priority_share", Gauge, "cluster, priority", "Share of a cluster's traffic each priority level takes, 0 to 1 (failover by usable share)."),
    m("edgeplane_endpoint_success_rate", Gauge, "cluster, endpoint", "Success-rate EWMA of an endpoint, 0 to 1 (failures: connect errors, timeouts, 5xx, 429)."),
    m("edgeplane_endpoint_warming", Gauge, "cluster, endpoint", "1 while an endpoint is in its slow-start ramp."),
    m("edgeplane_snapshot_generation", Gauge, "", "Snapshots built by this process (each config change or membership rebuild adds one)."),
    m("edgeplane_config_revision", Gauge, "", "KV revision of the pushed config in place (0: file config only)."),
    m("edgeplane_config_handled_revision", Gauge, "", "The newest pushed revision handled, applied or rejected (above edgeplane_config_revision after a rejection)."),
    m("edgeplane_config_applies_total", Counter, "result", "Pushed config revisions handled, by result: applied or rejected."),
    m("edgeplane_rollout_active", Gauge, "", "1 while a staged rollout is active (running or paused, lease not run out), as this node reads the rollout record."),
    m("edgeplane_rollout_phase", Gauge, "phase", "1 for the phase of the last rollout this node read: starting, running, paused, completed, rolled_back, aborted."),
    m("edgeplane_rollout_wave", Gauge, "", "The rollout's wave in progress (1-based; 0 before the first)."),
    m("edgeplane_rollout_waves", Gauge, "", "Waves in the rollout's plan."),
    m("edgeplane_rollout_candidate_revision", Gauge, "", "KV revision of the rollout's candidate document."),
    m("edgeplane_rollout_serving_candidate", Gauge, "", "1 when this node serves the rollout's candidate."),
    m("edgeplane_rollout_gates_failing", Gauge, "", "Gates failing in the current wave's last verdict (the driver writes them to the record)."),
    m("edgeplane_config_push_apply_seconds", Histogram, "", "From a config revision's write to the bucket (server time) until this node applied it."),
    m("edgeplane_bus_messages_received_total", Counter, "", "Messages received on the fleet's subjects: heartbeats, scaling events, config revisions."),
    m("edgeplane_bus_connected", Gauge, "", "1 while the node is connected to NATS."),
    m("edgeplane_bus_connects_total", Counter, "", "Times the NATS connection was (re)established."),
    m("edgeplane_bus_disconnects_total", Counter, "", "Times the NATS connection was lost."),
    m("edgeplane_bus_decode_errors_total", Counter, "", "Bus messages dropped because they did not decode or validate."),
    m("edgeplane_bus_slow_consumer_total", Counter, "", "Slow-consumer events reported by the NATS client: at least one message was dropped because a subscription's buffer was full (the client coalesces events, so this undercounts messages; edgeplane_heartbeats_missed_total counts lost heartbeats)."),
    m("edgeplane_bus_errors_total", Counter, "", "Errors reported by the NATS server or client."),
    m("edgeplane_heartbeats_total", Counter, "result", "Heartbeats taken in, by result: in_place, joined (membership changed), stale, ignored."),
    m("edgeplane_heartbeats_expired_total", Counter, "", "Endpoints marked down because their heartbeats stopped."),
    m("edgeplane_heartbeats_missed_total", Counter, "", "Heartbeats known instances missed: gaps in a boot's sequence numbers (lost in the network, in NATS, or dropped as a slow consumer)."),
    m("edgeplane_membership_instances", Gauge, "", "Instances tracked from heartbeats."),
    m("edgeplane_membership_frozen", Gauge, "", "1 while heartbeat expiry and removal are suspended: the node is disconnected from NATS, or reconnected less than membership_grace ago (static stability)."),
    m("edgeplane_membership_held_instances", Gauge, "", "Instances whose heartbeats are overdue but which are kept with their last state: membership is frozen, or their whole cluster went silent at once (a bus fault, not a mass death)."),
    m("edgeplane_membership_silent_clusters_total", Counter, "", "Times every heartbeat of a cluster stopped at once while the node was connected, so its instances were held rather than expired."),
    m("edgeplane_membership_rebuilds_total", Counter, "result", "Rebuilds for membership changes, by result: ok or failed."),
    m("edgeplane_scale_events_total", Counter, "result", "Scaling events, by result: applied or duplicate."),
];

#[cfg(test)]
mod tests {
    #[test]
    fn the_metrics_reference_lists_every_metric() {
        let doc = include_str!("../../../docs/metrics.md");
        for m in super::CATALOG {
            assert!(
                doc.contains(&format!("| `{}` |", m.name)),
                "docs/metrics.md lacks {}",
                m.name
            );
        }
    }
}
