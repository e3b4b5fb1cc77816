//! Retries, timeouts and connection limits through a real node and real backends: a connect failure
//! goes to another endpoint for any method; a failed answer is replayed only for idempotent requests,
//! with their small body buffered; per-try and total timeouts; the retry budget; `max_connections`
//! with pending requests and `max_pending`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::node_and_client;
use edgeplane_tests::{endpoints, eventually, node_config, text, Backend};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An address nothing listens on: bound, then closed.
async fn dead_address() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

async fn always_503() -> Backend {
    Backend::with("bad", |_req| async {
        text(StatusCode::SERVICE_UNAVAILABLE, "no")
    })
    .await
}

fn with_body(
    c: &edgeplane_tests::Client,
    method: &str,
    host: &str,
    body: &'static str,
) -> http::Request<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>> {
    c.request(host, "/")
        .method(method)
        .body(Full::new(Bytes::from_static(body.as_bytes())).boxed())
        .unwrap()
}

#[tokio::test]
async fn a_connect_failure_goes_to_another_endpoint_for_any_method() {
    let good = Backend::named("good").await;
    let dead = dead_address().await;
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n\
         [[clusters.c.endpoints]]\naddress = \"{dead}\"\n{}",
        endpoints("c", &[(&good, 1)])
    ));
    let (_node, client) = node_and_client(&cfg).await;
    // Round robin sends every other first try to the dead address; the default retry saves each.
    for _ in 0..6 {
        assert_eq!(client.get("r.test", "/").await.status, StatusCode::OK);
        let post = client
            .send(with_body(&client, "POST", "r.test", "payload"))
            .await
            .unwrap();
        assert_eq!(
            post.status,
            StatusCode::OK,
            "nothing was sent, so a POST moves too"
        );
    }
    assert_eq!(good.hits(), 12);
}

#[tokio::test]
async fn failed_answers_are_replayed_for_idempotent_requests_only() {
    let bad = always_503().await;
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.retry]\nattempts = 2\non = [\"5xx\"]\n\
         backoff_base = \"1ms\"\nbackoff_max = \"2ms\"\n{}",
        endpoints("c", &[(&bad, 1)])
    ));
    let (_node, client) = node_and_client(&cfg).await;
    let r = client.get("r.test", "/").await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the last answer is passed on"
    );
    assert_eq!(bad.hits(), 3, "a GET: first try and two retries");
    for method in ["POST", "PATCH"] {
        let before = bad.hits();
        let r = client
            .send(with_body(&client, method, "r.test", "x"))
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(bad.hits(), before + 1, "a {method} is never sent twice");
    }
}

#[tokio::test]
async fn a_small_body_is_buffered_and_replayed_whole() {
    // Fails the first request with 503, then echoes bodies.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let flaky = Backend::with("flaky", move |req| {
        let first = c.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            if first {
                text(StatusCode::SERVICE_UNAVAILABLE, "try again")
            } else {
                text(StatusCode::OK, body)
            }
        }
    })
    .await;
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.retry]\nattempts = 1\n\
         on = [\"gateway_error\"]\nbackoff_base = \"1ms\"\n{}",
        endpoints("c", &[(&flaky, 1)])
    ));
    let (_node, client) = node_and_client(&cfg).await;
    let r = client
        .send(with_body(&client, "PUT", "r.test", "the payload"))
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "the payload"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_slow_try_times_out_and_the_retry_goes_elsewhere_within_the_total() {
    let slow = Backend::with("slow", |_req| async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        text(StatusCode::OK, "late")
    })
    .await;
    let fast = Backend::named("fast").await;
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.timeouts]\nresponse_header = \"200ms\"\n\
         [clusters.c.retry]\non = [\"timeout\"]\nbackoff_base = \"1ms\"\n{}",
        endpoints("c", &[(&slow, 1), (&fast, 1)])
    ));
    let (_node, client) = node_and_client(&cfg).await;
    for _ in 0..4 {
        let r = client.get("t.test", "/").await;
        assert_eq!((r.status, r.header("x-backend")), (StatusCode::OK, "fast"));
    }
    assert!(slow.hits() >= 1, "round robin tried the slow one");

    // Both slow, a total of 300 ms: two tries of 200 ms do not fit, the client gets 504 in time.
    let slow2 = Backend::with("slow2", |_req| async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        text(StatusCode::OK, "late")
    })
    .await;
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.timeouts]\nresponse_header = \"200ms\"\n\
         total = \"300ms\"\n[clusters.c.retry]\nattempts = 3\non = [\"timeout\"]\nbackoff_base = \"1ms\"\n{}",
        endpoints("c", &[(&slow, 1), (&slow2, 1)])
    ));
    let (_node, client) = node_and_client(&cfg).await;
    let start = Instant::now();
    let r = client.get("t.test", "/").await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn the_retry_budget_stops_retries() {
    let bad = always_503().await;
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.retry]\nattempts = 3\non = [\"5xx\"]\n\
         budget_percent = 0\nmin_concurrent = 0\n{}",
        endpoints("c", &[(&bad, 1)])
    ));
    let (node, client) = node_and_client(&cfg).await;
    assert_eq!(
        client.get("b.test", "/").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(bad.hits(), 1, "no budget, no retry");
    assert!(node.tables().load().clusters[0].state.rejected() >= 1);
}

#[tokio::test]
async fn max_connections_queues_requests_up_to_max_pending() {
    let (held, release) = Backend::held("held").await;
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.circuit_breaker]\nmax_connections = 1\n\
         max_pending = 1\n{}",
        endpoints("c", &[(&held, 1)])
    ));
    let (node, client) = node_and_client(&cfg).await;
    let spawn =
        |c: edgeplane_tests::Client| tokio::spawn(async move { c.get("p.test", "/").await });
    let first = spawn(client.clone());
    eventually(
        Duration::from_secs(5),
        "the first request holds the only connection",
        || async { held.hits() == 1 },
    )
    .await;
    let second = spawn(client.clone());
    let cluster_state = || node.tables().load().clusters[0].state.clone();
    eventually(
        Duration::from_secs(5),
        "the second request waits",
        || async { cluster_state().pending() == 1 },
    )
    .await;
    let third = client.get("p.test", "/").await;
    assert_eq!(
        third.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "max_pending reached"
    );
    assert_eq!(third.header("x-edgeplane-error"), "circuit_open");
    assert_eq!(cluster_state().connections(), 1);
    release.add_permits(10);
    assert_eq!(first.await.unwrap().status, StatusCode::OK);
    assert_eq!(
        second.await.unwrap().status,
        StatusCode::OK,
        "served on the freed connection"
    );
    assert_eq!(held.hits(), 2);
    assert_eq!(cluster_state().connections(), 1, "one connection, reused");
}
