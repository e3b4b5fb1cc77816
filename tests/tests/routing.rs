//! Host and path routing, balancing distributions, and HTTP/2 downstream, through a real node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::node_and_client;
use edgeplane_tests::{endpoints, node_config, Backend, Client};
use http::StatusCode;
use http_body_util::BodyExt;
use std::collections::HashMap;

#[tokio::test]
async fn routes_by_host_and_path() {
    let api = Backend::named("api").await;
    let api_v2 = Backend::named("api-v2").await;
    let wild = Backend::named("wild").await;
    let web = Backend::named("web").await;
    let text = node_config(&format!(
        r#"
[[routes]]
name = "api-v2"
hosts = ["api.example.com"]
path_prefix = "/v2"
cluster = "api-v2"
[[routes]]
name = "api"
hosts = ["api.example.com"]
path_prefix = "/"
cluster = "api"
[[routes]]
name = "wild"
hosts = ["*.example.com"]
cluster = "wild"
[[routes]]
name = "web"
cluster = "web"
[[routes]]
name = "posts"
hosts = ["api.example.com"]
path_prefix = "/v2/posts"
methods = ["POST"]
cluster = "web"
[clusters.api]
{}
[clusters.api-v2]
{}
[clusters.wild]
{}
[clusters.web]
{}
"#,
        endpoints("api", &[(&api, 1)]),
        endpoints("api-v2", &[(&api_v2, 1)]),
        endpoints("wild", &[(&wild, 1)]),
        endpoints("web", &[(&web, 1)]),
    ));
    let (_node, client) = node_and_client(&text).await;
    let cases = [
        ("api.example.com", "/v2/users", "api-v2"),
        ("API.Example.com:8080", "/v2/users", "api-v2"),
        ("api.example.com", "/v1/users", "api"),
        ("api.example.com", "/v2/posts", "api-v2"),
        ("shop.example.com", "/", "wild"),
        ("example.com", "/", "web"),
        ("other.test", "/anything?q=1", "web"),
    ];
    for (host, path, want) in cases {
        let resp = client.get(host, path).await;
        assert_eq!(resp.status, StatusCode::OK, "{host}{path}");
        assert_eq!(resp.header("x-backend"), want, "{host}{path}");
    }
    // The method condition: POST /v2/posts goes to the method-specific route.
    let req = client
        .request("api.example.com", "/v2/posts")
        .method("POST")
        .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
        .unwrap();
    assert_eq!(client.send(req).await.unwrap().header("x-backend"), "web");
}

async fn distribution(
    policy: &str,
    weights: &[u32],
    requests: usize,
    concurrency: usize,
) -> Vec<usize> {
    let backends: Vec<Backend> = futures(weights.len()).await;
    let pairs: Vec<(&Backend, u32)> = backends.iter().zip(weights.iter().copied()).collect();
    let text = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\nbalancing = \"{policy}\"\n{}",
        endpoints("c", &pairs)
    ));
    let (_node, client) = node_and_client(&text).await;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = HashMap::<String, usize>::new();
            for _ in 0..requests / concurrency {
                let r = client.get("dist.test", "/").await;
                assert_eq!(r.status, StatusCode::OK);
                *seen.entry(r.header("x-backend").to_string()).or_default() += 1;
            }
            seen
        }));
    }
    let mut total = HashMap::<String, usize>::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    backends
        .iter()
        .map(|b| total.get(&b.name).copied().unwrap_or(0))
        .collect()
}

async fn futures(n: usize) -> Vec<Backend> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(Backend::named(&format!("b{i}")).await);
    }
    v
}

/// Asserts each share is within `tolerance` (fraction of all requests) of the weight's share.
fn assert_shares(counts: &[usize], weights: &[u32], tolerance: f64) {
    let total: usize = counts.iter().sum();
    let wsum: u32 = weights.iter().sum();
    for (c, w) in counts.iter().zip(weights) {
        let got = *c as f64 / total as f64;
        let want = f64::from(*w) / f64::from(wsum);
        assert!(
            (got - want).abs() <= tolerance,
            "share {got:.3} vs weight share {want:.3}: counts {counts:?}"
        );
    }
}

#[tokio::test]
async fn round_robin_spreads_evenly() {
    // Sequential requests: exactly even.
    let counts = distribution("round_robin", &[1, 5, 1], 300, 1).await;
    assert_eq!(counts, [100, 100, 100]);
}

