//! Least privilege on the bus, over a real nats-server configured with one user per role
//! (tests/nats/least-privilege.conf, documented in docs/bus.md): a node works with only its own
//! permissions, and a backend's heartbeat credentials can neither push config nor scale.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{publisher_as, start_node};
use edgeplane_bus::wire::{Heartbeat, ScaleAction};
use edgeplane_bus::{encode, Subjects};
use edgeplane_controller::publish::{push, PushOptions};
use edgeplane_controller::{provision, scale_publish};
use edgeplane_proxy::fleet::join;
use edgeplane_tests::{eventually, Backend, Client, NatsServer};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn heartbeat(cluster: &str, b: &Backend, seq: u64) -> (String, bytes::Bytes) {
    let hb = Heartbeat {
        schema: 1,
        instance: "i-1".into(),
        boot_id: "b".into(),
        seq,
        address: b.addr.to_string(),
        weight: 1,
        zone: None,
        health: 100,
        in_flight: 0,
        cpu: 0.0,
        latency_ms: 0.0,
        ttl_ms: 60_000,
        draining: false,
    };
    (
        Subjects::default().heartbeat(cluster, "i-1").unwrap(),
        encode(&hb),
    )
}

fn opts() -> PushOptions {
    PushOptions {
        bucket: "edge_config".into(),
        replicas: 1,
        expect_revision: None,
        force: false,
        discover: Duration::from_millis(500),
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_can_do_its_job_and_nothing_else() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/nats/least-privilege.conf");
    let nats = NatsServer::start(&["-c", conf]);
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);

    // An operator provisions the assets; nobody else may create them.
    let admin = publisher_as(&nats, "admin").await;
    let assets = provision::provision(&admin, &Subjects::default(), "edge_config", "edge_scale", 1)
        .await
        .unwrap();
    assert_eq!(assets.len(), 4, "{assets:?}");

    // A node with only its own permissions.
    let state = tempfile::tempdir().unwrap();
    let text = format!(
        "[node]\nid = \"n1\"\nstate_dir = \"{}\"\n[node.nats]\nurls = [\"{}\"]\nuser = \"n1\"\n\
         password = \"n1\"\n[[node.listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]]\n\
         cluster = \"api\"\n[clusters.api]\nself_registration = true\n\
         [[clusters.api.endpoints]]\naddress = \"{}\"\n",
        state.path().display(),
        nats.url(),
        a.addr
    );
    let (handle, addr) = start_node(&text).await;
    let controller = join(&handle).await.unwrap().unwrap();
    let client = Client::new(addr);
    let addresses = || -> BTreeSet<_> {
        handle.tables().load().clusters[0]
            .endpoints
            .iter()
            .map(|e| e.upstream.address)
            .collect()
    };

    // The config publisher pushes; the node applies and acknowledges (its status reply, its ack).
    let publisher = publisher_as(&nats, "publisher").await;
    let doc = format!(
        "[[routes]]\ncluster = \"api\"\n[clusters.api]\nself_registration = true\n\
         [[clusters.api.endpoints]]\naddress = \"{}\"\n",
        a.addr
    );
    let first = push(&publisher, &Subjects::default(), &doc, &opts())
        .await
        .unwrap();
    eventually(WAIT, "the node applies the first push", || async {
        controller.state.lock().unwrap().revision == first.revision
    })
    .await;
    // Now it is online: the second push gets its ack (the node's status reply and ack subjects).
    let doc = doc.replace(
        "self_registration = true\n",
        "self_registration = true\nhealth_threshold = 10\n",
    );
    let report = push(&publisher, &Subjects::default(), &doc, &opts())
        .await
        .unwrap();
    assert_eq!(
        report.applied,
        BTreeSet::from(["n1".to_string()]),
        "{report:?}"
    );
    let revision = report.revision;
    assert_eq!(controller.state.lock().unwrap().revision, revision);

    // The backends' heartbeat credentials: heartbeats of their cluster join the node.
    let hb = publisher_as(&nats, "hb-api").await;
    let mut seq = 0;
    eventually(WAIT, "b joins by heartbeat", || {
        seq += 1;
        let (hb, b, seq) = (&hb, &b, seq);
        async move {
            let (subject, payload) = heartbeat("api", b, seq);
            hb.publish(subject, payload).await.unwrap();
            hb.flush().await.unwrap();
            addresses().contains(&b.addr)
        }
    })
    .await;

    // ... but cannot push config, by JetStream or by a raw publish on the KV subject, nor scale.
    let hb_push = tokio::time::timeout(
        Duration::from_secs(5),
        push(
            &hb,
            &Subjects::default(),
            &doc.replace(&a.addr.to_string(), "127.0.0.1:1"),
            &opts(),
        ),
    )
    .await;
    assert!(
        !matches!(hb_push, Ok(Ok(_))),
        "a heartbeat sender pushed config"
    );
    hb.publish(
        "$KV.edge_config.current",
        "[[routes]]\ncluster = \"x\"\n".into(),
    )
    .await
    .unwrap();
    let hb_scale = tokio::time::timeout(
        Duration::from_secs(5),
        scale_publish::publish(
            &hb,
            &Subjects::default(),
            "edge_scale",
            1,
            "api",
            "evil-remove".into(),
            ScaleAction::Remove {
                address: a.addr.to_string(),
            },
        ),
    )
    .await;
    assert!(!matches!(hb_scale, Ok(Ok(_))), "a heartbeat sender scaled");
    // Nor heartbeat for another cluster (the server drops it; flush to be sure it was sent).
    let (subject, payload) = heartbeat("other", &b, 1);
    hb.publish(subject, payload).await.unwrap();
    hb.flush().await.unwrap();

    // The scaler's event goes through: proof that the stream works and that what follows counts.
    let scaler = publisher_as(&nats, "scaler").await;
    let c = Backend::named("c").await;
    scale_publish::publish(
        &scaler,
        &Subjects::default(),
        "edge_scale",
        1,
        "api",
        "add-c".into(),
        ScaleAction::Add {
            address: c.addr.to_string(),
            weight: 1,
            zone: None,
        },
    )
    .await
    .unwrap();
    eventually(WAIT, "the scaler's event applied", || async {
        addresses().contains(&c.addr)
    })
    .await;
    // Nothing the heartbeat credentials tried changed anything: one scaling event, the pushed
    // revision still in place and the last one handled, a still in the cluster.
    let stats = &controller.composer.stats;
    assert_eq!(stats.scale_events.load(Relaxed), 1);
    let s = *controller.state.lock().unwrap();
    assert_eq!((s.revision, s.handled), (revision, revision));
    assert_eq!(addresses(), BTreeSet::from([a.addr, b.addr, c.addr]));
    let js = async_nats::jetstream::new(admin.clone());
    let kv = js.get_key_value("edge_config").await.unwrap();
    assert_eq!(
        kv.entry("current").await.unwrap().unwrap().revision,
        revision
    );
    assert_eq!(client.get("m.test", "/").await.status, http::StatusCode::OK);
}
