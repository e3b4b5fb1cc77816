//! Resilience through a real node: passive outlier detection (a backend that answers 503 fast is
//! ejected and traffic moves to the healthy one; detection off, it keeps getting its share) and the
//! circuit breaker (requests beyond `max_requests` get 503 at once).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::node_and_client;
use edgeplane_tests::{endpoints, eventually, node_config, text, Backend};
use http::StatusCode;
use std::time::Duration;

async fn failing() -> Backend {
    Backend::with("bad", |_req| async {
        text(StatusCode::SERVICE_UNAVAILABLE, "no")
    })
    .await
}

#[tokio::test]
async fn a_backend_answering_503_fast_is_ejected() {
    let (good, bad) = (Backend::named("good").await, failing().await);
    let text = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.outlier]\nconsecutive_failures = 3\n\
         base_ejection = \"30s\"\n{}",
        endpoints("c", &[(&good, 1), (&bad, 1)])
    ));
    let (node, client) = node_and_client(&text).await;
    // Round robin sends every other request to the failing backend until the sweeper ejects it.
    eventually(
        Duration::from_secs(5),
        "the failing backend is ejected",
        || async {
            client.get("o.test", "/").await;
            node.tables().load().clusters[0].endpoints[1]
                .upstream
                .ejected()
        },
    )
    .await;
    for _ in 0..10 {
        let r = client.get("o.test", "/").await;
        assert_eq!((r.status, r.header("x-backend")), (StatusCode::OK, "good"));
    }
}

#[tokio::test]
async fn without_outlier_detection_nobody_is_ejected() {
    let (good, bad) = (Backend::named("good").await, failing().await);
    let text = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&good, 1), (&bad, 1)])
    ));
    let (node, client) = node_and_client(&text).await;
    for _ in 0..20 {
        client.get("o.test", "/").await;
    }
    assert!(bad.hits() >= 10);
    assert!(!node.tables().load().clusters[0].endpoints[1]
        .upstream
        .ejected());
}

#[tokio::test]
async fn the_circuit_breaker_sheds_requests_beyond_max_requests() {
    let (held, release) = Backend::held("held").await;
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.circuit_breaker]\nmax_requests = 2\n{}",
        endpoints("c", &[(&held, 1)])
    ));
    let (node, client) = node_and_client(&cfg).await;
    let pending: Vec<_> = (0..2)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.get("cb.test", "/").await })
        })
        .collect();
    eventually(
        Duration::from_secs(5),
        "two requests held upstream",
        || async { held.hits() == 2 },
    )
    .await;
    let shed = client.get("cb.test", "/").await;
    assert_eq!(shed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.header("x-edgeplane-error"), "circuit_open");
    assert_eq!(
        held.hits(),
        2,
        "the shed request never reached the upstream"
    );
    assert_eq!(node.tables().load().clusters[0].state.in_flight(), 2);
    release.add_permits(10);
    for p in pending {
        assert_eq!(p.await.unwrap().status, StatusCode::OK);
    }
    assert_eq!(client.get("cb.test", "/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn active_health_checks_take_a_failing_endpoint_out_and_bring_it_back() {
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let h = healthy.clone();
    let checked = Backend::with("checked", move |req| {
        let ok = h.load(std::sync::atomic::Ordering::SeqCst);
        async move {
            if req.uri().path() == "/health" && !ok {
                text(StatusCode::SERVICE_UNAVAILABLE, "sick")
            } else {
                text(StatusCode::OK, "ok")
            }
        }
    })
    .await;
    let other = Backend::named("other").await;
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.health_check]\npath = \"/health\"\n\
         interval = \"50ms\"\ntimeout = \"1s\"\nhealthy_threshold = 2\nunhealthy_threshold = 2\n{}",
        endpoints("c", &[(&checked, 1), (&other, 1)])
    ));
    let (node, client) = node_and_client(&cfg).await;
    let failed = |n: &edgeplane_proxy::NodeHandle| {
        n.tables().load().clusters[0].endpoints[0]
            .upstream
            .check_failed()
    };
    assert!(!failed(&node), "endpoints start in");
    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    eventually(
        Duration::from_secs(5),
        "two failed checks take it out",
        || async { failed(&node) },
    )
    .await;
    for _ in 0..6 {
        assert_eq!(
            client.get("hc.test", "/").await.header("x-backend"),
            "other"
        );
    }
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    eventually(
        Duration::from_secs(5),
        "two passing checks bring it back",
        || async { !failed(&node) },
    )
    .await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        seen.insert(
            client
                .get("hc.test", "/")
                .await
                .header("x-backend")
                .to_string(),
        );
    }
    assert!(seen.contains("checked"), "{seen:?}");
}

#[tokio::test]
async fn a_zone_aware_cluster_keeps_traffic_in_the_nodes_zone() {
    let (near, far) = (Backend::named("near").await, Backend::named("far").await);
    let cfg = format!(
        "[node]\nzone = \"z1\"\n[[node.listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"c\"\n\
         [clusters.c]\nzone_aware = true\n\
         [[clusters.c.endpoints]]\naddress = \"{}\"\nzone = \"z1\"\n\
         [[clusters.c.endpoints]]\naddress = \"{}\"\nzone = \"z2\"\n",
        near.addr, far.addr
    );
    let (_node, client) = node_and_client(&cfg).await;
    for _ in 0..6 {
        assert_eq!(client.get("z.test", "/").await.header("x-backend"), "near");
    }
    assert_eq!(far.hits(), 0);
}

#[tokio::test]
async fn traffic_fails_over_by_healthy_share_and_fails_back() {
    use edgeplane_proxy::upstream::AdminState;
    let (p1, p2, backup) = (
        Backend::named("p1").await,
        Backend::named("p2").await,
        Backend::named("backup").await,
    );
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}\
         [[clusters.c.endpoints]]\naddress = \"{}\"\npriority = 1\n",
        endpoints("c", &[(&p1, 1), (&p2, 1)]),
        backup.addr
    ));
    let (node, client) = node_and_client(&cfg).await;
    for _ in 0..10 {
        client.get("f.test", "/").await;
    }
    assert_eq!(backup.hits(), 0, "all primaries usable: the backup idles");
    // Half the primaries out: 50 % < 70 %, so 50/70 of the traffic stays and the rest fails over.
    let snapshot = node.tables().load();
    snapshot.clusters[0].endpoints[0]
        .upstream
        .set_admin_state(AdminState::Disabled);
    eventually(
        Duration::from_secs(5),
        "the sweeper splits traffic",
        || async { node.tables().load().clusters[0].state.level_shares()[1] > 0 },
    )
    .await;
    assert_eq!(
        &node.tables().load().clusters[0].state.level_shares()[..2],
        &[714, 286]
    );
    let before = backup.hits();
    for _ in 0..200 {
        assert_eq!(client.get("f.test", "/").await.status, StatusCode::OK);
    }
    let to_backup = backup.hits() - before;
    assert!(
        (30..=90).contains(&to_backup),
        "about 29 % of 200: {to_backup}"
    );
    // Failback.
    snapshot.clusters[0].endpoints[0]
        .upstream
        .set_admin_state(AdminState::Enabled);
    eventually(
        Duration::from_secs(5),
        "traffic returns to the primaries",
        || async { node.tables().load().clusters[0].state.level_shares()[0] == 1000 },
    )
    .await;
    let before = backup.hits();
    for _ in 0..20 {
        client.get("f.test", "/").await;
    }
    assert_eq!(backup.hits(), before);
}
