//! edgeplane's data plane: an HTTP reverse proxy that makes every routing and balancing decision from
//! one immutable snapshot of its tables, swapped whole by hot reload or by the controller ([`fleet`]).
//!
//! The request path ([`forward`]) does one `load()` of the [`tables::Tables`], matches a route on
//! borrowed data ([`router`]), asks the cluster's [`balancer`] for an endpoint, and streams the request
//! to it over a pooled HTTP/1.1 connection ([`pool`]); the response streams back frame by frame
//! ([`body`]). Per-endpoint live state ([`upstream`]) lives in atomics that survive snapshot swaps.
//! Metrics ([`telemetry`]) are registered on the cold path and rendered at `/metrics`.

pub mod admin;
pub mod affinity;
pub mod balancer;
pub mod body;
pub mod breaker;
pub mod certs;
pub mod closing;
pub mod cluster;
pub mod conn;
pub mod demo;
pub mod ejections;
pub mod endpoint;
pub mod error;
pub mod fleet;
pub mod forward;
pub mod forwarding;
pub mod h1;
pub mod head_watch;
pub mod headers;
pub mod health_check;
pub mod idle;
pub mod lifecycle;
pub mod next_try;
pub mod node;
pub mod outlier;
pub mod pool;
pub mod priority;
pub mod reload;
pub mod request_body;
pub mod retry;
pub mod router;
pub mod send;
pub mod server;
pub mod shared;
pub mod shed;
pub mod stamp;
pub mod tables;
pub mod telemetry;
pub mod tls;
pub mod tunnel;
pub mod upgrade;
pub mod upstream;
pub mod upstream_tls;

pub use node::{NodeHandle, StartError};
