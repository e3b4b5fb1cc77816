//! A route's rewrites through a running node: the path prefix the upstream sees, and header
//! operations on the request and the response; and a routing with invalid ones rejected whole.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::node_and_client;
use edgeplane_tests::{endpoints, header_lines, node_config, text, Backend};
use http::StatusCode;
use http_body_util::BodyExt;

/// A backend answering with the path and query it got, then its request headers, and a header of
/// its own the route removes.
async fn echo() -> Backend {
    Backend::with("echo", |req| async move {
        let target = req
            .uri()
            .path_and_query()
            .map_or("", |p| p.as_str())
            .to_string();
        let mut reply = text(
            StatusCode::OK,
            format!("{target}\n{}", header_lines(req.headers())),
        );
        reply
            .headers_mut()
            .insert("x-backend-secret", "s3cret".parse().unwrap());
        reply
            .headers_mut()
            .insert("server", "backend/1.0".parse().unwrap());
        reply
    })
    .await
}

#[tokio::test]
async fn a_route_rewrites_the_path_and_headers_both_ways() {
    let backend = echo().await;
    let text = node_config(&format!(
        r#"
[[routes]]
hosts = ["api.test"]
path_prefix = "/api"
cluster = "c"
[routes.rewrite]
path_prefix = "/"
[routes.request_headers]
remove = ["x-internal"]
set = {{ x-env = "prod" }}
add = {{ x-tag = "edge" }}
[routes.response_headers]
remove = ["x-backend-secret"]
set = {{ server = "edgeplane" }}
add = {{ x-served-by = "edge-1" }}
[[routes]]
hosts = ["v1.test"]
path_prefix = "/v1/"
cluster = "c"
[routes.rewrite]
path_prefix = "/internal/v2/"
[[routes]]
hosts = ["re.test"]
cluster = "c"
[routes.rewrite]
regex = "^/u/(?P<id>[0-9]+)$"
replacement = "/users/${{id}}/profile"
[[routes]]
hosts = ["plain.test"]
cluster = "c"
[clusters.c]
{}
"#,
        endpoints("c", &[(&backend, 1)])
    ));
    let (_node, client) = node_and_client(&text).await;

    let req = client
        .request("api.test", "/api/users?page=2")
        .header("x-internal", "secret")
        .header("x-env", "dev")
        .header("x-tag", "client")
        .body(http_body_util::Empty::new().boxed())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.status, StatusCode::OK);
    let mut lines = resp.body.lines();
    assert_eq!(
        lines.next(),
        Some("/users?page=2"),
        "prefix replaced, query kept"
    );
    let seen: Vec<&str> = lines.collect();
    assert!(
        !seen.iter().any(|l| l.starts_with("x-internal")),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"x-env: prod") && !seen.contains(&"x-env: dev"),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"x-tag: client") && seen.contains(&"x-tag: edge"),
        "{seen:?}"
    );
    assert!(resp.headers.get("x-backend-secret").is_none());
    assert_eq!(resp.header("server"), "edgeplane");
    assert_eq!(resp.header("x-served-by"), "edge-1");

    // The route's own prefix replaced by another, and the prefix alone becomes the replacement.
    let resp = client.get("v1.test", "/v1/orders/7").await;
    assert_eq!(resp.body.lines().next(), Some("/internal/v2/orders/7"));
    let resp = client.get("api.test", "/api").await;
    assert_eq!(resp.body.lines().next(), Some("/"));

    // A regular expression's match replaced, the query kept; no match, no change.
    let resp = client.get("re.test", "/u/42?tab=posts").await;
    assert_eq!(
        resp.body.lines().next(),
        Some("/users/42/profile?tab=posts")
    );
    let resp = client.get("re.test", "/u/me").await;
    assert_eq!(resp.body.lines().next(), Some("/u/me"));

    // A route without operations changes nothing.
    let resp = client.get("plain.test", "/api/users").await;
    assert_eq!(resp.body.lines().next(), Some("/api/users"));
    assert_eq!(resp.header("x-backend-secret"), "s3cret");
    assert_eq!(resp.header("server"), "backend/1.0");
}

#[test]
fn invalid_rewrites_reject_the_routing_whole_with_paths() {
    let text = node_config(
        r#"
[[routes]]
cluster = "c"
[routes.rewrite]
path_prefix = "no-slash"
[routes.request_headers]
set = { "transfer-encoding" = "chunked", "x-ok" = "a\u0000b" }
[clusters.c]
"#,
    );
    let err = edgeplane_config::from_toml(&text).unwrap_err().lines();
    for want in [
        "routes[0].rewrite.path_prefix",
        "routes[0].request_headers.set.transfer-encoding",
        "routes[0].request_headers.set.x-ok",
    ] {
        assert!(err.iter().any(|l| l.starts_with(want)), "{want}: {err:#?}");
    }
}

