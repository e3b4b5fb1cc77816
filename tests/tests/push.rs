//! Config pushes over a real nats-server: a fleet of in-process nodes follows the KV bucket, applies
//! or rejects each revision whole, acknowledges it, and keeps serving through NATS outages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{publisher, push_options as opts, start_node};
use edgeplane_bus::Subjects;
use edgeplane_controller::publish::{push, PushError, PushOptions};
use edgeplane_proxy::fleet::{join, Controller};
use edgeplane_proxy::NodeHandle;
use edgeplane_tests::{endpoints, eventually, python_with_nats, Backend, Client, NatsServer};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Node {
    handle: NodeHandle,
    controller: Controller,
    client: Client,
}

fn routing_to(b: &Backend) -> String {
    format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(b, 1)])
    )
}

async fn fleet_node(
    id: &str,
    nats: &NatsServer,
    state: &std::path::Path,
    bootstrap: &Backend,
) -> Node {
    let text = format!(
        "[node]\nid = \"{id}\"\nstate_dir = \"{}\"\n[node.nats]\nurls = [\"{}\"]\n[[node.listeners]]\naddress = \"127.0.0.1:0\"\n{}",
        state.join(id).display(),
        nats.url(),
        routing_to(bootstrap)
    );
    let (handle, addr) = start_node(&text).await;
    let controller = join(&handle).await.unwrap().expect("node has [node.nats]");
    Node {
        handle,
        controller,
        client: Client::new(addr),
    }
}

impl Node {
    fn revision(&self) -> u64 {
        self.controller.state.lock().unwrap().revision
    }

    fn handled(&self) -> u64 {
        self.controller.state.lock().unwrap().handled
    }

    async fn serves(&self, backend: &str) -> bool {
        self.client.get("push.test", "/").await.header("x-backend") == backend
    }
}

