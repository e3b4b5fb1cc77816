//! Static stability: a NATS outage, however long, changes nothing the node serves. Self-registered
//! instances stay while the node is disconnected and for the grace period after it reconnects; after
//! it, an instance whose heartbeats did not resume goes down and away as usual.

use super::{Node, WAIT};
use crate::common::publisher;
use edgeplane_bus::wire::Heartbeat;
use edgeplane_bus::{encode, Subjects};
use edgeplane_controller::membership::Frozen;
use edgeplane_tests::{eventually, Backend, Client, NatsServer};
use http::StatusCode;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An instance heartbeating every 100 ms (ttl 400 ms) from its own task until stopped. Publishing
/// errors (NATS down) are ignored, as a real instance would.
struct Beater {
    running: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Beater {
    fn start(nats: async_nats::Client, id: &str, backend: &Backend) -> Beater {
        let running = Arc::new(AtomicBool::new(true));
        let (run, id, address) = (running.clone(), id.to_string(), backend.addr.to_string());
        let task = tokio::spawn(async move {
            let subject = Subjects::default().heartbeat("api", &id).unwrap();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut seq = 0;
            while run.load(Relaxed) {
                tick.tick().await;
                seq += 1;
                let hb = Heartbeat {
                    schema: 1,
                    instance: id.clone(),
                    boot_id: "boot".into(),
                    seq,
                    address: address.clone(),
                    weight: 1,
                    zone: None,
                    health: 100,
                    in_flight: 0,
                    cpu: 0.1,
                    latency_ms: 1.0,
                    ttl_ms: 400,
                    draining: false,
                };
                let _ = nats.publish(subject.clone(), encode(&hb)).await;
            }
        });
        Beater { running, task }
    }

    /// Stops beating, without a draining heartbeat: the instance just disappears.
    async fn vanish(self) {
        self.running.store(false, Relaxed);
        let _ = self.task.await;
    }
}

/// Backends `a` and `b`, heartbeating as instances `i-a` and `i-b`, once both have joined `node`.
async fn two_joined(nats: &NatsServer, node: &Node) -> (Backend, Backend, Beater, Beater) {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let publisher = publisher(nats).await;
    let beat_a = Beater::start(publisher.clone(), "i-a", &a);
    let beat_b = Beater::start(publisher.clone(), "i-b", &b);
    eventually(WAIT, "both instances join", || async {
        node.addresses() == BTreeSet::from([a.addr, b.addr])
    })
    .await;
    (a, b, beat_a, beat_b)
}

/// Requests from 4 concurrent clients until `until`: (answered 200, anything else).
async fn load(client: &Client, until: Instant) -> (u64, u64) {
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (client, ok, failed) = (client.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let r = client.get("m.test", "/").await;
                    let counter = if r.status == StatusCode::OK {
                        &ok
                    } else {
                        &failed
                    };
                    counter.fetch_add(1, Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (ok.load(Relaxed), failed.load(Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_longer_than_ttl_and_remove_after_fails_no_request() {
    let mut nats = NatsServer::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let node = Node::start_with(
        "n1",
        &nats,
        state.path(),
        "membership_grace = \"1s\"",
        super::SELF_REGISTERING,
    )
    .await;
    let (a, b, beat_a, beat_b) = two_joined(&nats, &node).await;
    let composer = &node.controller.composer;

    // The outage: 2 s, five times ttl (400 ms) + remove_after (300 ms).
    nats.stop();
    eventually(WAIT, "the node sees the link down", || async {
        composer.frozen() == Some(Frozen::Disconnected)
    })
    .await;
    let (ok, failed) = load(&node.client, Instant::now() + Duration::from_secs(2)).await;
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during the outage",
        ok + failed
    );
    assert!(ok > 0);
    assert_eq!(node.addresses(), BTreeSet::from([a.addr, b.addr]));
    assert!(
        node.endpoints().iter().all(|e| e.1 == 100),
        "{:?}",
        node.endpoints()
    );
    assert_eq!(composer.held(), 2, "both held while frozen");
    assert_eq!(composer.stats.expired.load(Relaxed), 0);

    // Back: the node reconnects, the beaters' client too; then a grace period of 1 s.
    nats.restart();
    eventually(WAIT, "the node reconnects", || async {
        matches!(composer.frozen(), Some(Frozen::Grace { .. }) | None)
    })
    .await;
    let (ok, failed) = load(&node.client, Instant::now() + Duration::from_millis(1500)).await;
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed after the outage",
        ok + failed
    );
    assert_eq!(composer.frozen(), None, "the grace period is over");
    assert_eq!(node.addresses(), BTreeSet::from([a.addr, b.addr]));

    // A real death after the outage is still seen: b vanishes, a's heartbeats prove that the bus
    // delivers, so b goes down and is removed; requests go to a alone.
    beat_b.vanish().await;
    eventually(WAIT, "b is removed", || async {
        node.addresses() == BTreeSet::from([a.addr])
    })
    .await;
    assert!(composer.stats.expired.load(Relaxed) >= 1);
    assert_eq!(node.served_by(4).await, BTreeSet::from(["a".into()]));
    beat_a.vanish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_whose_heartbeats_all_stop_is_held_while_the_node_stays_connected() {
    let nats = NatsServer::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let node = Node::start("n1", &nats, state.path(), super::SELF_REGISTERING).await;
    let (a, b, beat_a, beat_b) = two_joined(&nats, &node).await;
    // Every publisher falls silent at once (a partition between them and NATS, say).
    beat_a.vanish().await;
    beat_b.vanish().await;
    let composer = &node.controller.composer;
    eventually(WAIT, "the silent cluster is held", || async {
        composer.held() == 2
    })
    .await;
    let (ok, failed) = load(&node.client, Instant::now() + Duration::from_secs(1)).await;
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert_eq!(node.addresses(), BTreeSet::from([a.addr, b.addr]));
    assert_eq!(composer.stats.silent_clusters.load(Relaxed), 1);
    assert_eq!(composer.stats.expired.load(Relaxed), 0);
    // The admin API and the metrics say so.
    let metrics = node.handle.telemetry().render();
    assert!(
        metrics.contains("edgeplane_membership_held_instances 2"),
        "{metrics}"
    );
}
