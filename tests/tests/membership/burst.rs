//! A burst of 200,000 heartbeats for 100 instances from one connection: every one reaches the node,
//! older heartbeats of an instance still waiting when a newer one arrives are coalesced (counted as
//! such, never as missed), and the last state of every instance is the one in place. (Whether the
//! node keeps up at 250k/s is a matter for a release-build benchmark, not this test.)

use super::{Node, WAIT};
use crate::common::publisher;
use edgeplane_bus::wire::Heartbeat;
use edgeplane_bus::{encode, Subjects};
use edgeplane_tests::{eventually, NatsServer};
use std::sync::atomic::Ordering::Relaxed;

const INSTANCES: u64 = 100;
const BURST: u64 = 2_000;

fn heartbeat(i: u64, seq: u64) -> (String, bytes::Bytes) {
    let hb = Heartbeat {
        schema: 1,
        instance: format!("i-{i}"),
        boot_id: "b".into(),
        seq,
        address: format!("127.0.0.1:{}", 20_000 + i),
        weight: 1,
        zone: None,
        health: if seq == BURST { 42 } else { 100 },
        in_flight: 0,
        cpu: 0.1,
        latency_ms: 1.0,
        ttl_ms: 600_000,
        draining: false,
    };
    let subject = Subjects::default().heartbeat("api", &hb.instance).unwrap();
    (subject, encode(&hb))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_ends_with_the_newest_heartbeat_of_every_instance_in_place() {
    let nats = NatsServer::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let node = Node::start("n1", &nats, state.path(), super::SELF_REGISTERING).await;
    let p = publisher(&nats).await;
    let composer = &node.controller.composer;
    eventually(WAIT, "every instance joins", || async {
        for i in 0..INSTANCES {
            let (s, m) = heartbeat(i, 1);
            p.publish(s, m).await.unwrap();
        }
        p.flush().await.unwrap();
        composer.instances() == INSTANCES as usize
    })
    .await;
    let s = &composer.stats;
    let before = s.heartbeats.load(Relaxed)
        + s.heartbeats_coalesced.load(Relaxed)
        + s.heartbeats_ignored.load(Relaxed);
    // 200,000 heartbeats as fast as one connection publishes them: sequence 2..=BURST of each.
    for seq in 2..=BURST {
        for i in 0..INSTANCES {
            let (s, m) = heartbeat(i, seq);
            p.publish(s, m).await.unwrap();
        }
    }
    p.flush().await.unwrap();
    let sent = INSTANCES * (BURST - 1);
    // The newest of each instance (health 42) ends up in place everywhere.
    eventually(
        WAIT,
        "the last heartbeat of every instance is in place",
        || async { node.endpoints().iter().all(|e| e.1 == 42) },
    )
    .await;
    let taken = s.heartbeats.load(Relaxed)
        + s.heartbeats_coalesced.load(Relaxed)
        + s.heartbeats_ignored.load(Relaxed)
        - before;
    assert!(
        taken >= sent,
        "{taken} of {sent} heartbeats reached the node"
    );
    assert_eq!(node.controller.stats.slow_consumers.load(Relaxed), 0);
    assert_eq!(
        composer.missed_heartbeats(),
        0,
        "coalesced heartbeats are not missed"
    );
    assert_eq!(node.endpoints().len(), INSTANCES as usize);
}