/// Waits until every node answers status requests (its controller is connected and subscribed).
async fn until_discovered(client: &async_nats::Client, n: usize) {
    eventually(
        Duration::from_secs(10),
        "nodes answer status requests",
        || async {
            edgeplane_controller::publish::discover(
                client,
                &Subjects::default(),
                Duration::from_millis(200),
            )
            .await
            .map(|nodes| nodes.len() >= n)
            .unwrap_or(false)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_reaches_every_node_and_each_acknowledges() {
    let nats = NatsServer::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let mut nodes = Vec::new();
    for id in ["n1", "n2", "n3"] {
        nodes.push(fleet_node(id, &nats, state.path(), &a).await);
    }
    let pub_client = publisher(&nats).await;
    until_discovered(&pub_client, 3).await;
    for n in &nodes {
        assert!(n.serves("a").await);
    }

    let report = push(&pub_client, &Subjects::default(), &routing_to(&b), &opts())
        .await
        .unwrap();
    assert_eq!(
        report
            .applied
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["n1", "n2", "n3"],
        "{report:?}"
    );
    assert!(report.all_applied());
    for n in &nodes {
        assert!(n.serves("b").await, "applied means serving");
        assert_eq!(n.revision(), report.revision);
    }

    // Pushing the same document again writes nothing.
    let again = push(&pub_client, &Subjects::default(), &routing_to(&b), &opts())
        .await
        .unwrap();
    assert!(again.unchanged);
    assert_eq!(again.revision, report.revision);

    // A stale expected revision is a conflict and writes nothing.
    let stale = PushOptions {
        expect_revision: Some(report.revision - 1),
        ..opts()
    };
    match push(&pub_client, &Subjects::default(), &routing_to(&a), &stale).await {
        Err(PushError::Conflict { current, expected }) => {
            assert_eq!((current, expected), (report.revision, report.revision - 1))
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // --force overrides.
    let forced = PushOptions {
        force: true,
        ..stale
    };
    assert!(
        push(&pub_client, &Subjects::default(), &routing_to(&a), &forced)
            .await
            .unwrap()
            .all_applied()
    );
    for n in &nodes {
        assert!(n.serves("a").await);
    }

    // A node that starts after the push converges to it.
    let late = fleet_node("n4", &nats, state.path(), &b).await;
    eventually(Duration::from_secs(10), "late node converges", || async {
        late.revision() == report.revision + 1
    })
    .await;
    assert!(late.serves("a").await);
    drop(late.handle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_documents_are_rejected_whole_by_every_node() {
    let nats = NatsServer::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let a = Backend::named("a").await;
    let nodes = [
        fleet_node("n1", &nats, state.path(), &a).await,
        fleet_node("n2", &nats, state.path(), &a).await,
        fleet_node("n3", &nats, state.path(), &a).await,
    ];
    let pub_client = publisher(&nats).await;
    until_discovered(&pub_client, 3).await;

    // `push` validates locally first: nothing is written.
    let bad = "[[routes]]\ncluster = \"nope\"\n";
    match push(&pub_client, &Subjects::default(), bad, &opts()).await {
        Err(PushError::Invalid(errors)) => assert!(
            errors[0].starts_with("routes[0].cluster: unknown cluster"),
            "{errors:?}"
        ),
        other => panic!("expected local rejection, got {other:?}"),
    }

    // A publisher that is not ours writes an invalid document straight into the bucket: every node
    // rejects it with the error's path and keeps serving.
    let mut acks = pub_client.subscribe("edge.v1.ack.*").await.unwrap();
    let js = async_nats::jetstream::new(pub_client.clone());
    let kv = edgeplane_bus::jetstream::config_bucket(&js, "edge_config", 8, 1)
        .await
        .unwrap();
    let revision = kv
        .put(
            "current",
            "[[routes]]\ncluster = \"nope\"\n[clusters.c]\n".into(),
        )
        .await
        .unwrap();
    let mut rejected = std::collections::BTreeMap::new();
    while rejected.len() < 3 {
        let msg = tokio::time::timeout(
            Duration::from_secs(10),
            futures_util::StreamExt::next(&mut acks),
        )
        .await
        .unwrap()
        .unwrap();
        let ack: edgeplane_bus::wire::ConfigAck = edgeplane_bus::decode(&msg.payload).unwrap();
        assert_eq!(ack.revision, revision);
        assert_eq!(ack.status, edgeplane_bus::wire::AckStatus::Rejected);
        rejected.insert(ack.node, ack.errors);
    }
    for errors in rejected.values() {
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("routes[0].cluster: unknown cluster \"nope\"")),
            "{errors:?}"
        );
    }
    for n in &nodes {
        assert!(n.serves("a").await, "traffic unaffected");
        assert_eq!(
            n.handled(),
            revision,
            "the rejected revision is not retried"
        );
        assert_eq!(
            n.revision(),
            0,
            "nothing pushed was applied: still the file's config"
        );
    }

    // A valid revision, then a rejected one: every node reports the applied one as in place (status
    // replies, metrics), and the rejected one only as handled.
    let applied = push(&pub_client, &Subjects::default(), &routing_to(&a), &opts())
        .await
        .unwrap();
    assert_eq!(applied.applied.len(), 3, "{applied:?}");
    let rejected = kv.put("current", bad.into()).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the bad revision handled",
        || async { nodes.iter().all(|n| n.handled() == rejected) },
    )
    .await;
    let statuses = edgeplane_controller::publish::discover(
        &pub_client,
        &Subjects::default(),
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    assert_eq!(statuses.len(), 3);
    for s in &statuses {
        assert_eq!(
            (s.revision, s.handled),
            (applied.revision, rejected),
            "{s:?}"
        );
    }
    let metrics = nodes[0].handle.telemetry().render();
    assert!(
        metrics.contains(&format!("edgeplane_config_revision {}", applied.revision)),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("edgeplane_config_handled_revision {rejected}")),
        "{metrics}"
    );

    // Garbage that is not even TOML is rejected the same way.
    let revision = kv
        .put("current", "\u{0}\u{1}not toml".into())
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "garbage rejected", || async {
        nodes.iter().all(|n| n.handled() == revision)
    })
    .await;
    for n in &nodes {
        assert_eq!(
            n.revision(),
            applied.revision,
            "the applied revision stays in place"
        );
    }
    for n in &nodes {
        assert!(n.serves("a").await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_serve_through_a_nats_outage_and_restart_from_disk() {
    let mut nats = NatsServer::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    );
    let node = fleet_node("n1", &nats, state.path(), &a).await;
    let pub_client = publisher(&nats).await;
    until_discovered(&pub_client, 1).await;
    assert!(
        push(&pub_client, &Subjects::default(), &routing_to(&b), &opts())
            .await
            .unwrap()
            .all_applied()
    );

    // Traffic flows while NATS goes away and comes back: zero failed requests.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (client, stop, ok, failed) = (
            node.client.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let req = client
                    .request("push.test", "/")
                    .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
                    .unwrap();
                match client.send(req).await {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    nats.stop();
    let before = ok.load(Ordering::Relaxed);
    eventually(
        Duration::from_secs(5),
        "traffic continues without NATS",
        || async { ok.load(Ordering::Relaxed) > before + 100 },
    )
    .await;
    nats.restart();
    // After the restart the node reconnects and applies the next push.
    let pub_client = publisher(&nats).await;
    until_discovered(&pub_client, 1).await;
    let report = push(&pub_client, &Subjects::default(), &routing_to(&c), &opts())
        .await
        .unwrap();
    assert!(report.all_applied(), "{report:?}");
    assert!(node.serves("c").await);
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "zero failed requests through the outage"
    );

    // With NATS down, a restarted node serves the last pushed config from disk, not its file's.
    nats.stop();
    node.handle.shutdown_within(Duration::from_secs(1)).await;
    drop(node.controller);
    let restarted = fleet_node("n1", &nats, state.path(), &a).await;
    assert_eq!(restarted.revision(), report.revision);
    assert!(restarted.serves("c").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_history_and_fleet() {
    use edgeplane_controller::publish::{fleet, history, rollback};
    let nats = NatsServer::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    );
    let n1 = fleet_node("n1", &nats, state.path(), &a).await;
    let n2 = fleet_node("n2", &nats, state.path(), &a).await;
    let pub_client = publisher(&nats).await;
    until_discovered(&pub_client, 2).await;
    let subjects = Subjects::default();
    let first = push(&pub_client, &subjects, &routing_to(&b), &opts())
        .await
        .unwrap();
    let second = push(&pub_client, &subjects, &routing_to(&c), &opts())
        .await
        .unwrap();
    assert!(first.all_applied() && second.all_applied());

    let revisions = history(&pub_client, "edge_config").await.unwrap();
    assert_eq!(
        revisions.iter().map(|r| r.revision).collect::<Vec<_>>(),
        [first.revision, second.revision]
    );
    assert_eq!(revisions[0].hash.as_deref().ok(), Some(first.hash.as_str()));

    // Default target: the revision before the current one.
    let (target, report) = rollback(&pub_client, &subjects, None, &opts())
        .await
        .unwrap();
    assert_eq!(target, first.revision);
    assert!(report.all_applied(), "{report:?}");
    assert_eq!(report.hash, first.hash);
    assert!(n1.serves("b").await && n2.serves("b").await);
    let (_, report) = rollback(&pub_client, &subjects, Some(second.revision), &opts())
        .await
        .unwrap();
    assert!(report.all_applied());
    assert!(n1.serves("c").await);
    assert!(
        rollback(&pub_client, &subjects, Some(999), &opts())
            .await
            .is_err(),
        "unknown revision"
    );

    // The fleet: both online with their revision; after n2 stops, it is still listed, as offline.
    let nodes = fleet(&pub_client, &subjects, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(nodes.iter().filter(|n| n.online).count(), 2, "{nodes:?}");
    assert!(nodes.iter().all(|n| n.status.revision == report.revision));
    eventually(
        Duration::from_secs(10),
        "n2 recorded its announcement",
        || async {
            let js = async_nats::jetstream::new(pub_client.clone());
            let bucket = edgeplane_bus::jetstream::nodes_bucket(&js, 1)
                .await
                .unwrap();
            bucket.entry("n2").await.ok().flatten().is_some()
        },
    )
    .await;
    n2.handle.shutdown_within(Duration::from_secs(1)).await;
    drop(n2.controller);
    let nodes = fleet(&pub_client, &subjects, Duration::from_millis(300))
        .await
        .unwrap();
    let offline: Vec<_> = nodes
        .iter()
        .filter(|n| !n.online)
        .map(|n| n.status.node.as_str())
        .collect();
    assert_eq!(offline, ["n2"], "{nodes:?}");
    drop(n1.handle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_is_not_ours_pushes_with_nats_py() {
    let nats = NatsServer::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let nodes = [
        fleet_node("n1", &nats, state.path(), &a).await,
        fleet_node("n2", &nats, state.path(), &a).await,
    ];
    let pub_client = publisher(&nats).await;
    until_discovered(&pub_client, 2).await;

    let doc = state.path().join("routing.toml");
    std::fs::write(&doc, routing_to(&b)).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("py/push_config.py");
    let out = tokio::process::Command::new(python_with_nats())
        .arg(&script)
        .arg(nats.url())
        .arg(&doc)
        .arg("2")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "python publisher failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        report.matches("\"status\": \"applied\"").count(),
        2,
        "{report}"
    );
    for n in &nodes {
        assert!(n.serves("b").await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_cluster_replaces_one_cluster_with_cas_and_retries() {
    use edgeplane_controller::publish::push_cluster;
    let nats = NatsServer::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    );
    let node = fleet_node("n1", &nats, state.path(), &a).await;
    let pub_client = publisher(&nats).await;
    until_discovered(&pub_client, 1).await;
    let subjects = Subjects::default();
    // Five clusters, each routed by path; all on `a` to begin with.
    let mut doc = String::new();
    for i in 0..5 {
        doc += &format!("[[routes]]\npath_prefix = \"/{i}/\"\ncluster = \"k{i}\"\n");
    }
    for i in 0..5 {
        doc += &format!(
            "[clusters.k{i}]\n{}",
            endpoints(&format!("k{i}"), &[(&a, 1)])
        );
    }
    assert!(push(&pub_client, &subjects, &doc, &opts())
        .await
        .unwrap()
        .all_applied());

    // One cluster replaced: only it changes.
    let k0 = format!(
        "[clusters.k0]\nbalancing = \"least_connections\"\n{}",
        endpoints("k0", &[(&b, 1)])
    );
    let report = push_cluster(&pub_client, &subjects, "k0", &k0, &opts())
        .await
        .unwrap();
    assert!(report.all_applied(), "{report:?}");
    assert_eq!(node.client.get("x", "/0/").await.header("x-backend"), "b");
    assert_eq!(node.client.get("x", "/1/").await.header("x-backend"), "a");

    // Four publishers replace four clusters at once: compare-and-set with retries loses none.
    let mut writers = Vec::new();
    for i in 1..5 {
        let (client, c_addr) = (pub_client.clone(), c.addr);
        writers.push(tokio::spawn(async move {
            let text =
                format!("[clusters.k{i}]\n[[clusters.k{i}.endpoints]]\naddress = \"{c_addr}\"\n");
            push_cluster(
                &client,
                &Subjects::default(),
                &format!("k{i}"),
                &text,
                &opts(),
            )
            .await
        }));
    }
    for w in writers {
        assert!(w.await.unwrap().unwrap().all_applied());
    }
    for i in 1..5 {
        assert_eq!(
            node.client
                .get("x", &format!("/{i}/"))
                .await
                .header("x-backend"),
            "c",
            "cluster k{i}"
        );
    }
    assert_eq!(
        node.client.get("x", "/0/").await.header("x-backend"),
        "b",
        "earlier change kept"
    );

    // A file without that cluster is refused before anything is written.
    match push_cluster(&pub_client, &subjects, "k9", &k0, &opts()).await {
        Err(PushError::Invalid(errors)) => {
            assert_eq!(errors, ["clusters.k9: not defined in the given file"])
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_bucket_is_followed_from_its_new_history() {
    let nats = NatsServer::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    );
    let node = fleet_node("n1", &nats, state.path(), &a).await;
    let pub_client = publisher(&nats).await;
    until_discovered(&pub_client, 1).await;
    let subjects = Subjects::default();
    for backend in [&b, &a, &b] {
        assert!(push(&pub_client, &subjects, &routing_to(backend), &opts())
            .await
            .unwrap()
            .all_applied());
    }
    assert_eq!(node.revision(), 3);
    // An operator deletes the bucket; the next push creates it again, starting at revision 1.
    let js = async_nats::jetstream::new(pub_client.clone());
    js.delete_stream("KV_edge_config").await.unwrap();
    let kv = edgeplane_bus::jetstream::config_bucket(&js, "edge_config", 8, 1)
        .await
        .unwrap();
    let revision = kv.put("current", routing_to(&c).into()).await.unwrap();
    assert_eq!(revision, 1);
    eventually(
        Duration::from_secs(15),
        "node follows the new bucket",
        || async { node.serves("c").await },
    )
    .await;
    assert_eq!(node.revision(), 1);
}
