//! The admin API as an operator uses it: bearer-token auth, status, clusters with live endpoint state,
//! route explanation, and per-node drain / disable / enable of an endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::start_node;
use edgeplane_tests::{endpoints, Backend, Client, Resp};
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use serde_json::Value;
use std::collections::BTreeSet;

const TOKEN: &str = "s3cret-token";

struct Admin {
    client: Client,
    token: Option<&'static str>,
}

impl Admin {
    async fn call(&self, method: &str, path: &str) -> Resp {
        let mut req = self.client.request("admin", path).method(method);
        if let Some(t) = self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        self.client
            .send(req.body(Empty::new().boxed()).unwrap())
            .await
            .unwrap()
    }

    async fn json(&self, path: &str) -> Value {
        let r = self.call("GET", path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        assert_eq!(r.header("content-type"), "application/json");
        serde_json::from_str(&r.body).unwrap()
    }
}

async fn served_by(client: &Client, n: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        seen.insert(
            client
                .get("m.test", "/")
                .await
                .header("x-backend")
                .to_string(),
        );
    }
    seen
}

fn config(a: &Backend, b: &Backend, token_file: Option<&std::path::Path>) -> String {
    let token = token_file.map_or(String::new(), |p| {
        format!("admin_token_file = \"{}\"\n", p.display())
    });
    format!(
        "[node]\nid = \"adm\"\nadmin = \"127.0.0.1:0\"\n{token}[[node.listeners]]\naddress = \"127.0.0.1:0\"\n\
         [[routes]]\nname = \"api\"\nhosts = [\"m.test\"]\npath_prefix = \"/\"\ncluster = \"c\"\n\
         [[routes]]\nname = \"admin-only\"\nhosts = [\"m.test\"]\npath_prefix = \"/x\"\nmethods = [\"POST\"]\ncluster = \"c\"\n\
         [clusters.c]\n{}",
        endpoints("c", &[(a, 1), (b, 1)])
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_the_token_and_reports_live_state() {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let (node, addr) = start_node(&config(&a, &b, Some(&token_file))).await;
    let admin_addr = node.admin_addr().unwrap();
    let anonymous = Admin {
        client: Client::new(admin_addr),
        token: None,
    };
    let wrong = Admin {
        client: Client::new(admin_addr),
        token: Some("guess"),
    };
    let admin = Admin {
        client: Client::new(admin_addr),
        token: Some(TOKEN),
    };

    assert_eq!(
        anonymous.call("GET", "/healthz").await.status,
        StatusCode::OK
    );
    assert_eq!(
        anonymous.call("GET", "/readyz").await.status,
        StatusCode::OK
    );
    for path in ["/api/v1/status", "/metrics"] {
        let r = anonymous.call("GET", path).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(r.header("www-authenticate").starts_with("Bearer"));
        assert_eq!(
            wrong.call("GET", path).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(admin.call("GET", "/metrics").await.status, StatusCode::OK);
    // The scheme is case-insensitive; refusals are JSON like the API's other errors.
    let lower = admin
        .client
        .send(
            admin
                .client
                .request("admin", "/metrics")
                .header("authorization", format!("bearer {TOKEN}"))
                .body(Empty::new().boxed())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(lower.status, StatusCode::OK);
    let refused = wrong.call("GET", "/api/v1/status").await;
    assert_eq!(refused.header("content-type"), "application/json");
    let body: Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(body["error"], "invalid token");

    let client = Client::new(addr);
    assert_eq!(
        served_by(&client, 4).await,
        BTreeSet::from(["a".into(), "b".into()])
    );
    let status = admin.json("/api/v1/status").await;
    assert_eq!(status["node"], "adm");
    assert_eq!(status["phase"], "running");
    assert_eq!(
        (status["clusters"].as_u64(), status["endpoints"].as_u64()),
        (Some(1), Some(2))
    );
    assert!(status["requests"].as_u64().unwrap() >= 4);

    let clusters = admin.json("/api/v1/clusters").await;
    assert_eq!(clusters[0]["name"], "c");
    assert_eq!(clusters[0]["usable"], 2);
    let c = admin.json("/api/v1/clusters/c").await;
    let eps = c["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 2);
    for e in eps {
        assert_eq!(e["health"], 100);
        assert_eq!(e["admin"], "enabled");
        assert!(e["requests"].as_u64().unwrap() >= 2, "{e}");
        assert!(e["ewma_ms"].as_f64().is_some(), "{e}");
    }
    // The routing in place, as a document that validates and could be pushed back.
    let config = admin.json("/api/v1/config").await;
    assert_eq!(config["revision"], 0, "file config");
    assert_eq!(config["hash"], status["hash"]);
    let doc = config["document"].to_string();
    let routing = edgeplane_config::document_from_text(&doc).unwrap();
    assert_eq!(routing.routes.len(), 2);
    assert_eq!(routing.routes[1].methods, ["POST"]);
    assert_eq!(routing.clusters[0].endpoints.len(), 2);
    assert_eq!(config["document"]["routes"][0]["hosts"][0], "m.test");

    let r = admin.call("GET", "/api/v1/clusters/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("no cluster"));
    assert_eq!(
        admin.call("GET", "/api/v1/nothing").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin.call("DELETE", "/api/v1/status").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_tells_which_route_and_why() {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let (node, _) = start_node(&config(&a, &b, Some(&token_file))).await;
    let admin = Admin {
        client: Client::new(node.admin_addr().unwrap()),
        token: Some(TOKEN),
    };
    let ex = admin
        .json("/api/v1/explain?host=M.Test:8080&path=/x/1&method=GET")
        .await;
    assert_eq!(ex["route"], "api", "{ex:#}");
    assert_eq!(ex["outcome"], "proxied");
    assert_eq!(
        ex["cluster"]["usable_endpoints"].as_array().unwrap().len(),
        2
    );
    let considered = ex["considered"].as_array().unwrap();
    assert_eq!(
        considered[0]["route"], "admin-only",
        "the longer prefix is tried first"
    );
    assert_eq!(
        considered[0]["result"],
        "method is not one of the route's methods"
    );
    assert_eq!(considered[0]["group"], "exact host \"m.test\"");
    assert_eq!(considered[1]["result"], "matched");

    let ex = admin.json("/api/v1/explain?host=other.test&path=/").await;
    assert_eq!(ex["route"], Value::Null);
    assert_eq!(ex["outcome"], "no route matches: the client gets 404");
    let r = admin.call("GET", "/api/v1/explain?color=blue").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_disable_and_enable_an_endpoint_on_this_node() {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let (node, addr) = start_node(&config(&a, &b, Some(&token_file))).await;
    let admin = Admin {
        client: Client::new(node.admin_addr().unwrap()),
        token: Some(TOKEN),
    };
    let client = Client::new(addr);
    let action = |what: &str| format!("/api/v1/clusters/c/endpoints/{}/{what}", a.addr);

    let r = admin.call("POST", &action("drain")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let e: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (e["admin"].as_str(), e["usable"].as_bool()),
        (Some("draining"), Some(false))
    );
    assert_eq!(served_by(&client, 6).await, BTreeSet::from(["b".into()]));

    assert_eq!(
        admin.call("POST", &action("disable")).await.status,
        StatusCode::OK
    );
    assert_eq!(served_by(&client, 4).await, BTreeSet::from(["b".into()]));
    // The override survives a rebuild of the tables.
    node.tables()
        .apply(
            &edgeplane_config::from_toml(&config(&a, &b, None))
                .unwrap()
                .routing,
        )
        .unwrap();
    assert_eq!(served_by(&client, 4).await, BTreeSet::from(["b".into()]));

    assert_eq!(
        admin.call("POST", &action("enable")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        served_by(&client, 4).await,
        BTreeSet::from(["a".into(), "b".into()])
    );

    assert_eq!(
        admin.call("POST", &action("explode")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin.call("GET", &action("drain")).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let r = admin
        .call("POST", "/api/v1/clusters/c/endpoints/127.0.0.1:1/drain")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = admin
        .call("POST", "/api/v1/clusters/c/endpoints/not-an-address/drain")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_api_is_closed_and_metrics_open() {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let (node, _) = start_node(&config(&a, &b, None)).await;
    let anonymous = Admin {
        client: Client::new(node.admin_addr().unwrap()),
        token: None,
    };
    let r = anonymous.call("GET", "/api/v1/status").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("admin_token_file"), "{}", r.body);
    assert_eq!(
        anonymous.call("GET", "/metrics").await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_admin_connection_is_closed_after_the_header_timeout() {
    use tokio::io::AsyncReadExt;
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let (node, _) = start_node(&config(&a, &b, None)).await;
    let admin_addr = node.admin_addr().unwrap();
    let started = std::time::Instant::now();
    let mut idle = tokio::net::TcpStream::connect(admin_addr).await.unwrap();
    let mut buf = [0u8; 16];
    let limit = edgeplane_proxy::admin::HEADER_READ_TIMEOUT + std::time::Duration::from_secs(5);
    let n = tokio::time::timeout(limit, idle.read(&mut buf))
        .await
        .expect("the node closes an idle admin connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    assert!(started.elapsed() >= edgeplane_proxy::admin::HEADER_READ_TIMEOUT / 2);
    // The listener still serves.
    let r = Client::new(admin_addr).get("admin", "/healthz").await;
    assert_eq!(r.status, StatusCode::OK);
}
