//! What every request of the node shares ([`Shared`]: the tables, the `Via` values, the request
//! counter, the metrics of unrouted requests, the request-id seed, the access-log switch and the byte
//! counters), and what every request of one downstream connection shares ([`ConnInfo`]).

use crate::tables::Tables;
use crate::telemetry::{RouteMetrics, Telemetry};
use http::HeaderValue;
use std::sync::Arc;

/// What every request of one downstream connection shares.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    /// The client's IP as a header value, made once per connection.
    pub(crate) client_ip: HeaderValue,
    /// The client's address and port.
    pub(crate) peer: std::net::SocketAddr,
    /// `http` or `https`.
    pub(crate) proto: HeaderValue,
    /// Keeps the connection counted; an upgraded tunnel takes a share of it.
    pub(crate) hold: Arc<crate::downstream::lifecycle::ConnHold>,
}

/// What every request of the node shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The routing tables.
    pub(crate) tables: Arc<Tables>,
    /// `Via` value for HTTP/1.x requests, e.g. `1.1 edge-1`.
    pub(crate) via_h1: HeaderValue,
    /// `Via` value for HTTP/2 requests, e.g. `2.0 edge-1`.
    pub(crate) via_h2: HeaderValue,
    /// Requests received since start.
    pub(crate) requests: std::sync::atomic::AtomicU64,
    /// Metrics of the requests no route matched.
    pub(crate) unrouted: RouteMetrics,
    /// High half of generated request ids: differs between nodes and restarts.
    pub(crate) id_seed: u64,
    /// How to log one line per request; `None` = not at all.
    pub(crate) access_log: Option<Arc<crate::telemetry::access_writer::AccessLogger>>,
    /// W3C trace context settings.
    pub(crate) tracing: edgeplane_config::model::Tracing,
    /// Bytes from and to clients.
    pub(crate) bytes: Arc<crate::downstream::idle::ByteCounters>,
    /// Proxies whose `X-Forwarded-For` rate limits believe.
    pub(crate) trusted_proxies: Vec<edgeplane_config::model::IpNet>,
}

impl Shared {
    /// Shared request state for the node `node_id`.
    pub(crate) fn new(
        tables: Arc<Tables>,
        node_id: &str,
        telemetry: Option<&Arc<Telemetry>>,
    ) -> Self {
        let via = |v: &str| {
            HeaderValue::from_str(&format!("{v} {node_id}"))
                .unwrap_or(HeaderValue::from_static("1.1 edgeplane"))
        };
        Shared {
            tables,
            via_h1: via("1.1"),
            via_h2: via("2.0"),
            requests: std::sync::atomic::AtomicU64::new(0),
            unrouted: RouteMetrics::new(telemetry, "none", "none"),
            id_seed: id_seed(node_id),
            access_log: None,
            tracing: edgeplane_config::model::Tracing {
                generate: edgeplane_config::model::defaults::node::tracing::GENERATE,
                sample_percent: edgeplane_config::model::defaults::node::tracing::SAMPLE_PERCENT,
            },
            trusted_proxies: Vec::new(),
            bytes: Arc::new(crate::downstream::idle::ByteCounters {
                received: telemetry.map_or_else(metrics::Counter::noop, |t| {
                    t.counter("edgeplane_downstream_received_bytes_total", &[])
                }),
                sent: telemetry.map_or_else(metrics::Counter::noop, |t| {
                    t.counter("edgeplane_downstream_sent_bytes_total", &[])
                }),
            }),
        }
    }
}

/// A per-process seed for request ids: the node id, the start time and the process id, mixed.
fn id_seed(node_id: &str) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ u64::from(std::process::id()).rotate_left(32);
    for b in node_id.bytes() {
        x = (x ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    // SplitMix64 finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
