//! Starting nodes for the end-to-end tests.

use edgeplane_proxy::NodeHandle;
use edgeplane_tests::Client;
use std::net::SocketAddr;

/// A node started in this process from config text; its first listener's address.
pub async fn start_node(text: &str) -> (NodeHandle, SocketAddr) {
    let config = edgeplane_config::from_toml(text)
        .unwrap_or_else(|e| panic!("test config invalid: {e}\n{text}"));
    let node = NodeHandle::start(&config).await.unwrap();
    let addr = node.listen_addrs()[0];
    (node, addr)
}

/// A node and an HTTP/1.1 client for it.
#[allow(dead_code)]
pub async fn node_and_client(text: &str) -> (NodeHandle, Client) {
    let (node, addr) = start_node(text).await;
    (node, Client::new(addr))
}

/// A NATS client of the test, like any publisher (fails at once if the server is not up).
#[allow(dead_code)]
pub async fn publisher(nats: &edgeplane_tests::NatsServer) -> async_nats::Client {
    connect(bus_options(nats)).await
}

/// The same, connected as `user` (password = user name), like a publisher with its own credentials.
#[allow(dead_code)]
pub async fn publisher_as(nats: &edgeplane_tests::NatsServer, user: &str) -> async_nats::Client {
    connect(edgeplane_bus::BusOptions {
        credentials: edgeplane_bus::Credentials::UserPassword {
            user: user.into(),
            password: user.into(),
        },
        ..bus_options(nats)
    })
    .await
}

#[allow(dead_code)]
fn bus_options(nats: &edgeplane_tests::NatsServer) -> edgeplane_bus::BusOptions {
    edgeplane_bus::BusOptions {
        urls: vec![nats.url()],
        retry_initial: false,
        ..edgeplane_bus::BusOptions::default()
    }
}

#[allow(dead_code)]
async fn connect(options: edgeplane_bus::BusOptions) -> async_nats::Client {
    options.connect(Default::default()).await.unwrap()
}

/// Push options of the tests: the default bucket, one replica, 300 ms to find the nodes, 5 s for
/// their answers.
#[allow(dead_code)]
pub fn push_options() -> edgeplane_controller::publish::PushOptions {
    edgeplane_controller::publish::PushOptions {
        bucket: "edge_config".into(),
        replicas: 1,
        expect_revision: None,
        force: false,
        discover: std::time::Duration::from_millis(300),
        timeout: std::time::Duration::from_secs(5),
    }
}

/// The node's `edgeplane_connections_parked` gauge, read from its admin listener.
#[allow(dead_code)]
pub async fn parked(admin: &Client) -> usize {
    let metrics = admin.get("admin", "/metrics").await.body;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("edgeplane_connections_parked "))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap_or(0.0) as usize)
}