#[tokio::test]
async fn routes_answer_with_redirects_and_fixed_responses() {
    let backend = echo().await;
    let text = node_config(&format!(
        r#"
[[routes]]
hosts = ["old.test"]
[routes.redirect]
scheme = "https"
host = "new.test:8443"
[[routes]]
hosts = ["moved.test"]
path_prefix = "/v1"
[routes.redirect]
path_prefix = "/v2"
status = 308
[[routes]]
hosts = ["home.test"]
[routes.redirect]
path = "/welcome"
strip_query = true
status = 302
[[routes]]
hosts = ["down.test"]
[routes.direct]
status = 503
body = "back at noon"
[routes.response_headers]
set = {{ retry-after = "3600" }}
[[routes]]
hosts = ["up.test"]
cluster = "c"
[clusters.c]
{}
"#,
        endpoints("c", &[(&backend, 1)])
    ));
    let (_node, client) = node_and_client(&text).await;

    let resp = client.get("old.test", "/a/b?x=1").await;
    assert_eq!(resp.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(resp.header("location"), "https://new.test:8443/a/b?x=1");
    let resp = client.get("moved.test", "/v1/items?page=2").await;
    assert_eq!(resp.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(resp.header("location"), "http://moved.test/v2/items?page=2");
    let resp = client.get("home.test", "/anything?utm=x").await;
    assert_eq!(resp.status, StatusCode::FOUND);
    assert_eq!(resp.header("location"), "http://home.test/welcome");

    let resp = client.get("down.test", "/").await;
    assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.body, "back at noon");
    assert_eq!(resp.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(resp.header("retry-after"), "3600");
    assert!(
        resp.headers.get("x-edgeplane-error").is_none(),
        "an answer, not an error"
    );

    assert_eq!(backend.hits(), 0, "no route above asks an upstream");
    assert_eq!(client.get("up.test", "/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_upstreams_own_redirects_are_rewritten_for_the_client() {
    // An application that redirects to the Host it was sent, as many do behind a proxy.
    let app = Backend::with("app", |req| async move {
        let host = req.headers()["host"].to_str().unwrap().to_string();
        let mut reply = text(StatusCode::FOUND, "");
        let target = format!("http://{host}/login?next=%2F");
        reply
            .headers_mut()
            .insert("location", target.parse().unwrap());
        reply
    })
    .await;
    let text = node_config(&format!(
        r#"
[[routes]]
hosts = ["app.test"]
path_prefix = "/app/"
cluster = "c"
[routes.rewrite]
path_prefix = "/"
location = true
[[routes]]
hosts = ["raw.test"]
path_prefix = "/app/"
cluster = "c"
[routes.rewrite]
path_prefix = "/"
[clusters.c]
host_rewrite = "backend.internal"
{}
"#,
        endpoints("c", &[(&app, 1)])
    ));
    let (_node, client) = node_and_client(&text).await;
    let resp = client.get("app.test", "/app/home").await;
    assert_eq!(resp.status, StatusCode::FOUND);
    assert_eq!(
        resp.header("location"),
        "http://app.test/app/login?next=%2F"
    );
    // Without `location`, the upstream's own name leaks through, as before.
    let resp = client.get("raw.test", "/app/home").await;
    assert_eq!(
        resp.header("location"),
        "http://backend.internal/login?next=%2F"
    );
}

#[tokio::test]
async fn trace_contexts_pass_or_are_generated() {
    let backend = Backend::named("b").await;
    let text = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&backend, 1)])
    )) + "[node.tracing]\ngenerate = true\nsample_percent = 100\n";
    let (_node, client) = node_and_client(&text).await;
    let seen = |resp: &edgeplane_tests::Resp, name: &str| -> Vec<String> {
        resp.body
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
            .collect()
    };
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let req = client
        .request("any.test", "/")
        .header("traceparent", valid)
        .header("tracestate", "vendor=1")
        .body(http_body_util::Empty::new().boxed())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(
        seen(&resp, "traceparent"),
        [valid],
        "a valid context passes unchanged"
    );
    assert_eq!(seen(&resp, "tracestate"), ["vendor=1"]);

    let made = seen(&client.get("any.test", "/").await, "traceparent");
    assert_eq!(made.len(), 1, "{made:?}");
    let parts: Vec<&str> = made[0].split('-').collect();
    assert_eq!(
        (parts[0], parts[1].len(), parts[2].len(), parts[3]),
        ("00", 32, 16, "01")
    );

    let req = client
        .request("any.test", "/")
        .header("traceparent", "00-zz-bad-01")
        .header("tracestate", "vendor=1")
        .body(http_body_util::Empty::new().boxed())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let replaced = seen(&resp, "traceparent");
    assert!(
        replaced.len() == 1 && replaced[0] != "00-zz-bad-01",
        "{replaced:?}"
    );
    assert!(
        seen(&resp, "tracestate").is_empty(),
        "dropped with the invalid parent"
    );
}
