//! edgeplane's controller: keeps a node's tables current from the fleet's NATS subjects.
//!
//! Today it follows config pushes: the whole routing document lives in a JetStream KV bucket, and each
//! revision is validated, applied whole (one store of the proxy's tables) or rejected whole, persisted to
//! local disk, and acknowledged on `<prefix>.ack.<node>`. The decisions are a pure state machine
//! ([`state::ConfigState`]), unit-tested without a network; the NATS plumbing around it is
//! [`pushes`]. The controller writes the tables only through the narrow [`RoutingSink`] interface, which
//! the proxy implements, so it knows nothing of hyper or sockets.
//!
//! Heartbeats and scaling events join it in the next increments of the controller issue.

pub mod announce;
pub mod identity;
pub mod options;
pub mod publish;
pub mod pushes;
pub mod state;
pub mod status;
pub mod store;

use edgeplane_config::{ContentHash, Routing};

/// The narrow interface through which the controller changes the proxy's tables.
pub trait RoutingSink: Send + Sync + 'static {
    /// Builds and stores a snapshot of `routing` in one swap, or says why it cannot.
    fn apply(&self, routing: &Routing) -> Result<ContentHash, String>;
    /// The content hash of the routing in place.
    fn current_hash(&self) -> ContentHash;
    /// Open downstream connections, for status reports.
    fn connections(&self) -> u64;
    /// Requests received since start, for status reports.
    fn requests(&self) -> u64;
}
