//! `GET /api/v1/fleet` on any node: every node of the fleet from their announcements over a real
//! nats-server, with their request rates and the fleet's totals; 404 on a node without NATS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::start_node;
use edgeplane_proxy::fleet::join;
use edgeplane_tests::{eventually, node_config, Backend, Client, NatsServer};
use http::StatusCode;
use std::time::Duration;

async fn get(admin: std::net::SocketAddr, path: &str) -> (StatusCode, serde_json::Value) {
    let c = Client::new(admin);
    let req = c
        .request("admin", path)
        .header("authorization", "Bearer fl33t")
        .body(Default::default())
        .unwrap();
    let resp = c.send(req).await.unwrap();
    (
        resp.status,
        serde_json::from_str(&resp.body).unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_serves_the_whole_fleet() {
    let nats = NatsServer::start(&[]);
    let backend = Backend::named("b").await;
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("EDGEPLANE_ADMIN_TOKEN", "fl33t");
    let mut nodes = Vec::new();
    for (id, zone) in [("fa", "z1"), ("fb", "z2")] {
        let text = format!(
            "[node]\nid = \"{id}\"\nzone = \"{zone}\"\nadmin = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n\
             [node.nats]\nurls = [\"{}\"]\n[[node.listeners]]\naddress = \"127.0.0.1:0\"\n\
             [[routes]]\ncluster = \"b\"\n[clusters.b]\n[[clusters.b.endpoints]]\naddress = \"{}\"\n",
            dir.path().join(id).display(),
            nats.url(),
            backend.addr
        );
        let (node, addr) = start_node(&text).await;
        let controller = join(&node).await.unwrap().unwrap();
        nodes.push((node, controller, Client::new(addr)));
    }
    let admin = nodes[0].0.admin_addr().unwrap();

    // A node follows the fleet only once asked: the first request starts its view.
    let (status, first) = get(admin, "/api/v1/fleet").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["following"], false, "{first}");

    // Both nodes appear, online, with their zones, from node fa's API.
    eventually(
        Duration::from_secs(15),
        "both nodes listed online",
        || async {
            let (status, body) = get(admin, "/api/v1/fleet").await;
            status == StatusCode::OK && body["totals"]["online"] == 2
        },
    )
    .await;
    let (_, body) = get(admin, "/api/v1/fleet").await;
    assert_eq!(body["following"], true);
    let fb = body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "fb")
        .unwrap()
        .clone();
    assert_eq!(fb["zone"], "z2");
    assert_eq!(fb["revision"], 0);
    assert_eq!(body["totals"]["on_newest_revision"], 2);

    // Traffic on fb shows as its request rate (from two announcements, 5 s apart).
    for _ in 0..200 {
        assert_eq!(
            nodes[1].2.get("fleet.test", "/").await.status,
            StatusCode::OK
        );
    }
    eventually(Duration::from_secs(20), "fb's request rate", || async {
        let (_, body) = get(admin, "/api/v1/fleet").await;
        body["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["id"] == "fb" && n["requests_per_s"].as_f64().unwrap_or(0.0) > 0.0)
    })
    .await;

    // A node without NATS knows no fleet.
    let lone = node_config("[[routes]]\ncluster = \"b\"\n[clusters.b]\n")
        .replace("[node]\n", "[node]\nadmin = \"127.0.0.1:0\"\n");
    let (lone, _) = start_node(&lone).await;
    let (status, body) = get(lone.admin_addr().unwrap(), "/api/v1/fleet").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}
