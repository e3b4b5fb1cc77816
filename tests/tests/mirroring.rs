//! Request mirroring through a real node: sampled copies (same method, target, body and forwarding
//! headers) reach the shadow cluster; large or unknown-length bodies are not mirrored; a shadow that
//! hangs or is down changes nothing for clients, and its copies in flight stay bounded; every outcome
//! is counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::node_and_client;
use edgeplane_tests::{endpoints, eventually, node_config, text, Backend, Client};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the shadow saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    body: String,
    forwarded_for: String,
    request_id: String,
}

async fn recording_shadow() -> (Backend, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let backend = Backend::with("shadow", move |req| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let header = |name: &str| {
                parts
                    .headers
                    .get(name)
                    .map_or("", |v| v.to_str().unwrap())
                    .to_string()
            };
            log.lock().unwrap().push(Seen {
                method: parts.method.to_string(),
                target: parts.uri.to_string(),
                body: String::from_utf8_lossy(&body).into_owned(),
                forwarded_for: header("x-forwarded-for"),
                request_id: header("x-request-id"),
            });
            // The shadow's answer is discarded: make it one a client would notice.
            text(StatusCode::INTERNAL_SERVER_ERROR, "shadow answer")
        }
    })
    .await;
    (backend, seen)
}

fn config(primary: &Backend, shadow: &str, mirror: &str) -> String {
    node_config(&format!(
        "[[routes]]\nname = \"web\"\ncluster = \"primary\"\n[routes.mirror]\ncluster = \"shadow\"\n{mirror}\n\
         [clusters.primary]\n{}[clusters.shadow]\n[[clusters.shadow.endpoints]]\naddress = \"{shadow}\"\n",
        endpoints("primary", &[(primary, 1)]),
    ))
    .replace("[node]\n", "[node]\nadmin = \"127.0.0.1:0\"\n")
}

