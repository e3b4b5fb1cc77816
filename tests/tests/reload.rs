//! Hot reload of the config file while traffic flows: valid edits apply within a second with zero failed
//! requests; invalid edits change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::start_node;
use edgeplane_proxy::reload::{Outcome, Reloader};
use edgeplane_tests::{endpoints, eventually, node_config, Backend, Client};
use http::StatusCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config_for(backends: &[&Backend]) -> String {
    let pairs: Vec<_> = backends.iter().map(|b| (*b, 1)).collect();
    node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &pairs)
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_apply_under_load_with_zero_failures() {
    let (a, b, c) = (
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, config_for(&[&a])).unwrap();
    let config = edgeplane_config::from_file(&path).unwrap();
    let (node, addr) = start_node(&config_for(&[&a])).await;
    let reloader =
        tokio::spawn(Reloader::new(path.clone(), node.tables().clone(), config.node.clone()).run());

    // Load: 8 clients in a loop until told to stop; every answer must be a 200.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let last_backend = Arc::new(std::sync::Mutex::new(String::new()));
    let mut load = Vec::new();
    for _ in 0..8 {
        let client = Client::new(addr);
        let (stop, ok, failed, last) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            last_backend.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let req = client
                    .request("reload.test", "/")
                    .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
                    .unwrap();
                match client.send(req).await {
                    Ok(r) if r.status == StatusCode::OK => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        *last.lock().unwrap() = r.header("x-backend").to_string();
                    }
                    other => {
                        eprintln!("failed request: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    // Each valid edit is serving within a second.
    for (backends, name) in [
        (vec![&b], "b"),
        (vec![&b, &c], "c"),
        (vec![&c], "c"),
        (vec![&a], "a"),
    ] {
        let from_hits = if name == "c" {
            c.hits()
        } else if name == "b" {
            b.hits()
        } else {
            a.hits()
        };
        let edited = Instant::now();
        std::fs::write(&path, config_for(&backends)).unwrap();
        let target = match name {
            "a" => &a,
            "b" => &b,
            _ => &c,
        };
        eventually(
            Duration::from_secs(1),
            "edit serving within a second",
            || async { target.hits() > from_hits + 5 },
        )
        .await;
        eprintln!("edit to {name} serving after {:?}", edited.elapsed());
    }
    // An invalid edit is rejected whole: traffic keeps flowing to `a`.
    let generation = node.tables().load().generation;
    std::fs::write(&path, "[[routes]]\ncluster = \"missing\"\n").unwrap();
    let a_hits = a.hits();
    eventually(
        Duration::from_secs(2),
        "traffic continues after an invalid edit",
        || async { a.hits() > a_hits + 50 },
    )
    .await;
    assert_eq!(
        node.tables().load().generation,
        generation,
        "invalid edit changed nothing"
    );

    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    reloader.abort();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "zero failed requests during reloads"
    );
    assert!(ok.load(Ordering::Relaxed) > 100, "load actually flowed");
}

#[tokio::test]
async fn reloader_reports_each_outcome() {
    let a = Backend::named("a").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, config_for(&[&a])).unwrap();
    let config = edgeplane_config::from_file(&path).unwrap();
    let (node, _addr) = start_node(&config_for(&[&a])).await;
    let mut r = Reloader::new(path.clone(), node.tables().clone(), config.node.clone());
    assert_eq!(r.poll(), None, "no change, no reload");
    assert_eq!(r.reload(), Outcome::Unchanged);
    std::fs::write(&path, "[node\n").unwrap();
    match r.reload() {
        Outcome::Rejected(errors) => assert!(errors[0].contains("invalid TOML"), "{errors:?}"),
        other => panic!("{other:?}"),
    }
    std::fs::write(
        &path,
        config_for(&[&a]).replace("[clusters.c]", "[clusters.c]\nbalancing = \"fastest\""),
    )
    .unwrap();
    match r.reload() {
        Outcome::Rejected(errors) => assert!(
            errors[0].starts_with("clusters.c.balancing: unknown policy"),
            "{errors:?}"
        ),
        other => panic!("{other:?}"),
    }
    std::fs::write(
        &path,
        config_for(&[&a]).replace(
            "[clusters.c]",
            "[clusters.c]\nbalancing = \"least_connections\"",
        ),
    )
    .unwrap();
    assert!(matches!(r.reload(), Outcome::Applied(_)));
    assert_eq!(node.tables().load().generation, 2);
}

#[tokio::test]
async fn a_file_caught_mid_write_is_applied_only_once_it_settles() {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    let first = config_for(&[&a]);
    std::fs::write(&path, &first).unwrap();
    let config = edgeplane_config::from_file(&path).unwrap();
    let (node, _addr) = start_node(&first).await;
    let mut r = Reloader::new(path.clone(), node.tables().clone(), config.node.clone());
    // The new file holds a second endpoint; its first part alone is valid (one endpoint less).
    let full = config_for(&[&a, &b]);
    let cut = full.rfind("[[clusters.c.endpoints]]").unwrap();
    std::fs::write(&path, &full[..cut]).unwrap();
    assert_eq!(r.poll(), None, "just changed: wait for it to settle");
    std::fs::write(&path, &full).unwrap();
    assert_eq!(r.poll(), None, "changed again: still not settled");
    assert!(matches!(r.poll(), Some(Outcome::Applied(_))), "settled");
    let tables = node.tables().load();
    assert_eq!(
        tables.clusters[0].endpoints.len(),
        2,
        "the whole file, never its prefix"
    );
    assert_eq!(tables.generation, 2, "one apply");
    assert_eq!(r.poll(), None);
}
