//! edgeplane's data plane: an HTTP reverse proxy that makes every routing and balancing decision from
//! one immutable snapshot of its tables, swapped whole by hot reload or by the controller ([`fleet`]).
//!
//! The request path ([`forward`]) does one `load()` of the [`tables::Tables`], matches a route on
//! borrowed data ([`router`]), asks the cluster's [`balancer`] for an endpoint, and streams the request
//! to it over a pooled HTTP/1.1 connection ([`pool`]); the response streams back frame by frame
//! ([`body`]). Per-endpoint live state ([`upstream`]) lives in atomics that survive snapshot swaps.
//! Metrics ([`telemetry`]) are registered on the cold path and rendered at `/metrics`.

#![warn(unreachable_pub)]

mod access_log;
pub mod admin;
mod affinity;
mod attempts;
mod balancer;
mod body;
mod breaker;
mod certs;
mod closing;
mod cluster;
mod conn;
pub mod demo;
mod ejections;
mod endpoint;
mod error;
pub mod fleet;
mod forward;
mod forwarding;
pub mod h1;
mod head_watch;
mod headers;
pub mod health_check;
mod idle;
mod lifecycle;
mod next_try;
pub mod node;
mod outlier;
mod pool;
mod priority;
pub mod reload;
mod request_body;
mod respond;
mod retry;
mod rewrite;
pub mod router;
mod send;
mod server;
mod shared;
mod shed;
mod stamp;
pub mod tables;
pub mod telemetry;
pub mod tls;
mod tunnel;
pub mod upgrade;
pub mod upstream;
mod upstream_tls;

pub use node::{NodeHandle, StartError};