#[tokio::test]
async fn weighted_round_robin_follows_weights() {
    // Sequential requests walk whole cycles: exact. Concurrent ones: within 2 % of the weight share.
    let counts = distribution("weighted_round_robin", &[1, 3, 6], 500, 1).await;
    assert_eq!(counts, [50, 150, 300]);
    let counts = distribution("weighted_round_robin", &[1, 3, 6], 1000, 8).await;
    assert_shares(&counts, &[1, 3, 6], 0.02);
}

#[tokio::test]
async fn least_connections_prefers_idle_backends() {
    use edgeplane_tests::{eventually, Reply};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    // b0 holds its requests until released; b1 answers at once. With one request parked on b0,
    // every following request goes to b1.
    let release = Arc::new(tokio::sync::Notify::new());
    let parked = Arc::new(AtomicBool::new(false));
    let (r, p) = (release.clone(), parked.clone());
    let slow = Backend::with("slow", move |_req| {
        let (r, p) = (r.clone(), p.clone());
        async move {
            p.store(true, Ordering::SeqCst);
            r.notified().await;
            Reply::new(http_body_util::BodyExt::boxed(http_body_util::Full::new(
                bytes::Bytes::from("slow"),
            )))
        }
    })
    .await;
    let fast = Backend::named("fast").await;
    let text = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\nbalancing = \"least_connections\"\n{}",
        endpoints("c", &[(&slow, 1), (&fast, 1)])
    ));
    let (_node, client) = node_and_client(&text).await;
    // Park requests until one lands on the slow backend.
    let mut parked_req = None;
    for _ in 0..2 {
        let c = client.clone();
        let h = tokio::spawn(async move { c.get("lc.test", "/").await });
        eventually(Duration::from_secs(5), "request answered or parked", || {
            let (p, done) = (parked.clone(), h.is_finished());
            async move { p.load(Ordering::SeqCst) || done }
        })
        .await;
        if parked.load(Ordering::SeqCst) {
            parked_req = Some(h);
            break;
        }
    }
    let parked_req = parked_req.expect("a request reached the slow backend");
    for _ in 0..20 {
        assert_eq!(client.get("lc.test", "/").await.header("x-backend"), "fast");
    }
    release.notify_one();
    assert_eq!(parked_req.await.unwrap().header("x-backend"), "slow");
}

#[tokio::test]
async fn http2_clients_are_served() {
    let b = Backend::named("b").await;
    let text = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&b, 1)])
    ));
    let (node, _client) = node_and_client(&text).await;
    let h2 = Client::h2(node.listen_addrs()[0]);
    let resp = h2.get("h2.test", "/over-h2").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.header("x-backend"), "b");
    // The upstream got an HTTP/1.1 request with a Host from the :authority and a 2.0 Via.
    assert!(resp.body.contains("via: 2.0 test-node"), "{}", resp.body);
    assert!(resp.body.contains("host: "), "{}", resp.body);
}

/// A backend that answers after `delay` (its own latency, not test synchronisation).
async fn slow(name: &str, delay: std::time::Duration) -> Backend {
    Backend::with(name, move |_req| async move {
        tokio::time::sleep(delay).await;
        edgeplane_tests::text(StatusCode::OK, "slow")
    })
    .await
}

#[tokio::test]
async fn latency_aware_policies_move_traffic_away_from_a_slow_backend() {
    for policy in ["power_of_two", "least_response_time"] {
        let fast = Backend::named("fast").await;
        let slowpoke = slow("slow", std::time::Duration::from_millis(40)).await;
        let text = node_config(&format!(
            "[[routes]]\ncluster = \"c\"\n[clusters.c]\nbalancing = \"{policy}\"\n{}",
            endpoints("c", &[(&fast, 1), (&slowpoke, 1)])
        ));
        let (_node, client) = node_and_client(&text).await;
        // Sequential requests: each endpoint gets sampled early, then the slow one is avoided.
        let mut seen: HashMap<String, usize> = HashMap::new();
        for _ in 0..60 {
            let r = client.get("lat.test", "/").await;
            assert_eq!(r.status, StatusCode::OK);
            *seen.entry(r.header("x-backend").to_string()).or_default() += 1;
        }
        let slow_share = seen.get("slow").copied().unwrap_or(0);
        assert!(
            slow_share <= 3,
            "{policy}: the 40 ms backend got {slow_share} of 60: {seen:?}"
        );
    }
}

