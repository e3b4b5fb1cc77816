//! Per-route limits: the largest request body a route accepts (413 by `Content-Length` before
//! anything is sent, or cut while it streams), and a route's own timeouts over its cluster's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::node_and_client;
use edgeplane_tests::{endpoints, node_config, raw_request, text, Backend};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A backend that reads each request body as far as it can and answers with the bytes it got; the
/// bytes of every body, whole or cut, are added to `seen`.
async fn sink(seen: Arc<AtomicU64>) -> Backend {
    Backend::with("sink", move |req| {
        let seen = seen.clone();
        async move {
            let mut body = req.into_body();
            let mut total = 0u64;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    total += data.len() as u64;
                }
            }
            seen.fetch_add(total, Ordering::SeqCst);
            text(StatusCode::OK, total.to_string())
        }
    })
    .await
}

fn chunked(host: &str, sizes: &[usize]) -> Vec<u8> {
    let mut raw = format!(
        "POST / HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    for &n in sizes {
        raw.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        raw.extend(std::iter::repeat_n(b'x', n));
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    raw
}

#[tokio::test]
async fn a_route_limits_request_bodies_by_length_and_as_they_stream() {
    let seen = Arc::new(AtomicU64::new(0));
    let backend = sink(seen.clone()).await;
    // With the admin listener, so that the node keeps metrics.
    let text = node_config(&format!(
        r#"
[[routes]]
hosts = ["small.test"]
cluster = "c"
max_request_body = 1000
[[routes]]
hosts = ["any.test"]
cluster = "c"
[clusters.c]
{}
"#,
        endpoints("c", &[(&backend, 1)])
    ))
    .replace("[node]\n", "[node]\nadmin = \"127.0.0.1:0\"\n");
    let (node, client) = node_and_client(&text).await;
    let post = |host: &str, len: usize| {
        client
            .request(host, "/")
            .method("POST")
            .body(Full::new(bytes::Bytes::from(vec![b'x'; len])).boxed())
            .unwrap()
    };

    // Over the limit by Content-Length: 413 at once, the upstream never asked.
    let resp = client.send(post("small.test", 2000)).await.unwrap();
    assert_eq!(resp.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp.header("x-edgeplane-error"), "payload_too_large");
    assert_eq!(backend.hits(), 0, "refused before any try");

    // At the limit, and without one: through, whole.
    let resp = client.send(post("small.test", 1000)).await.unwrap();
    assert_eq!((resp.status, resp.body.as_str()), (StatusCode::OK, "1000"));
    let resp = client.send(post("any.test", 5000)).await.unwrap();
    assert_eq!((resp.status, resp.body.as_str()), (StatusCode::OK, "5000"));

    // Chunked, no length declared: counted as it streams and cut past the limit.
    let before = seen.load(Ordering::SeqCst);
    let out = raw_request(
        node.listen_addrs()[0],
        &chunked("small.test", &[600, 600, 600]),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(
        out.contains("x-edgeplane-error: payload_too_large"),
        "{out}"
    );
    let forwarded = seen.load(Ordering::SeqCst) - before;
    assert!(
        forwarded <= 1000,
        "at most the limit reached the upstream: {forwarded}"
    );
    let out = raw_request(node.listen_addrs()[0], &chunked("small.test", &[400, 400])).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("800"), "{out}");

    // The client's doing: the endpoint is not charged (it stays healthy and in).
    let metrics = node.telemetry().render();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("edgeplane_proxy_errors_total{cluster=\"c\"")
                && l.contains("kind=\"payload_too_large\"")
        })
        .unwrap_or_else(|| panic!("no payload_too_large count:\n{metrics}"));
    assert!(line.ends_with(" 2"), "{line}");
    let failures = metrics
        .lines()
        .find(|l| l.starts_with("edgeplane_endpoint_failures_total"))
        .unwrap();
    assert!(failures.ends_with(" 0"), "{failures}");
    let resp = client.send(post("small.test", 10)).await.unwrap();
    assert_eq!(resp.status, StatusCode::OK);
}

#[tokio::test]
async fn a_route_timeout_overrides_its_clusters() {
    let slow = Backend::with("slow", |_req| async {
        // The scenario itself: an upstream slower than the route's timeout, not the cluster's.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        text(StatusCode::OK, "late")
    })
    .await;
    let text = node_config(&format!(
        r#"
[[routes]]
hosts = ["quick.test"]
cluster = "slow"
[routes.timeouts]
response_header = "200ms"
[[routes]]
hosts = ["patient.test"]
cluster = "slow"
[clusters.slow.timeouts]
response_header = "10s"
[clusters.slow.retry]
attempts = 0
{}
"#,
        endpoints("slow", &[(&slow, 1)])
    ));
    let (_node, client) = node_and_client(&text).await;
    let resp = client.get("quick.test", "/").await;
    assert_eq!(resp.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(resp.header("x-edgeplane-error"), "upstream_timeout");
    let resp = client.get("patient.test", "/").await;
    assert_eq!((resp.status, resp.body.as_str()), (StatusCode::OK, "late"));
}
