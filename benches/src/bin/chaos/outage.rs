//! Scenario `outage`: a node with a self-registered cluster, two backends announced by `edgeplane
//! heartbeat` processes (1 s interval, 3 s ttl), load on the node, and nats-server killed for a
//! while, longer than the cluster's `remove_after`, then started again. Static stability says no
//! request fails.

use crate::load::Load;
use crate::procs::{heartbeat, EdgeNode};
use crate::{until, Row};
use edgeplane_tests::{Backend, NatsServer};
use std::time::{Duration, Instant};

/// Runs the outage scenario with an outage of `outage` and `remove_after` of 10 s.
pub async fn run(outage: Duration, conns: usize) -> anyhow::Result<Row> {
    let dir = crate::work_dir()?;
    let mut nats = NatsServer::start(&[]);
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let node = EdgeNode::start(
        "chaos-outage",
        dir.path(),
        &format!("urls = [\"{}\"]", nats.url()),
        "[[routes]]\ncluster = \"api\"\n[clusters.api]\nself_registration = true\nremove_after = \"10s\"\n",
    )
    .await?;
    let _hb_a = heartbeat("i-a", a.addr, &nats.url(), "1s")?;
    let _hb_b = heartbeat("i-b", b.addr, &nats.url(), "1s")?;
    let endpoints = "edgeplane_cluster_endpoints{cluster=\"api\"}";
    until(Duration::from_secs(20), "both instances join", || async {
        node.metric(endpoints).await == Some(2.0)
    })
    .await?;
    let load = Load::start(node.addr, conns);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = load.now();
    nats.stop();
    let killed = Instant::now();
    tokio::time::sleep(outage).await;
    let during = load.now();
    nats.restart();
    let back = Instant::now();
    until(Duration::from_secs(10), "the node reconnects", || async {
        node.metric("edgeplane_bus_connected").await == Some(1.0)
    })
    .await?;
    let reconnected = back.elapsed();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (requests, failed) = load.stop().await;
    let endpoints_after = node.metric(endpoints).await.unwrap_or(0.0);
    let expired = node
        .metric("edgeplane_heartbeats_expired_total")
        .await
        .unwrap_or(0.0);
    Ok(Row {
        scenario: format!("NATS killed {} s, self-registered cluster", outage.as_secs()),
        requests,
        failed,
        convergence: format!("reconnected {} ms after restart", reconnected.as_millis()),
        notes: format!(
            "failed before/during/after the outage: {}/{}/{}; outage {} ms; endpoints after: {endpoints_after}; expired: {expired}",
            before.1,
            during.1 - before.1,
            failed - during.1,
            (back - killed).as_millis(),
        ),
    })
}