fn mirror_count(node: &edgeplane_proxy::NodeHandle, outcome: &str) -> u64 {
    let metrics = node.telemetry().render();
    let series = format!(
        "edgeplane_mirror_requests_total{{route=\"web\",cluster=\"shadow\",outcome=\"{outcome}\"}}"
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn post(client: &Client, path: &str, body: &'static str) -> edgeplane_tests::Resp {
    let req = client
        .request("m.test", path)
        .method("POST")
        .header("content-type", "text/plain")
        .body(Full::new(body.into()).map_err(|e| match e {}).boxed())
        .unwrap();
    client.send(req).await.unwrap()
}

#[tokio::test]
async fn sampled_copies_reach_the_shadow_and_its_answers_are_discarded() {
    let primary = Backend::named("primary").await;
    let (shadow, seen) = recording_shadow().await;
    let text = config(&primary, &shadow.addr.to_string(), "max_body = 16");
    let (node, client) = node_and_client(&text).await;

    let resp = client.get("m.test", "/page?x=1").await;
    assert_eq!(
        (resp.status, resp.header("x-backend")),
        (StatusCode::OK, "primary")
    );
    let primary_id = resp
        .body
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap()
        .to_string();
    assert_eq!(
        post(&client, "/form", "a=1&b=2").await.status,
        StatusCode::OK
    );
    // Over max_body: served, not mirrored.
    assert_eq!(
        post(&client, "/big", "a body longer than sixteen bytes")
            .await
            .status,
        StatusCode::OK
    );
    eventually(Duration::from_secs(5), "two copies answered", || async {
        mirror_count(&node, "answered") == 2
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("GET", "/page?x=1")
    );
    assert_eq!(seen[0].forwarded_for, "127.0.0.1");
    assert_eq!(
        seen[0].request_id, primary_id,
        "the copy carries the original's request id"
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].body.as_str()),
        ("POST", "a=1&b=2")
    );
    assert_eq!(mirror_count(&node, "too_large"), 1);
    assert_eq!(primary.hits(), 3);
}

#[tokio::test]
async fn a_hanging_or_dead_shadow_changes_nothing_for_clients() {
    let primary = Backend::named("primary").await;
    let (shadow, release) = Backend::held("shadow").await;
    let text = config(&primary, &shadow.addr.to_string(), "max_concurrent = 2");
    let (node, client) = node_and_client(&text).await;

    // The shadow holds every copy: two stay in flight, the rest are turned away; clients are all
    // answered by the primary meanwhile.
    for i in 0..20 {
        let resp = client.get("m.test", &format!("/r{i}")).await;
        assert_eq!(resp.status, StatusCode::OK, "request {i}");
    }
    eventually(
        Duration::from_secs(5),
        "copies beyond max_concurrent turned away",
        || async { mirror_count(&node, "busy") == 18 },
    )
    .await;
    release.add_permits(2);
    eventually(
        Duration::from_secs(5),
        "the held copies answered",
        || async { mirror_count(&node, "answered") == 2 },
    )
    .await;

    // A shadow that is down: copies fail, clients do not notice.
    drop(shadow);
    let dead = config(&primary, "127.0.0.1:1", "");
    let (node, client) = node_and_client(&dead).await;
    for i in 0..5 {
        assert_eq!(
            client.get("m.test", &format!("/d{i}")).await.status,
            StatusCode::OK
        );
    }
    eventually(Duration::from_secs(5), "failed copies counted", || async {
        mirror_count(&node, "failed") == 5
    })
    .await;
}

#[tokio::test]
async fn a_share_of_requests_is_mirrored() {
    let primary = Backend::named("primary").await;
    let (shadow, seen) = recording_shadow().await;
    let text = config(&primary, &shadow.addr.to_string(), "percent = 25");
    let (node, client) = node_and_client(&text).await;
    for i in 0..400 {
        assert_eq!(
            client.get("m.test", &format!("/s{i}")).await.status,
            StatusCode::OK
        );
    }
    let mut mirrored = 0;
    eventually(Duration::from_secs(5), "sampled copies answered", || {
        mirrored = mirror_count(&node, "answered");
        let settled = mirrored as usize == seen.lock().unwrap().len();
        async move { settled }
    })
    .await;
    // 100 expected; the bound is about five standard deviations wide.
    assert!((60..=140).contains(&mirrored), "{mirrored} of 400 at 25 %");
}

#[test]
fn invalid_mirrors_are_rejected_with_paths() {
    let text = node_config(
        "[[routes]]\ncluster = \"c\"\n[routes.mirror]\ncluster = \"nowhere\"\npercent = 150\nmax_concurrent = 0\n\
         [[routes]]\nhosts = [\"down.test\"]\n[routes.direct]\n[routes.mirror]\ncluster = \"c\"\n\
         [clusters.c]\n",
    );
    let err = edgeplane_config::from_toml(&text).unwrap_err().lines();
    for want in [
        "routes[0].mirror.cluster: unknown cluster \"nowhere\"",
        "routes[0].mirror.percent: 150 is out of range 0..=100",
        "routes[0].mirror.max_concurrent: 0 is out of range",
        "routes[1].mirror: a route that answers itself",
    ] {
        assert!(err.iter().any(|l| l.starts_with(want)), "{want}: {err:#?}");
    }
}

#[tokio::test]
async fn a_mirrored_post_is_not_retried() {
    // The body of a mirrored request is buffered so that the shadow gets a copy; that must not make a
    // non-idempotent request replayable.
    let down = || async { text(StatusCode::SERVICE_UNAVAILABLE, "down") };
    let (a, b) = (
        Backend::with("a", move |_| down()).await,
        Backend::with("b", move |_| down()).await,
    );
    let (shadow, _seen) = recording_shadow().await;
    let text = node_config(&format!(
        "[[routes]]\nname = \"web\"\ncluster = \"primary\"\n[routes.mirror]\ncluster = \"shadow\"\n\
         max_body = 64\n[clusters.primary]\n[clusters.primary.retry]\nattempts = 2\non = [\"5xx\"]\n\
         backoff_base = \"1ms\"\n{}[clusters.shadow]\n[[clusters.shadow.endpoints]]\naddress = \"{}\"\n",
        endpoints("primary", &[(&a, 1), (&b, 1)]),
        shadow.addr
    ));
    let (_node, client) = node_and_client(&text).await;

    // A GET is idempotent: the 503 is retried on the other endpoint.
    let resp = client.get("m.test", "/page").await;
    assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(a.hits() + b.hits() >= 2, "the GET was not retried");

    let before = a.hits() + b.hits();
    let resp = post(&client, "/form", "a=1&b=2").await;
    assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        a.hits() + b.hits(),
        before + 1,
        "the POST was sent more than once"
    );
}
