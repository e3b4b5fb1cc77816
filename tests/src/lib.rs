//! Fixtures for edgeplane's end-to-end tests: backends, clients and polling, each bound to
//! `127.0.0.1:0` before use. Nothing here sleeps to synchronise: [`eventually`] polls with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backend;
mod body;
mod client;
pub mod fuzz;
mod nats;
mod pki;
mod prometheus;
mod tls_client;

pub use backend::{header_lines, text, Backend, Handler, Reply};
pub use body::Generated;
pub use client::{raw_request, Client, Resp};
pub use nats::{nats_server_bin, python_with_nats, NatsCluster, NatsServer};
pub use pki::TestPki;
pub use prometheus::{promtool_bin, Prometheus};
pub use tls_client::{tls_request, TlsConn, TlsReply};

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 10 ms until it returns true; panics with `what` after `deadline`.
pub async fn eventually<F, Fut>(deadline: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A free loopback port, bound and released for a server or node to bind right away. Never the
/// same port twice in one test process: a port released at once can come back on the next bind (a
/// node's listener and admin port picked one after the other once were the same).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free loopback port: {e}"));
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A node config with one listener on `127.0.0.1:0`, followed by `rest` (routes and clusters).
pub fn node_config(rest: &str) -> String {
    format!("[node]\nid = \"test-node\"\n[[node.listeners]]\nname = \"http\"\naddress = \"127.0.0.1:0\"\n{rest}")
}

/// `[[clusters.NAME.endpoints]]` entries for these backends, with optional weights.
pub fn endpoints(cluster: &str, backends: &[(&Backend, u32)]) -> String {
    backends
        .iter()
        .map(|(b, w)| {
            format!(
                "[[clusters.{cluster}.endpoints]]\naddress = \"{}\"\nweight = {w}\n",
                b.addr
            )
        })
        .collect()
}
