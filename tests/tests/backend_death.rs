//! A backend that dies, through a real node and real backends: a refused connect takes the endpoint
//! out at once (not at the next sweep), within `max_ejected_percent`; a request that was never sent
//! moves to another endpoint without spending the retry budget; a passing health check lets an
//! ejected endpoint back in; a restarted backend takes traffic again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::node_and_client;
use edgeplane_tests::{endpoints, eventually, node_config, Backend};
use http::StatusCode;
use std::time::Duration;

/// An address nothing listens on: bound, then closed.
async fn dead_address() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

fn metric(node: &edgeplane_proxy::NodeHandle, line_start: &str) -> f64 {
    let text = node.telemetry().render();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_refused_connect_ejects_the_endpoint_at_once_and_costs_one_failure() {
    let good = Backend::named("good").await;
    let dead = dead_address().await;
    // A streak of 1000 and no failure rate: only the refused connect can eject it.
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.outlier]\nconsecutive_failures = 1000\n\
         base_ejection = \"5m\"\n[[clusters.c.endpoints]]\naddress = \"{dead}\"\n{}",
        endpoints("c", &[(&good, 1)])
    ));
    let (node, client) = node_and_client(&cfg).await;
    for _ in 0..20 {
        let r = client.get("d.test", "/").await;
        assert_eq!((r.status, r.header("x-backend")), (StatusCode::OK, "good"));
    }
    let tables = node.tables().load();
    let dead_endpoint = &tables.clusters[0].endpoints[0].upstream;
    assert_eq!(dead_endpoint.address, dead);
    assert!(dead_endpoint.ejected());
    assert_eq!(
        (dead_endpoint.requests(), dead_endpoint.failures()),
        (1, 1),
        "picked once, charged once"
    );
    assert_eq!(
        metric(
            &node,
            "edgeplane_outlier_ejections_total{cluster=\"c\",reason=\"connect\"}"
        ),
        1.0
    );
    assert_eq!(good.hits(), 20);
}

#[tokio::test]
async fn connect_errors_never_eject_more_than_the_allowed_share() {
    let (a, b) = (dead_address().await, dead_address().await);
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.outlier]\nbase_ejection = \"5m\"\n\
         [[clusters.c.endpoints]]\naddress = \"{a}\"\n[[clusters.c.endpoints]]\naddress = \"{b}\"\n"
    ));
    let (node, client) = node_and_client(&cfg).await;
    for _ in 0..10 {
        let r = client.get("d.test", "/").await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY);
        assert_eq!(r.header("x-edgeplane-error"), "connect_failed");
    }
    let ejected = node.tables().load().clusters[0]
        .endpoints
        .iter()
        .filter(|e| e.upstream.ejected())
        .count();
    assert_eq!(ejected, 1, "max_ejected_percent 50 of two endpoints");
}

#[tokio::test]
async fn a_request_never_sent_moves_on_without_spending_the_retry_budget() {
    let good = Backend::named("good").await;
    let dead: Vec<_> = dead_addresses(3).await;
    // No budget at all: only retries of requests that reached nobody may happen.
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.retry]\nattempts = 3\n\
         on = [\"connect_failure\", \"5xx\"]\nbudget_percent = 0\nmin_concurrent = 0\n{}{}",
        dead.iter()
            .map(|a| format!("[[clusters.c.endpoints]]\naddress = \"{a}\"\n"))
            .collect::<String>(),
        endpoints("c", &[(&good, 1)])
    ));
    let (node, client) = node_and_client(&cfg).await;
    for _ in 0..8 {
        let r = client.get("d.test", "/").await;
        assert_eq!((r.status, r.header("x-backend")), (StatusCode::OK, "good"));
    }
    assert_eq!(good.hits(), 8);
    assert_eq!(
        node.tables().load().clusters[0].state.rejected(),
        0,
        "the budget refused nothing"
    );
}

async fn dead_addresses(n: usize) -> Vec<std::net::SocketAddr> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(dead_address().await);
    }
    v
}

#[tokio::test]
async fn a_restarted_backend_is_let_back_in_by_a_passing_health_check() {
    let good = Backend::named("good").await;
    let addr = dead_address().await;
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.outlier]\nbase_ejection = \"5m\"\n\
         [clusters.c.health_check]\npath = \"/\"\ninterval = \"100ms\"\ntimeout = \"1s\"\n\
         [[clusters.c.endpoints]]\naddress = \"{addr}\"\n{}",
        endpoints("c", &[(&good, 1)])
    ));
    let (node, client) = node_and_client(&cfg).await;
    let back = || {
        node.tables().load().clusters[0].endpoints[0]
            .upstream
            .ejected()
    };
    eventually(
        Duration::from_secs(10),
        "the dead endpoint is out",
        || async {
            assert_eq!(client.get("d.test", "/").await.status, StatusCode::OK);
            back()
        },
    )
    .await;
    // It comes back where it died; a 5-minute ejection ends at its first passing check.
    let restarted = Backend::named_at("restarted", addr).await;
    eventually(
        Duration::from_secs(10),
        "the restarted backend serves again",
        || async {
            let r = client.get("d.test", "/").await;
            assert_eq!(r.status, StatusCode::OK);
            r.header("x-backend") == "restarted"
        },
    )
    .await;
    assert!(restarted.hits() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_under_load_fails_no_request_and_is_charged_at_most_three_failures() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.outlier]\nconsecutive_failures = 3\n\
         [clusters.c.retry]\nattempts = 2\non = [\"connect_failure\", \"reset\"]\n{}",
        endpoints("c", &[(&a, 1), (&b, 1)])
    ));
    let (node, addr) = common::start_node(&cfg).await;
    let (stop, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (stop, failed) = (stop.clone(), failed.clone());
            let client = edgeplane_tests::Client::new(addr);
            tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    let ok = client
                        .try_get("k.test", "/")
                        .await
                        .is_ok_and(|r| r.status == StatusCode::OK);
                    if !ok {
                        failed.fetch_add(1, Relaxed);
                    }
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(10), "b serves under load", || async {
        b.hits() > 500
    })
    .await;
    let b_addr = b.addr;
    // Dies with requests in flight: every connection closes, the port refuses.
    drop(b);
    let hits = a.hits();
    eventually(Duration::from_secs(10), "a takes the load", || async {
        a.hits() > hits + 2000
    })
    .await;
    stop.store(true, Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(failed.load(Relaxed), 0, "no request failed");
    let tables = node.tables().load();
    let dead = tables.clusters[0]
        .endpoints
        .iter()
        .find(|e| e.upstream.address == b_addr)
        .unwrap();
    assert!(dead.upstream.ejected());
    assert!(
        dead.upstream.failures() <= 3,
        "{} failures charged to the dead endpoint",
        dead.upstream.failures()
    );
}
