//! A 3-server NATS cluster on loopback with replicated JetStream assets (R3): nodes given all three
//! URLs keep serving, applying and acknowledging pushes while any one server is killed, the stream
//! leader and the JetStream meta leader included.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::start_node;
use edgeplane_bus::{BusOptions, Subjects};
use edgeplane_controller::provision::provision;
use edgeplane_controller::publish::{push, PushOptions};
use edgeplane_proxy::fleet::{join, Controller};
use edgeplane_proxy::NodeHandle;
use edgeplane_tests::{endpoints, eventually, Backend, Client, NatsCluster};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

struct Node {
    _handle: NodeHandle,
    controller: Controller,
    client: Client,
}

async fn node(id: &str, urls: &[String], state: &std::path::Path, a: &Backend) -> Node {
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    let text = format!(
        "[node]\nid = \"{id}\"\nstate_dir = \"{}\"\n[node.nats]\nurls = [{}]\nreplicas = 3\n\
         [[node.listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        state.join(id).display(),
        urls.join(", "),
        endpoints("c", &[(a, 1)])
    );
    let (handle, addr) = start_node(&text).await;
    let controller = join(&handle).await.unwrap().unwrap();
    Node {
        _handle: handle,
        controller,
        client: Client::new(addr),
    }
}

fn document(b: &Backend, n: usize) -> String {
    format!(
        "[[routes]]\ncluster = \"c\"\n[[routes]]\npath_prefix = \"/push-{n}/\"\ncluster = \"c\"\n\
         [clusters.c]\n{}",
        endpoints("c", &[(b, 1)])
    )
}

/// Pushes document `n` (retrying while the cluster elects leaders) and waits until every node
/// applied it.
async fn push_everywhere(client: &async_nats::Client, nodes: &[Node], b: &Backend, n: usize) {
    let opts = PushOptions {
        bucket: "edge_config".into(),
        replicas: 3,
        expect_revision: None,
        force: true,
        discover: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
    };
    let doc = document(b, n);
    let started = std::time::Instant::now();
    let revision = AtomicU64::new(0);
    eventually(WAIT, &format!("push {n} written"), || async {
        match push(client, &Subjects::default(), &doc, &opts).await {
            Ok(r) => {
                revision.store(r.revision, Relaxed);
                true
            }
            Err(_) => false,
        }
    })
    .await;
    let revision = revision.load(Relaxed);
    let written = started.elapsed();
    eventually(WAIT, &format!("push {n} applied by every node"), || async {
        nodes
            .iter()
            .all(|n| n.controller.state.lock().unwrap().revision >= revision)
    })
    .await;
    // What a failover costs a push, for whoever reads the test's output.
    eprintln!(
        "push {n}: written after {written:?}, applied everywhere after {:?}",
        started.elapsed()
    );
}

/// Waits until the cluster is whole again after a server restarted: a meta leader, and the config
/// stream with a leader and both followers current (otherwise losing the next server loses quorum).
async fn whole(cluster: &NatsCluster, client: &async_nats::Client) {
    eventually(WAIT, "the cluster is whole again", || async {
        let js = async_nats::jetstream::new(client.clone());
        let Ok(mut stream) = js.get_stream("KV_edge_config").await else {
            return false;
        };
        let Ok(info) = stream.info().await else {
            return false;
        };
        let current = info.cluster.as_ref().is_some_and(|c| {
            c.leader.is_some() && c.replicas.len() == 2 && c.replicas.iter().all(|r| r.current)
        });
        current && cluster.meta_leader().is_some()
    })
    .await;
}

/// The server (index) leading stream `name`.
async fn stream_leader(client: &async_nats::Client, name: &str) -> Option<usize> {
    let js = async_nats::jetstream::new(client.clone());
    let mut stream = js.get_stream(name).await.ok()?;
    let info = stream.info().await.ok()?;
    info.cluster
        .as_ref()?
        .leader
        .as_ref()?
        .strip_prefix('s')?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_any_one_of_three_servers_fails_no_request_and_pushes_keep_landing() {
    let mut cluster = NatsCluster::start(3);
    let urls = cluster.urls();
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let operator = BusOptions {
        urls: urls.clone(),
        retry_initial: false,
        ..BusOptions::default()
    }
    .connect(Default::default())
    .await
    .unwrap();
    // The cluster elects its JetStream meta leader first; then the R3 assets can be made.
    eventually(WAIT, "R3 assets provisioned", || async {
        provision(
            &operator,
            &Subjects::default(),
            "edge_config",
            "edge_scale",
            3,
        )
        .await
        .is_ok_and(|assets| assets.iter().all(|a| a.replicas == 3))
    })
    .await;
    let state = tempfile::tempdir().unwrap();
    let nodes = [
        node("n1", &urls, state.path(), &a).await,
        node("n2", &urls, state.path(), &a).await,
    ];
    push_everywhere(&operator, &nodes, &b, 1).await;

    // Load on both nodes for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load: Vec<_> = nodes
        .iter()
        .map(|n| {
            let (client, stop, ok, failed) =
                (n.client.clone(), stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    let good = client
                        .try_get("c.test", "/")
                        .await
                        .is_ok_and(|r| r.status.is_success());
                    (if good { &ok } else { &failed }).fetch_add(1, Relaxed);
                }
            })
        })
        .collect();

    // 1. The config stream's leader.
    let leader = stream_leader(&operator, "KV_edge_config").await.unwrap();
    cluster.servers[leader].stop();
    push_everywhere(&operator, &nodes, &b, 2).await;
    cluster.servers[leader].start_again();
    whole(&cluster, &operator).await;

    // 2. The JetStream meta leader.
    let mut meta = None;
    eventually(WAIT, "a meta leader is known", || {
        meta = cluster.meta_leader();
        std::future::ready(meta.is_some())
    })
    .await;
    let meta = meta.unwrap();
    cluster.servers[meta].stop();
    push_everywhere(&operator, &nodes, &b, 3).await;
    cluster.servers[meta].start_again();
    whole(&cluster, &operator).await;

    // 3. Each server in turn, with a push during each failover.
    for i in 0..3 {
        cluster.servers[i].stop();
        push_everywhere(&operator, &nodes, &b, 4 + i).await;
        cluster.servers[i].start_again();
        whole(&cluster, &operator).await;
    }

    stop.store(true, Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let (ok, failed) = (ok.load(Relaxed), failed.load(Relaxed));
    assert!(ok > 0);
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
}
