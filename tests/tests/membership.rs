//! Heartbeats and scaling events over a real nats-server: instances join by heartbeat, are skipped
//! below the health threshold, go down then away when their heartbeats stop; scaling events add,
//! drain (in-flight requests finish) and remove endpoints on every node, including a node that starts
//! later; a publisher that is not ours sends heartbeats with nats-py.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "membership/static_stability.rs"]
mod static_stability;

use common::{publisher, start_node};
use edgeplane_bus::wire::{Heartbeat, ScaleAction};
use edgeplane_bus::{encode, Subjects};
use edgeplane_controller::scale_publish;
use edgeplane_proxy::fleet::{join, Controller};
use edgeplane_proxy::NodeHandle;
use edgeplane_tests::{eventually, python_with_nats, text, Backend, Client, NatsServer};
use http::StatusCode;
use std::cell::Cell;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

struct Node {
    handle: NodeHandle,
    controller: Controller,
    client: Client,
}

impl Node {
    async fn start(id: &str, nats: &NatsServer, state: &std::path::Path, cluster: &str) -> Node {
        Node::start_with(id, nats, state, "", cluster).await
    }

    /// With `nats_extra` lines in `[node.nats]`.
    async fn start_with(
        id: &str,
        nats: &NatsServer,
        state: &std::path::Path,
        nats_extra: &str,
        cluster: &str,
    ) -> Node {
        let text = format!(
            "[node]\nid = \"{id}\"\nstate_dir = \"{}\"\n[node.nats]\nurls = [\"{}\"]\n{nats_extra}\n\
             [[node.listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"api\"\n\
             [clusters.api]\n{cluster}",
            state.join(id).display(),
            nats.url(),
        );
        let (handle, addr) = start_node(&text).await;
        let controller = join(&handle).await.unwrap().expect("node has [node.nats]");
        Node {
            handle,
            controller,
            client: Client::new(addr),
        }
    }

    /// The `api` cluster's endpoints in the tables: (address, health, draining), sorted.
    fn endpoints(&self) -> Vec<(SocketAddr, u8, bool)> {
        let snap = self.handle.tables().load();
        let mut out: Vec<_> = snap.clusters[0]
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.upstream.address,
                    e.upstream.health(),
                    e.upstream.draining(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn addresses(&self) -> BTreeSet<SocketAddr> {
        self.endpoints().into_iter().map(|e| e.0).collect()
    }

    /// Which backends answer `n` requests.
    async fn served_by(&self, n: usize) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        for _ in 0..n {
            let r = self.client.get("m.test", "/").await;
            seen.insert(r.header("x-backend").to_string());
        }
        seen
    }
}

/// Sends heartbeats like an instance would: each call is the next sequence number.
struct Instance {
    id: String,
    boot: String,
    seq: Cell<u64>,
    address: SocketAddr,
    health: Cell<u8>,
    ttl_ms: u64,
}

impl Instance {
    fn new(id: &str, b: &Backend) -> Instance {
        Instance {
            id: id.into(),
            boot: "boot-1".into(),
            seq: Cell::new(0),
            address: b.addr,
            health: Cell::new(100),
            ttl_ms: 400,
        }
    }

    fn message(&self, seq: u64) -> Heartbeat {
        Heartbeat {
            schema: 1,
            instance: self.id.clone(),
            boot_id: self.boot.clone(),
            seq,
            address: self.address.to_string(),
            weight: 1,
            zone: None,
            health: self.health.get(),
            in_flight: 0,
            cpu: 0.2,
            latency_ms: 1.5,
            ttl_ms: self.ttl_ms,
            draining: false,
        }
    }

    async fn send_seq(&self, nats: &async_nats::Client, seq: u64) {
        let subject = Subjects::default().heartbeat("api", &self.id).unwrap();
        nats.publish(subject, encode(&self.message(seq)))
            .await
            .unwrap();
        nats.flush().await.unwrap();
    }

