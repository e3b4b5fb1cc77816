//! edgeplane's data plane: an HTTP reverse proxy that makes every routing and balancing decision from
//! one immutable snapshot of its tables, swapped whole by hot reload or by the controller ([`fleet`]).
//!
//! The folders follow a request: [`downstream`] accepts the client's connection (TLS, connection
//! limits, idle and drain handling); [`request`] routes it, rewrites it and runs its tries
//! ([`request::forward`]), doing one `load()` of the [`tables::Tables`]; [`tables`] holds what was
//! loaded (routes matched on borrowed data, clusters, endpoints, balancers, affinity, priority
//! levels, certificates); [`upstream`] reaches the endpoints (idle-connection pools, connections, the
//! own HTTP/1.1 client, TLS to upstreams) and keeps each endpoint's live state in atomics that survive
//! snapshot swaps, with health checks, outlier detection and circuit breakers. Beside them: the
//! [`admin`] listener, [`telemetry`] (metrics registered on the cold path, rendered at `/metrics`),
//! the [`node`] that starts it all, [`fleet`] (the controller), [`reload`] and [`upgrade`].

#![warn(unreachable_pub)]
// The crate documents itself for the people who work on it (`cargo doc --document-private-items`):
// module docs link to the private modules they sit beside.
#![allow(rustdoc::private_intra_doc_links)]

pub mod admin;
mod autoscale;
pub mod demo;
mod downstream;
mod error;
mod events;
pub mod fleet;
mod grpc;
pub mod limits;
pub mod node;
pub mod reload;
mod request;
mod stamp;
pub mod tables;
pub mod telemetry;
pub mod upgrade;
pub mod upstream;

pub use node::{NodeHandle, StartError};

/// Reads `data` as the node's own HTTP/1.x server reads a client's bytes (request heads, then the
/// response heads it would write for them). For the fuzz target `h1_request` and its corpus
/// replay: whatever `data` holds, this returns, never panics.
pub fn read_request_untrusted(data: &[u8]) {
    downstream::h1::read_untrusted(data);
}
