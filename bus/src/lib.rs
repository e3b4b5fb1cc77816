//! edgeplane's NATS boundary.
//!
//! This crate will hold everything that touches the wire: subject names under a configurable prefix
//! (default [`DEFAULT_PREFIX`]), the serde wire messages for config pushes, heartbeats, scaling events
//! and node announcements, their codec, and the NATS connection options. It is the only crate with serde
//! wire types; the proxy's tables never see them.
//!
//! Today a node runs from its config file only; the NATS plumbing lands with the controller issue.

/// The default subject prefix: every subject edgeplane uses starts with it.
pub const DEFAULT_PREFIX: &str = "edge.v1";
