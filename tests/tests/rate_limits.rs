//! Rate limits through real nodes: local limits by client address, header and through a trusted
//! proxy, shadow mode, the 429's fields, state kept across a reload, the admin API; and a fleet limit
//! shared by two nodes over a real nats-server, which keeps limiting when the server dies, and
//! drops malformed usage reports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{publisher, start_node};
use edgeplane_proxy::fleet::join;
use edgeplane_proxy::reload::{Outcome, Reloader};
use edgeplane_tests::{eventually, node_config, Backend, Client, NatsServer};
use http::StatusCode;
use std::time::Duration;

fn metric(node: &edgeplane_proxy::NodeHandle, series: &str) -> u64 {
    node.telemetry()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

async fn admin_json(node: &edgeplane_proxy::NodeHandle, path: &str) -> serde_json::Value {
    let admin = node.admin_addr().unwrap();
    let resp = Client::new(admin)
        .send(
            Client::new(admin)
                .request("admin", path)
                .header("authorization", "Bearer t0ken")
                .body(Default::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status, StatusCode::OK, "{path}: {}", resp.body);
    serde_json::from_str(&resp.body).unwrap()
}

fn limited_routes(backend: &Backend, scope: &str) -> String {
    format!(
        "[[routes]]\nname = \"ip\"\nhosts = [\"ip.test\"]\ncluster = \"b\"\n\
         [[routes.rate_limits]]\nname = \"per-ip\"\nrate = 3\nper = \"1m\"\nscope = \"{scope}\"\n\
         [[routes]]\nname = \"key\"\nhosts = [\"key.test\"]\ncluster = \"b\"\n\
         [[routes.rate_limits]]\nname = \"per-key\"\nrate = 2\nper = \"1m\"\nkey = [\"header:x-api-key\"]\nresponse_headers = true\n\
         [[routes]]\nname = \"shadow\"\nhosts = [\"shadow.test\"]\ncluster = \"b\"\n\
         [[routes.rate_limits]]\nrate = 1\nper = \"1m\"\nmode = \"shadow\"\n\
         [clusters.b]\n[[clusters.b.endpoints]]\naddress = \"{}\"\n",
        backend.addr
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_limits_refuse_with_their_fields_and_survive_a_reload() {
    let backend = Backend::named("b").await;
    let dir = tempfile::tempdir().unwrap();
    let text = node_config(&limited_routes(&backend, "local")).replace(
        "[node]\n",
        "[node]\nadmin = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.0/8\"]\n",
    );
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, &text).unwrap();
    std::env::set_var("EDGEPLANE_ADMIN_TOKEN", "t0ken");
    let (node, addr) = start_node(&text).await;
    let client = Client::new(addr);

    // By client address: three, then 429 with the draft's fields.
    for _ in 0..3 {
        assert_eq!(client.get("ip.test", "/").await.status, StatusCode::OK);
    }
    let refused = client.get("ip.test", "/").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("x-edgeplane-error"), "rate_limited");
    assert_eq!(refused.header("retry-after"), "20");
    assert_eq!(refused.header("ratelimit-policy"), "\"per-ip\";q=3;w=60");
    assert!(
        refused.header("ratelimit").starts_with("\"per-ip\";r=0;t="),
        "{}",
        refused.header("ratelimit")
    );
    // The peer (127.0.0.1) is a trusted proxy: the client is the address it forwards for.
    let via_proxy = |xff: &'static str| {
        client
            .request("ip.test", "/")
            .header("x-forwarded-for", xff)
            .body(Default::default())
            .unwrap()
    };
    for _ in 0..3 {
        let r = client.send(via_proxy("203.0.113.7")).await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = client.send(via_proxy("203.0.113.7")).await.unwrap();
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // A client writing its own entry first does not escape: the proxy's entry is the rightmost.
    let r = client
        .send(via_proxy("198.51.100.1, 203.0.113.7"))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);

    // By header: each key its own budget; no header, no limit; admitted responses carry the fields.
    let with_key = |k: &'static str| {
        client
            .request("key.test", "/")
            .header("x-api-key", k)
            .body(Default::default())
            .unwrap()
    };
    let first = client.send(with_key("alice")).await.unwrap();
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("ratelimit-policy"), "\"per-key\";q=2;w=60");
    assert_eq!(first.header("ratelimit"), "\"per-key\";r=1;t=30");
    assert_eq!(
        client.send(with_key("alice")).await.unwrap().status,
        StatusCode::OK
    );
    let r = client.send(with_key("alice")).await.unwrap();
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        client.send(with_key("bob")).await.unwrap().status,
        StatusCode::OK
    );
    for _ in 0..5 {
        assert_eq!(client.get("key.test", "/").await.status, StatusCode::OK);
    }

    // Shadow: counted, never refused.
    for _ in 0..4 {
        assert_eq!(client.get("shadow.test", "/").await.status, StatusCode::OK);
    }
    let shadowed = "edgeplane_rate_limited_total{route=\"shadow\",cluster=\"\",limit=\"client_ip\",mode=\"shadow\"}";
    assert_eq!(metric(&node, shadowed), 3);
    let refused_ip =
        "edgeplane_rate_limited_total{route=\"ip\",cluster=\"\",limit=\"per-ip\",mode=\"enforce\"}";
    assert_eq!(metric(&node, refused_ip), 3);

    // The admin API tells one key's state.
    let state = admin_json(&node, "/api/v1/limits/route/key/per-key?key=alice").await;
    assert_eq!(state["tracked"], true);
    assert_eq!(state["available"], 0);
    let state = admin_json(&node, "/api/v1/limits/route/key/per-key?key=carol").await;
    assert_eq!(
        (state["tracked"].clone(), state["available"].clone()),
        (false.into(), 2.into())
    );
    let all = admin_json(&node, "/api/v1/limits").await;
    assert_eq!(all["limits"].as_array().unwrap().len(), 3);

    // A reload that changes the rate keeps everyone's buckets: alice stays limited.
    let config = edgeplane_config::from_file(&path).unwrap();
    let mut reloader = Reloader::new(path.clone(), node.tables().clone(), config.node.clone());
    std::fs::write(&path, text.replace("rate = 2\n", "rate = 4\nburst = 2\n")).unwrap();
    assert!(matches!(reloader.reload(), Outcome::Applied(_)));
    let r = client.send(with_key("alice")).await.unwrap();
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "buckets survive the reload"
    );
    // An invalid limit is rejected whole with its path, and nothing changes.
    std::fs::write(&path, text.replace("rate = 2\n", "rate = 0\n")).unwrap();
    match reloader.reload() {
        Outcome::Rejected(e) => assert!(
            e.iter()
                .any(|l| l.starts_with("routes[1].rate_limits[0].rate")),
            "{e:?}"
        ),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

async fn fleet_node(
    id: &str,
    nats: &NatsServer,
    dir: &std::path::Path,
    backend: &Backend,
) -> (
    edgeplane_proxy::NodeHandle,
    edgeplane_proxy::fleet::Controller,
    Client,
) {
    let text = format!(
        "[node]\nid = \"{id}\"\nadmin = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n[node.nats]\nurls = [\"{}\"]\n\
         [[node.listeners]]\naddress = \"127.0.0.1:0\"\n\
         [[routes]]\nname = \"api\"\ncluster = \"b\"\n\
         [[routes.rate_limits]]\nname = \"all\"\nrate = 10\nper = \"1m\"\nkey = [\"route\"]\nscope = \"fleet\"\n\
         [clusters.b]\n[[clusters.b.endpoints]]\naddress = \"{}\"\n",
        dir.join(id).display(),
        nats.url(),
        backend.addr
    );
    let (node, addr) = start_node(&text).await;
    let controller = join(&node).await.unwrap().unwrap();
    (node, controller, Client::new(addr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_limit_is_shared_over_nats_and_holds_when_nats_dies() {
    let mut nats = NatsServer::start(&[]);
    let backend = Backend::named("b").await;
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("EDGEPLANE_ADMIN_TOKEN", "t0ken");
    let (a, _ca, client_a) = fleet_node("rl-a", &nats, dir.path(), &backend).await;
    let (b, _cb, client_b) = fleet_node("rl-b", &nats, dir.path(), &backend).await;
    let nodes = "edgeplane_rate_limit_fleet_nodes{route=\"api\",cluster=\"\",limit=\"all\"}";
    eventually(
        Duration::from_secs(10),
        "both nodes see each other",
        || async { metric(&a, nodes) == 2 && metric(&b, nodes) == 2 },
    )
    .await;

    // 10 per minute for the fleet: two nodes together admit about 10, not 10 each.
    let mut admitted = 0;
    for _ in 0..15 {
        for c in [&client_a, &client_b] {
            if c.get("api.test", "/").await.status == StatusCode::OK {
                admitted += 1;
            }
        }
    }
    assert!((8..=12).contains(&admitted), "admitted {admitted} of 30");

    // A malformed report is counted and dropped; a hostile one claiming no demand cannot raise a
    // share above the limit.
    let p = publisher(&nats).await;
    p.publish(
        "edge.v1.rl.usage.evil",
        "{\"schema\":1,\"node\":\"evil\"".into(),
    )
    .await
    .unwrap();
    p.flush().await.unwrap();
    let malformed = "edgeplane_rate_limit_reports_total{result=\"malformed\"}";
    eventually(
        Duration::from_secs(5),
        "malformed report counted",
        || async { metric(&a, malformed) >= 1 && metric(&b, malformed) >= 1 },
    )
    .await;

    // NATS dies: both nodes keep limiting.
    nats.stop();
    let mut admitted_after = 0;
    for _ in 0..10 {
        for c in [&client_a, &client_b] {
            if c.get("api.test", "/").await.status == StatusCode::OK {
                admitted_after += 1;
            }
        }
    }
    assert!(
        admitted_after <= 2,
        "admitted {admitted_after} of 20 with NATS down"
    );
}