#[tokio::test]
async fn consistent_hashing_keeps_a_key_on_one_backend() {
    let backends = [
        Backend::named("h1").await,
        Backend::named("h2").await,
        Backend::named("h3").await,
    ];
    for (policy, hash_on, header) in [
        ("ring_hash", "header = \"x-user\"", "x-user"),
        ("maglev", "cookie = \"sid\"", "cookie"),
    ] {
        let text = node_config(&format!(
            "[[routes]]\ncluster = \"c\"\n[clusters.c]\nbalancing = \"{policy}\"\n[clusters.c.hash_on]\n{hash_on}\n{}",
            endpoints("c", &[(&backends[0], 1), (&backends[1], 1), (&backends[2], 1)])
        ));
        let (_node, client) = node_and_client(&text).await;
        let mut owners = std::collections::HashSet::new();
        for user in 0..12 {
            let value = if header == "cookie" {
                format!("a=b; sid=user-{user}")
            } else {
                format!("user-{user}")
            };
            let mut first = None;
            for _ in 0..4 {
                let req = client
                    .request("hash.test", "/")
                    .header(header, value.as_str())
                    .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
                    .unwrap();
                let got = client
                    .send(req)
                    .await
                    .unwrap()
                    .header("x-backend")
                    .to_string();
                assert_eq!(
                    *first.get_or_insert(got.clone()),
                    got,
                    "{policy}: {value} moved"
                );
            }
            owners.insert(first.unwrap());
        }
        assert!(owners.len() >= 2, "{policy}: 12 keys all on {owners:?}");
    }
}

#[tokio::test]
async fn canaries_by_header_pattern_query_parameter_and_cookie() {
    let (stable, canary) = (
        Backend::named("stable").await,
        Backend::named("canary").await,
    );
    let text = node_config(&format!(
        r#"
[[routes]]
name = "by-header"
hosts = ["app.test"]
cluster = "canary"
headers = [{{ name = "user-agent", regex = "^CanaryBot/[0-9]+" }}]
[[routes]]
name = "by-query"
hosts = ["app.test"]
cluster = "canary"
query = [{{ name = "version", value = "next build" }}]
[[routes]]
name = "by-cookie"
hosts = ["app.test"]
cluster = "canary"
cookies = [{{ name = "canary", regex = "^(1|yes)$" }}]
[[routes]]
name = "default"
hosts = ["app.test"]
cluster = "stable"
[clusters.stable]
{}
[clusters.canary]
{}
"#,
        endpoints("stable", &[(&stable, 1)]),
        endpoints("canary", &[(&canary, 1)])
    ));
    let (_node, client) = node_and_client(&text).await;
    let backend = |resp: edgeplane_tests::Resp| resp.header("x-backend").to_string();
    let with = |name: &'static str, value: &'static str, path: &'static str| {
        client
            .request("app.test", path)
            .header(name, value)
            .body(http_body_util::Empty::new().boxed())
            .unwrap()
    };

    assert_eq!(backend(client.get("app.test", "/").await), "stable");
    let ua = with("user-agent", "CanaryBot/2 (+https://example.com)", "/");
    assert_eq!(backend(client.send(ua).await.unwrap()), "canary");
    let ua = with("user-agent", "Mozilla/5.0 CanaryBot/2", "/");
    assert_eq!(
        backend(client.send(ua).await.unwrap()),
        "stable",
        "anchored"
    );
    assert_eq!(
        backend(client.get("app.test", "/a?x=1&version=next%20build").await),
        "canary"
    );
    assert_eq!(
        backend(client.get("app.test", "/a?version=next+build").await),
        "canary"
    );
    assert_eq!(
        backend(client.get("app.test", "/a?version=next").await),
        "stable"
    );
    let cookie = with("cookie", "session=abc; canary=yes", "/");
    assert_eq!(backend(client.send(cookie).await.unwrap()), "canary");
    let cookie = with("cookie", "canary=no", "/");
    assert_eq!(backend(client.send(cookie).await.unwrap()), "stable");
}
