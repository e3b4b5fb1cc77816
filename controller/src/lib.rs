//! edgeplane's controller: keeps a node's tables current from the fleet's NATS subjects.
//!
//! Today it follows config pushes: the whole routing document lives in a JetStream KV bucket, and each
//! revision is validated, applied whole (one store of the proxy's tables) or rejected whole, persisted to
//! local disk, and acknowledged on `<prefix>.ack.<node>`. The decisions are a pure state machine
//! ([`state::ConfigState`]), unit-tested without a network; the NATS plumbing around it is
//! [`pushes`]. The controller writes the tables only through the narrow [`RoutingSink`] interface, which
//! the proxy implements, so it knows nothing of hyper or sockets.
//!
//! It also follows membership: heartbeats of backend instances and durable scaling events, turned
//! into live endpoint state (written in place) and coalesced rebuilds by the pure
//! [`membership::Membership`] state machine inside the [`composer::Composer`].

pub mod announce;
pub mod autoscale;
pub mod composer;
pub mod debounce;
pub mod dry_run;
pub mod fleet_view;
pub mod follow;
pub mod heartbeats;
pub mod identity;
mod link;
pub mod membership;
pub mod options;
pub mod provision;
pub mod publish;
pub mod pushes;
pub mod rollout;
pub mod scale_publish;
pub mod scaling;
pub mod state;
pub mod status;
pub mod store;

use edgeplane_config::{ContentHash, Routing};
use std::net::SocketAddr;
use std::sync::Arc;

/// The narrow interface through which the controller changes the proxy's tables.
pub trait RoutingSink: Send + Sync + 'static {
    /// Builds and stores a snapshot of `routing` in one swap, or says why it cannot.
    fn apply(&self, routing: &Routing) -> Result<ContentHash, Rejection>;
    /// The content hash of the routing in place.
    fn current_hash(&self) -> ContentHash;
    /// Open downstream connections, for status reports.
    fn connections(&self) -> u64;
    /// Requests received since start, for status reports.
    fn requests(&self) -> u64;
    /// What the node answered since start, for status reports (rollout gates).
    fn traffic(&self) -> TrafficCounts;
    /// Checks that `routing` could be applied here (everything [`RoutingSink::apply`] checks),
    /// without applying it: the dry run of a push.
    fn check(&self, routing: &Routing) -> Result<(), Rejection>;
    /// Every endpoint in place with its live state, grouped by cluster, for in-place updates.
    fn endpoints(&self) -> Vec<ClusterEndpoints>;
}

/// Why a routing cannot be applied on this node: every problem, one line each with its path (a
/// rejected push acknowledges them one per line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct Rejection(pub Vec<String>);

/// A node's answered requests since start, all routes together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficCounts {
    /// Responses sent.
    pub answered: u64,
    /// Of them with a 5xx status.
    pub status_5xx: u64,
    /// Requests the proxy answered itself for want of a route or a working upstream.
    pub proxy_errors: u64,
    /// Time to response headers per bucket of `edgeplane_bus::wire::HEADER_BOUNDS_MS`, then one for
    /// slower.
    pub headers_ms: Vec<u64>,
}

/// One cluster's endpoints in the tables: its name and (address, live state) of each.
pub type ClusterEndpoints = (Arc<str>, Vec<(SocketAddr, Arc<dyn LiveEndpoint>)>);

/// The live state of one endpoint in the proxy's tables, written in place (atomics, no rebuild) by
/// heartbeats and drains, and read by the balancers on the request path.
pub trait LiveEndpoint: Send + Sync {
    /// Health score 0 (down) to 100; below the cluster's threshold the endpoint gets no new requests.
    fn set_health(&self, health: u8);
    /// A draining endpoint gets no new requests; in-flight ones finish.
    fn set_draining(&self, draining: bool);
    /// Load and latency the instance reports about itself.
    fn set_reported(&self, in_flight: u32, cpu: f32, latency_ms: f32);
    /// Requests this node has in flight to the endpoint.
    fn in_flight(&self) -> u32;
}
