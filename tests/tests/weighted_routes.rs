//! Weighted routes (canaries) through a real node: traffic shared by weight, a keyed client kept on
//! its cluster, a client the canary served kept there by its affinity cookie, metrics per route and
//! cluster, and invalid splits rejected whole while traffic goes on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::start_node;
use edgeplane_proxy::reload::{Outcome, Reloader};
use edgeplane_tests::{endpoints, node_config, Backend, Client};
use http_body_util::BodyExt;
use std::path::Path;

fn config(stable: &Backend, canary: &Backend, canary_weight: u32, token: &Path) -> String {
    node_config(&format!(
        r#"
[[routes]]
name = "split"
hosts = ["split.test"]
weighted_clusters = [{{ cluster = "stable", weight = {} }}, {{ cluster = "canary", weight = {canary_weight} }}]
[[routes]]
name = "keyed"
hosts = ["keyed.test"]
weighted_clusters = [{{ cluster = "stable", weight = 1 }}, {{ cluster = "canary", weight = 1 }}]
split_on = {{ header = "x-user" }}
[[routes]]
name = "sticky"
hosts = ["sticky.test"]
weighted_clusters = [{{ cluster = "stable", weight = 1 }}, {{ cluster = "canary", weight = 1 }}]
[clusters.stable]
{}
[clusters.canary]
[clusters.canary.affinity]
cookie = "ep"
{}
"#,
        100 - canary_weight,
        endpoints("stable", &[(stable, 1)]),
        endpoints("canary", &[(canary, 1)]),
    ))
    .replace(
        "[node]\n",
        &format!("[node]\nadmin = \"127.0.0.1:0\"\nadmin_token_file = {:?}\n", token),
    )
}

async fn served_by(client: &Client, host: &str, header: Option<(&str, &str)>) -> (String, String) {
    let mut req = client.request(host, "/");
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    let resp = client
        .send(req.body(http_body_util::Empty::new().boxed()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{host}");
    (
        resp.header("x-backend").to_string(),
        resp.header("set-cookie").to_string(),
    )
}

#[tokio::test]
async fn weighted_clusters_share_traffic_and_keep_clients() {
    let (stable, canary) = (
        Backend::named("stable").await,
        Backend::named("canary").await,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    let token = dir.path().join("token");
    std::fs::write(&token, "weighted-routes-test-token").unwrap();
    std::fs::write(&path, config(&stable, &canary, 10, &token)).unwrap();
    let cfg = edgeplane_config::from_file(&path).unwrap();
    let (node, addr) = start_node(&config(&stable, &canary, 10, &token)).await;
    let client = Client::new(addr);

    // 90/10 without a key: each request drawn by weight.
    let mut on_canary = 0;
    for _ in 0..400 {
        on_canary += usize::from(served_by(&client, "split.test", None).await.0 == "canary");
    }
    // 40 expected; the bound is about four standard deviations wide.
    assert!(
        (16..=64).contains(&on_canary),
        "{on_canary} of 400 on a 10 % canary"
    );

    // Keyed by a header: every user stays on one cluster, and users land on both.
    let mut clusters_seen = std::collections::HashSet::new();
    for user in 0..24 {
        let id = format!("user-{user}");
        let first = served_by(&client, "keyed.test", Some(("x-user", &id)))
            .await
            .0;
        for _ in 0..4 {
            let again = served_by(&client, "keyed.test", Some(("x-user", &id)))
                .await
                .0;
            assert_eq!(again, first, "{id} moved");
        }
        clusters_seen.insert(first);
    }
    assert_eq!(clusters_seen.len(), 2, "24 users all on {clusters_seen:?}");

    // A client the canary served comes back with its affinity cookie and stays on the canary.
    let mut cookie = None;
    for _ in 0..200 {
        let (backend, set) = served_by(&client, "sticky.test", None).await;
        if backend == "canary" {
            cookie = Some(set.split(';').next().unwrap().to_string());
            break;
        }
    }
    let cookie = cookie.expect("the canary served none of 200 requests at weight 1/2");
    assert!(cookie.starts_with("ep="), "{cookie}");
    for _ in 0..30 {
        let (backend, _) = served_by(&client, "sticky.test", Some(("cookie", &cookie))).await;
        assert_eq!(backend, "canary", "a canary client left the canary");
    }

    // Requests are counted per route and cluster.
    let metrics = node.telemetry().render();
    for cluster in ["stable", "canary"] {
        let series = format!(
            "edgeplane_requests_total{{route=\"split\",cluster=\"{cluster}\",class=\"2xx\"}}"
        );
        assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
    }

    // The admin API explains the split.
    let admin = Client::new(node.admin_addr().unwrap());
    let req = admin
        .request("admin", "/api/v1/explain?host=split.test&path=/")
        .header("authorization", "Bearer weighted-routes-test-token")
        .body(http_body_util::Empty::new().boxed())
        .unwrap();
    let ex = admin.send(req).await.unwrap();
    assert_eq!(ex.status, 200, "{}", ex.body);
    let ex: serde_json::Value = serde_json::from_str(&ex.body).unwrap();
    assert_eq!(ex["route"], "split", "{ex:#}");
    let shares = ex["weighted_clusters"].as_array().unwrap();
    assert_eq!(shares[0]["weight"], 90, "{ex:#}");
    assert_eq!(shares[1]["cluster"]["name"], "canary", "{ex:#}");

    // Invalid splits are rejected whole, with paths; the running routing is unchanged.
    let mut reloader = Reloader::new(path.clone(), node.tables().clone(), cfg.node.clone());
    let generation = node.tables().load().generation;
    let bad = config(&stable, &canary, 10, &token)
        .replace(
            "{ cluster = \"stable\", weight = 90 }",
            "{ cluster = \"stable\", weight = 0 }, { cluster = \"nowhere\", weight = 3 }",
        )
        .replace("weight = 10 }", "weight = 0 }")
        .replace(
            "hosts = [\"keyed.test\"]",
            "hosts = [\"keyed.test\"]\nheaders = [{ name = \"x-v\", regex = \"(unclosed\" }]",
        );
    std::fs::write(&path, &bad).unwrap();
    match reloader.reload() {
        Outcome::Rejected(errors) => {
            for want in [
                "routes[0].weighted_clusters[1].cluster: unknown cluster \"nowhere\"",
                "routes[1].headers[0].regex",
            ] {
                assert!(
                    errors.iter().any(|e| e.starts_with(want)),
                    "{want}: {errors:#?}"
                );
            }
        }
        other => panic!("{other:?}"),
    }
    let zero = config(&stable, &canary, 10, &token)
        .replace("weight = 90 }", "weight = 0 }")
        .replace("weight = 10 }", "weight = 0 }");
    std::fs::write(&path, &zero).unwrap();
    match reloader.reload() {
        Outcome::Rejected(errors) => assert!(
            errors
                .iter()
                .any(|e| e.starts_with("routes[0].weighted_clusters: the weights sum to 0")),
            "{errors:#?}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        node.tables().load().generation,
        generation,
        "a rejected split changed the routing"
    );
    let (backend, _) = served_by(&client, "split.test", None).await;
    assert!(
        !backend.is_empty(),
        "traffic goes on after the rejected edits"
    );

    // A valid change of weights applies: the canary at 0 gets nothing.
    std::fs::write(&path, config(&stable, &canary, 0, &token)).unwrap();
    assert!(matches!(reloader.reload(), Outcome::Applied(_)));
    for _ in 0..100 {
        assert_eq!(served_by(&client, "split.test", None).await.0, "stable");
    }
}
