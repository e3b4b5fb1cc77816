//! Fleet events over a real nats-server, seen by a plain nats-py subscriber: an ejection, the
//! priority failover it causes, and each rejected push produce exactly one event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{publisher, start_node};
use edgeplane_proxy::fleet::join;
use edgeplane_tests::{eventually, python_with_nats, Backend, Client, NatsServer};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejection_a_failover_and_a_rejected_push_are_one_event_each() {
    let nats = NatsServer::start(&[]);
    let good = Backend::named("good").await;
    // Nothing listens there: every connect is refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[node]\nid = \"ev1\"\nstate_dir = \"{}\"\n[node.nats]\nurls = [\"{}\"]\n\
         [[node.listeners]]\naddress = \"127.0.0.1:0\"\n\
         [[routes]]\ncluster = \"api\"\n\
         [clusters.api]\npanic_threshold = 0\n\
         [clusters.api.outlier]\nconsecutive_failures = 1\nbase_ejection = \"5m\"\nmax_ejected_percent = 100\n\
         [[clusters.api.endpoints]]\naddress = \"{dead}\"\npriority = 0\n\
         [[clusters.api.endpoints]]\naddress = \"{}\"\npriority = 1\n",
        dir.path().join("state").display(),
        nats.url(),
        good.addr
    );
    let (node, addr) = start_node(&text).await;
    let _controller = join(&node).await.unwrap().unwrap();
    let client = Client::new(addr);

    // The subscriber, a separate process speaking NATS only.
    let mut sub = Command::new(python_with_nats())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/py/events_sub.py"))
        .arg(nats.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        let out = sub.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        })
    };
    let seen = |lines: &Arc<Mutex<Vec<String>>>, kind: &str| {
        let prefix = format!("edge.v1.event.{kind}.ev1 ");
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(&prefix))
            .count()
    };
    eventually(
        Duration::from_secs(20),
        "the subscriber is ready",
        || async { lines.lock().unwrap().iter().any(|l| l == "ready") },
    )
    .await;

    // Requests: the first try on the dead endpoint is refused, retried on the good one, and the
    // dead one is ejected: level 0 has nothing usable, traffic fails over to level 1.
    for _ in 0..10 {
        assert_eq!(client.get("events.test", "/").await.status, 200);
    }
    eventually(
        Duration::from_secs(10),
        "ejection and failover events",
        || async { seen(&lines, "endpoint_ejected") >= 1 && seen(&lines, "cluster_failover") >= 1 },
    )
    .await;

    // A push that is not even TOML is rejected.
    let p = publisher(&nats).await;
    let js = async_nats::jetstream::new(p.clone());
    let kv = edgeplane_bus::jetstream::config_bucket(&js, "edge_config", 8, 1)
        .await
        .unwrap();
    kv.put("current", "\u{0}not toml".into()).await.unwrap();
    eventually(Duration::from_secs(10), "rejection event", || async {
        seen(&lines, "config_rejected") >= 1
    })
    .await;

    // More traffic, then a second rejected push as a marker: once its event is in, every sample
    // after the traffic has been taken, and there is still exactly one ejection and one failover.
    for _ in 0..10 {
        assert_eq!(client.get("events.test", "/").await.status, 200);
    }
    kv.put("current", "\u{0}still not toml".into())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the second rejection's event",
        || async { seen(&lines, "config_rejected") >= 2 },
    )
    .await;
    drop(sub.stdin.take());
    let _ = sub.wait();
    reader.join().unwrap();
    for (kind, n) in [
        ("endpoint_ejected", 1),
        ("cluster_failover", 1),
        ("config_rejected", 2),
    ] {
        assert_eq!(
            seen(&lines, kind),
            n,
            "{kind}: {:#?}",
            lines.lock().unwrap()
        );
    }
    let all = lines.lock().unwrap().clone();
    let ejected = all
        .iter()
        .find(|l| l.starts_with("edge.v1.event.endpoint_ejected.ev1 "))
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(ejected.split_once(' ').unwrap().1).unwrap();
    assert_eq!(json["cluster"], "api");
    assert_eq!(json["endpoint"], dead.to_string());
    assert_eq!(json["node"], "ev1");
}