    async fn beat(&self, nats: &async_nats::Client) {
        self.seq.set(self.seq.get() + 1);
        self.send_seq(nats, self.seq.get()).await;
    }
}

const SELF_REGISTERING: &str =
    "self_registration = true\nhealth_threshold = 50\nremove_after = \"300ms\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_join_are_skipped_below_threshold_and_expire() {
    let nats = NatsServer::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let node = Node::start("n1", &nats, state.path(), SELF_REGISTERING).await;
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let publisher = publisher(&nats).await;
    let (ia, ib) = (Instance::new("i-a", &a), Instance::new("i-b", &b));
    assert_eq!(
        node.client.get("m.test", "/").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Join: heartbeats are periodic, so keep beating until the node has subscribed and both serve.
    eventually(WAIT, "both instances join", || {
        let (ia, ib, p, node) = (&ia, &ib, &publisher, &node);
        async move {
            ia.beat(p).await;
            ib.beat(p).await;
            node.addresses() == BTreeSet::from([a.addr, b.addr])
        }
    })
    .await;
    assert_eq!(
        node.served_by(8).await,
        BTreeSet::from(["a".into(), "b".into()])
    );
    let stats = &node.controller.composer.stats;
    let rebuilds = stats.rebuilds.load(Relaxed);

    // Known instances are updated in place: no rebuild.
    ib.health.set(10);
    ib.beat(&publisher).await;
    ia.beat(&publisher).await;
    eventually(WAIT, "b reports health 10", || async {
        node.endpoints().iter().any(|e| e.0 == b.addr && e.1 == 10)
    })
    .await;
    assert_eq!(
        node.served_by(8).await,
        BTreeSet::from(["a".into()]),
        "b below the threshold"
    );
    assert_eq!(
        stats.rebuilds.load(Relaxed),
        rebuilds,
        "no rebuild for known instances"
    );

    // A stale sequence is dropped: b stays at health 10.
    let mut healthy = ib.message(1);
    healthy.health = 100;
    let subject = Subjects::default().heartbeat("api", "i-b").unwrap();
    publisher.publish(subject, encode(&healthy)).await.unwrap();
    publisher.flush().await.unwrap();
    eventually(WAIT, "the stale heartbeat is counted", || async {
        stats.heartbeats_stale.load(Relaxed) >= 1
    })
    .await;
    assert!(node.endpoints().iter().any(|e| e.0 == b.addr && e.1 == 10));
    ib.health.set(100);
    ib.beat(&publisher).await;
    eventually(WAIT, "b healthy again", || async {
        node.endpoints().iter().any(|e| e.0 == b.addr && e.1 == 100)
    })
    .await;

    // a stops beating: down at once after its ttl (400 ms), removed 300 ms later; b keeps beating.
    let saw_down = Cell::new(false);
    eventually(WAIT, "a expires and is removed", || {
        let (ib, p, node, saw_down) = (&ib, &publisher, &node, &saw_down);
        async move {
            ib.beat(p).await;
            let eps = node.endpoints();
            saw_down.set(saw_down.get() || eps.iter().any(|e| e.0 == a.addr && e.1 == 0));
            node.addresses() == BTreeSet::from([b.addr])
        }
    })
    .await;
    assert!(saw_down.get(), "a was marked down before it was removed");
    assert_eq!(node.served_by(4).await, BTreeSet::from(["b".into()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_self_registration_heartbeats_only_bring_health_to_listed_endpoints() {
    let nats = NatsServer::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let cluster = format!("[[clusters.api.endpoints]]\naddress = \"{}\"\n", a.addr);
    let node = Node::start("n1", &nats, state.path(), &cluster).await;
    let publisher = publisher(&nats).await;
    let (ia, ib) = (Instance::new("i-a", &a), Instance::new("i-b", &b));
    ia.health.set(0);
    let ignored = || {
        node.controller
            .composer
            .stats
            .heartbeats_ignored
            .load(Relaxed)
    };
    // Heartbeats of different instances are applied in no particular order: wait for both.
    eventually(
        WAIT,
        "a reports health 0 and b's heartbeat is ignored",
        || {
            let (ia, ib, p, node) = (&ia, &ib, &publisher, &node);
            async move {
                ia.beat(p).await;
                ib.beat(p).await;
                node.endpoints() == [(a.addr, 0, false)] && ignored() >= 1
            }
        },
    )
    .await;
    let r = node.client.get("m.test", "/").await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the only endpoint is down"
    );
    assert_eq!(node.endpoints().len(), 1, "b is not registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_adds_drains_with_in_flight_requests_and_removes_on_every_node() {
    let nats = NatsServer::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let a = Backend::named("a").await;
    let release = Arc::new(tokio::sync::Notify::new());
    let r = release.clone();
    let slow = Backend::with("slow", move |_req| {
        let r = r.clone();
        async move {
            r.notified().await;
            text(StatusCode::OK, "slow done")
        }
    })
    .await;
    let c = Backend::named("c").await;
    let cluster = format!("[[clusters.api.endpoints]]\naddress = \"{}\"\n", a.addr);
    let n1 = Node::start("n1", &nats, state.path(), &cluster).await;
    let publisher = publisher(&nats).await;
    let subjects = Subjects::default();
    let scale = |id: &str, action: ScaleAction| {
        let (p, s, id) = (&publisher, &subjects, id.to_string());
        async move {
            scale_publish::publish(p, s, "edge_scale", 1, "api", id, action)
                .await
                .unwrap()
        }
    };
    let add = |b: &Backend| ScaleAction::Add {
        address: b.addr.to_string(),
        weight: 1,
        zone: None,
    };

    scale("add-slow", add(&slow)).await;
    eventually(WAIT, "slow added", || async {
        n1.addresses() == BTreeSet::from([a.addr, slow.addr])
    })
    .await;
    let again = scale("add-slow", add(&slow)).await;
    assert!(again.duplicate, "the stream deduplicates by event id");

    // Requests until one is held by the slow endpoint (round robin: at most a few).
    let mut spawned = Vec::new();
    while slow.hits() == 0 {
        assert!(spawned.len() < 10, "slow never got a request");
        let before = a.hits() + slow.hits();
        let client = n1.client.clone();
        spawned.push(tokio::spawn(async move { client.get("m.test", "/").await }));
        eventually(WAIT, "the request reached a backend", || async {
            a.hits() + slow.hits() > before
        })
        .await;
    }

    scale(
        "drain-slow",
        ScaleAction::Drain {
            address: slow.addr.to_string(),
            deadline_ms: 20_000,
        },
    )
    .await;
    eventually(WAIT, "slow draining", || async {
        n1.endpoints().iter().any(|e| e.0 == slow.addr && e.2)
    })
    .await;
    assert_eq!(
        n1.served_by(6).await,
        BTreeSet::from(["a".into()]),
        "no new requests to slow"
    );
    assert!(
        n1.addresses().contains(&slow.addr),
        "kept while a request is in flight"
    );
    release.notify_waiters();
    let mut bodies = Vec::new();
    for h in spawned {
        let r = h.await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        bodies.push(r.body);
    }
    assert!(
        bodies.iter().any(|b| b == "slow done"),
        "the in-flight request finished: {bodies:?}"
    );
    eventually(WAIT, "slow removed once idle", || async {
        n1.addresses() == BTreeSet::from([a.addr])
    })
    .await;

    scale("add-c", add(&c)).await;
    scale(
        "weight-c",
        ScaleAction::Weight {
            address: c.addr.to_string(),
            weight: 5,
        },
    )
    .await;
    scale(
        "remove-a",
        ScaleAction::Remove {
            address: a.addr.to_string(),
        },
    )
    .await;
    eventually(WAIT, "c in, a out", || async {
        n1.addresses() == BTreeSet::from([c.addr])
    })
    .await;
    assert_eq!(n1.served_by(3).await, BTreeSet::from(["c".into()]));

    // A node that starts later replays the stream and converges.
    let n2 = Node::start("n2", &nats, state.path(), &cluster).await;
    eventually(WAIT, "late node converges", || async {
        n2.addresses() == n1.addresses()
    })
    .await;
    let weight = |n: &Node| n.handle.tables().load().clusters[0].endpoints[0].weight;
    assert_eq!((weight(&n1), weight(&n2)), (5, 5));
    assert_eq!(n2.served_by(3).await, BTreeSet::from(["c".into()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_is_not_ours_sends_heartbeats_with_nats_py() {
    let nats = NatsServer::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let node = Node::start("n1", &nats, state.path(), SELF_REGISTERING).await;
    let b = Backend::named("py").await;
    // The script beats every 100 ms for 3 s; the node joins the instance while it does.
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("py/heartbeat.py");
    let mut child = tokio::process::Command::new(python_with_nats())
        .arg(&script)
        .arg(nats.url())
        .args(["api", "py-1", &b.addr.to_string(), "3"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually(WAIT, "the python instance joins", || async {
        node.addresses() == BTreeSet::from([b.addr])
    })
    .await;
    assert_eq!(node.served_by(2).await, BTreeSet::from(["py".into()]));
    let status = child.wait().await.unwrap();
    assert!(status.success(), "python heartbeat publisher failed");
    // Its last heartbeat says it is draining: removed without waiting for its ttl.
    eventually(WAIT, "the python instance leaves by draining", || async {
        node.addresses().is_empty()
    })
    .await;
}
