//! Scenario `heartbeat-burst`: a node process with a self-registered cluster of `instances`
//! instances, then heartbeats for them published at a fixed `rate` for `seconds` (round robin over
//! the instances, each instance's sequence numbers rising by one) from one NATS connection. Counts
//! what the node took in (`edgeplane_heartbeats_total` over every result) against what was sent,
//! and what it reports lost (`edgeplane_heartbeats_missed_total`, `edgeplane_bus_slow_consumer_total`).
//! Issue 15's target: none lost at 250,000 a second for 10 s.

use crate::procs::EdgeNode;
use crate::Row;
use edgeplane_bus::encode;
use edgeplane_tests::NatsServer;
use std::time::{Duration, Instant};

/// What to send.
pub struct Settings {
    /// Instances of cluster `api`.
    pub instances: u64,
    /// Heartbeats a second, all instances together.
    pub rate: u64,
    /// For how long.
    pub seconds: u64,
}

const RESULTS: [&str; 4] = ["in_place", "joined", "stale", "ignored"];

/// Heartbeats the node took in so far, every result together.
async fn taken(node: &EdgeNode) -> f64 {
    let mut sum = 0.0;
    for r in RESULTS {
        let name = format!("edgeplane_heartbeats_total{{result=\"{r}\"}}");
        sum += node.metric(&name).await.unwrap_or(0.0);
    }
    sum
}

/// Runs the burst.
pub async fn run(s: &Settings) -> anyhow::Result<Row> {
    let dir = crate::work_dir()?;
    let nats = NatsServer::start(&[]);
    let node = EdgeNode::start(
        "chaos-burst",
        dir.path(),
        &format!("urls = [\"{}\"]", nats.url()),
        "[[routes]]\ncluster = \"api\"\n[clusters.api]\nself_registration = true\n",
    )
    .await?;
    let client = edgeplane_benches::publisher(nats.url()).await?;
    let mut beats = edgeplane_benches::heartbeats(s.instances);
    let endpoints = "edgeplane_cluster_endpoints{cluster=\"api\"}";
    // Registration: every instance beats every 200 ms until the node lists them all (30 s at most).
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.metric(endpoints).await != Some(s.instances as f64) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the instances did not all join within 30 s"
        );
        for (subject, hb) in &mut beats {
            hb.seq += 1;
            client.publish(subject.clone(), encode(hb)).await?;
        }
        client.flush().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = (
        taken(&node).await,
        node.metric("edgeplane_heartbeats_missed_total")
            .await
            .unwrap_or(0.0),
        node.metric("edgeplane_bus_slow_consumer_total")
            .await
            .unwrap_or(0.0),
    );
    let cpu_before = usage(node.pid(), nats.pid());

    // Paced: after every millisecond's tick, send what the rate owes by then.
    let total = s.rate * s.seconds;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut next = 0usize;
    while sent < total {
        let owed = ((start.elapsed().as_secs_f64() * s.rate as f64) as u64).min(total);
        while sent < owed {
            let (subject, hb) = &mut beats[next];
            hb.seq += 1;
            client.publish(subject.clone(), encode(hb)).await?;
            next = (next + 1) % beats.len();
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    client.flush().await?;
    let published = start.elapsed();

    // Settled: the count has not moved for 500 ms (at most 30 s).
    let mut last = taken(&node).await;
    let settle = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = taken(&node).await;
        if now == last || Instant::now() > settle {
            break;
        }
        last = now;
    }
    let got = taken(&node).await - before.0;
    let missed = node
        .metric("edgeplane_heartbeats_missed_total")
        .await
        .unwrap_or(0.0)
        - before.1;
    let slow = node
        .metric("edgeplane_bus_slow_consumer_total")
        .await
        .unwrap_or(0.0)
        - before.2;
    let cpu_after = usage(node.pid(), nats.pid());
    Ok(Row {
        scenario: format!(
            "heartbeat burst: {} instances, {}/s for {} s",
            s.instances, s.rate, s.seconds
        ),
        requests: total,
        failed: total.saturating_sub(got as u64),
        convergence: format!(
            "published at {:.0}/s",
            total as f64 / published.as_secs_f64()
        ),
        notes: format!(
            "taken in: {got}; missed (sequence gaps): {missed}; slow-consumer drops: {slow}; CPU \
             during the burst: node {:.1} s, nats-server {:.1} s",
            cpu_after.0 - cpu_before.0,
            cpu_after.1 - cpu_before.1
        ),
    })
}

/// CPU seconds so far of the node and of nats-server.
fn usage(node: Option<u32>, nats: Option<u32>) -> (f64, f64) {
    let cpu = |pid: Option<u32>| {
        pid.and_then(|p| edgeplane_benches::cpu_seconds(&p.to_string()))
            .unwrap_or(0.0)
    };
    (cpu(node), cpu(nats))
}
