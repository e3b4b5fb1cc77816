//! Autoscale recommendations over a real nats-server: one node of two holds the `autoscale` lease
//! and publishes (a cluster below its `min` gets `desired = min` at once); when the leader dies, the
//! other takes the lease over and publishes within the lease time (measured).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{publisher, start_node};
use edgeplane_bus::autoscale::AutoscaleRecommendation;
use edgeplane_bus::jetstream::LEASE_TTL;
use edgeplane_proxy::fleet::join;
use edgeplane_tests::{Backend, Client, NatsServer};
use futures_util::StreamExt;
use http::StatusCode;
use std::time::{Duration, Instant};

async fn leader(admin: std::net::SocketAddr) -> Option<bool> {
    let c = Client::new(admin);
    let req = c
        .request("admin", "/api/v1/clusters/api/autoscale")
        .header("authorization", "Bearer aut0")
        .body(Default::default())
        .unwrap();
    let resp = c.send(req).await.ok()?;
    (resp.status == StatusCode::OK).then_some(())?;
    let v: serde_json::Value = serde_json::from_str(&resp.body).ok()?;
    v["leader"].as_bool()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_recommends_and_another_takes_over_when_it_dies() {
    let nats = NatsServer::start(&[]);
    let backend = Backend::named("b").await;
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("EDGEPLANE_ADMIN_TOKEN", "aut0");
    let p = publisher(&nats).await;
    let mut recs = p.subscribe("edge.v1.autoscale.api").await.unwrap();
    p.flush().await.unwrap();
    let mut nodes = Vec::new();
    for id in ["as1", "as2"] {
        let text = format!(
            "[node]\nid = \"{id}\"\nadmin = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n[node.nats]\nurls = [\"{}\"]\n\
             [[node.listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"api\"\n\
             [clusters.api]\n[clusters.api.autoscale]\nmin = 3\nmax = 6\ntarget = \"in_flight\"\n\
             [[clusters.api.endpoints]]\naddress = \"{}\"\n",
            dir.path().join(id).display(),
            nats.url(),
            backend.addr
        );
        let (node, _) = start_node(&text).await;
        let controller = join(&node).await.unwrap().unwrap();
        nodes.push((node, Some(controller)));
    }

    // The first recommendation: one instance serving, min 3.
    let first = tokio::time::timeout(Duration::from_secs(20), recs.next())
        .await
        .expect("a recommendation within 20 s")
        .unwrap();
    let rec: AutoscaleRecommendation = edgeplane_bus::decode(&first.payload).unwrap();
    assert_eq!((rec.current, rec.desired), (1, 3), "{rec:?}");
    assert!(rec.reason.contains("below min"), "{}", rec.reason);
    assert_eq!(rec.signals.target, "in_flight");
    let leader_id = rec.node.clone();
    // Exactly one node says it leads.
    let admins: Vec<_> = nodes.iter().map(|(n, _)| n.admin_addr().unwrap()).collect();
    let mut leads = Vec::new();
    for a in &admins {
        leads.push(leader(*a).await);
    }
    assert_eq!(
        leads.iter().filter(|l| **l == Some(true)).count(),
        1,
        "{leads:?}"
    );

    // The leader dies (its controller's tasks stop, its NATS connection closes): the other node
    // takes the lease once it expires and publishes at once.
    let index = if leader_id == "as1" { 0 } else { 1 };
    let killed = Instant::now();
    nodes[index].1.take();
    let deadline = LEASE_TTL + Duration::from_secs(10);
    let other = loop {
        let m = tokio::time::timeout(deadline, recs.next())
            .await
            .expect("the other node publishes within the lease time")
            .unwrap();
        let r: AutoscaleRecommendation = edgeplane_bus::decode(&m.payload).unwrap();
        if r.node != leader_id {
            break r;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(1),
            "the dead leader went on publishing"
        );
    };
    let handover = killed.elapsed();
    eprintln!("autoscale lease handed over in {} ms", handover.as_millis());
    assert_eq!(other.desired, 3);
    assert!(
        handover <= LEASE_TTL + Duration::from_secs(2),
        "{handover:?}"
    );
}

/// The whole loop: the example actor (tests/py/autoscale_actor.py) follows the recommendations and
/// starts or stops real backend processes that join by heartbeat; load through the node scales the
/// cluster out to its max, and back in to its min once the load stops, never beyond either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_scales_the_cluster_out_and_back_in_through_the_actor() {
    use edgeplane_tests::{eventually, python_with_nats};
    use std::io::{BufRead, BufReader};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let nats = NatsServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let p = publisher(&nats).await;
    let mut recs = p.subscribe("edge.v1.autoscale.api").await.unwrap();
    p.flush().await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::<u32>::new()));
    let recorder = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(m) = recs.next().await {
                let r: AutoscaleRecommendation = edgeplane_bus::decode(&m.payload).unwrap();
                seen.lock().unwrap().push(r.desired);
            }
        })
    };
    let text = format!(
        "[node]\nid = \"as-loop\"\nstate_dir = \"{}\"\n[node.nats]\nurls = [\"{}\"]\n\
         [[node.listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"api\"\n\
         [clusters.api]\nself_registration = true\n[clusters.api.autoscale]\nmin = 1\nmax = 4\n\
         target = \"in_flight\"\ntarget_value = 4.0\nscale_up_above = 6.0\nscale_down_below = 2.0\n\
         cooldown_up = \"2s\"\ncooldown_down = \"3s\"\nmax_step = 2\n",
        dir.path().join("state").display(),
        nats.url(),
    );
    let mut actor = std::process::Command::new(python_with_nats())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/py/autoscale_actor.py"
        ))
        .args([nats.url().as_str(), "api", "50"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = actor.stdout.take().unwrap();
    let said = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let said = said.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                said.lock().unwrap().push(line);
            }
        });
    }
    // The actor listens before the node starts: it gets the first recommendation, not the next
    // periodic one 30 s later.
    eventually(Duration::from_secs(20), "the actor is ready", || async {
        said.lock().unwrap().iter().any(|l| l == "ready")
    })
    .await;
    let (node, addr) = start_node(&text).await;
    let _controller = join(&node).await.unwrap().unwrap();

    let endpoints = |n: &edgeplane_proxy::NodeHandle| {
        n.telemetry()
            .render()
            .lines()
            .find_map(|l| {
                l.strip_prefix("edgeplane_cluster_endpoints{cluster=\"api\"} ")?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    // Below min at first: one instance is started and joins.
    eventually(Duration::from_secs(20), "one instance joins", || async {
        endpoints(&node) == 1.0
    })
    .await;

    // 24 clients in a loop, 50 ms per request at the backend: 24 in flight for one instance.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..24)
        .map(|_| {
            let (stop, c) = (stop.clone(), Client::new(addr));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = c.try_get("scale.test", "/").await;
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(30), "scaled out to max (4)", || async {
        endpoints(&node) == 4.0
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        let _ = l.await;
    }
    eventually(
        Duration::from_secs(30),
        "scaled back in to min (1)",
        || async { endpoints(&node) == 1.0 },
    )
    .await;
    drop(actor.stdin.take());
    let _ = actor.wait();
    recorder.abort();
    let desired = seen.lock().unwrap().clone();
    assert!(desired.iter().all(|d| (1..=4).contains(d)), "{desired:?}");
    assert!(
        desired.contains(&4) && desired.last() == Some(&1),
        "{desired:?}"
    );
    let said = said.lock().unwrap().clone();
    assert!(said.iter().any(|l| l == "desired=4 running=4"), "{said:?}");
}
