//! Scenario `convergence`: a fleet of node processes following one nats-server, under load. Each
//! cycle kills the server, keeps it down for a while, starts it again and at once pushes a new
//! revision; convergence is the time from the server being reachable again until every node has
//! acknowledged the revision as applied. Also counts the server's JetStream consumers before the
//! cycles and after them (once ephemeral consumers of dropped watches have expired), to show that
//! reconnects leak none.

use crate::load::Load;
use crate::procs::EdgeNode;
use crate::Row;
use anyhow::Context as _;
use async_nats::jetstream;
use edgeplane_bus::wire::{AckStatus, ConfigAck};
use edgeplane_bus::{decode, BusOptions};
use edgeplane_tests::{Backend, NatsServer};
use futures_util::StreamExt;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The scenario's settings.
pub struct Settings {
    /// Node processes.
    pub nodes: usize,
    /// Outages.
    pub cycles: usize,
    /// How long each outage lasts.
    pub outage: Duration,
    /// Load connections (on the first node).
    pub conns: usize,
}

fn document(backend: &Backend, cycle: usize) -> String {
    format!(
        "[[routes]]\ncluster = \"api\"\n[[routes]]\npath_prefix = \"/cycle-{cycle}/\"\ncluster = \"api\"\n\
         [clusters.api]\n[[clusters.api.endpoints]]\naddress = \"{}\"\n",
        backend.addr
    )
}

async fn publisher(nats: &NatsServer) -> anyhow::Result<async_nats::Client> {
    Ok(BusOptions {
        urls: vec![nats.url()],
        retry_initial: false,
        ..BusOptions::default()
    }
    .connect(Default::default())
    .await?)
}

/// JetStream consumers on the config bucket's and the scaling stream's streams.
async fn consumers(js: &jetstream::Context) -> u64 {
    let mut n = 0;
    for name in ["KV_edge_config", "edge_scale"] {
        if let Ok(mut s) = js.get_stream(name).await {
            if let Ok(info) = s.info().await {
                n += info.state.consumer_count as u64;
            }
        }
    }
    n
}

/// Runs the scenario; returns the convergence row and the consumer-count row.
pub async fn run(s: &Settings) -> anyhow::Result<Vec<Row>> {
    let dir = crate::work_dir()?;
    let mut nats = NatsServer::start(&[]);
    let backend = Backend::named("a").await;
    let mut fleet = Vec::new();
    for i in 0..s.nodes {
        let node = EdgeNode::start(
            &format!("conv-{i}"),
            dir.path(),
            &format!("urls = [\"{}\"]", nats.url()),
            &document(&backend, 0),
        )
        .await?;
        fleet.push(node);
    }
    // Every node follows: the first push is applied everywhere.
    let ids: BTreeSet<String> = fleet.iter().map(|n| n.id.clone()).collect();
    push_and_wait(&nats, &ids, &document(&backend, 1)).await?;
    let js = jetstream::new(publisher(&nats).await?);
    let consumers_before = consumers(&js).await;
    let load = Load::start(fleet[0].addr, s.conns);
    let mut times = Vec::new();
    for cycle in 0..s.cycles {
        nats.stop();
        tokio::time::sleep(s.outage).await;
        nats.restart();
        let back = Instant::now();
        let steps = push_and_wait(&nats, &ids, &document(&backend, cycle + 2)).await?;
        times.push((back.elapsed(), steps));
    }
    let (requests, failed) = load.stop().await;
    times.sort_by_key(|t| t.0);
    let pct =
        |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1].0;
    let slowest = times.last().map(|t| t.1.clone()).unwrap_or_default();
    let js = jetstream::new(publisher(&nats).await?);
    // Ephemeral consumers of dropped watches go once they have had no interest for 30 s.
    let settle = Instant::now();
    let mut consumers_after = consumers(&js).await;
    while consumers_after > consumers_before && settle.elapsed() < Duration::from_secs(45) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        consumers_after = consumers(&js).await;
    }
    Ok(vec![
        Row {
            scenario: format!(
                "NATS killed {} times ({} ms each), {} nodes, push right after",
                s.cycles,
                s.outage.as_millis(),
                s.nodes
            ),
            requests,
            failed,
            convergence: format!(
                "p50 {} ms, p99 {} ms, max {} ms",
                pct(0.5).as_millis(),
                pct(0.99).as_millis(),
                pct(1.0).as_millis()
            ),
            notes: format!(
                "server reachable again -> every node acked the new revision; slowest cycle: {slowest}"
            ),
        },
        Row {
            scenario: format!("JetStream consumers across {} reconnects", s.cycles),
            requests: 0,
            failed: 0,
            convergence: format!(
                "{consumers_before} before, {consumers_after} after ({} s to settle)",
                settle.elapsed().as_secs()
            ),
            notes: "config watch + scaling follower per node".into(),
        },
    ])
}

/// Connects (retrying while the server starts), writes `doc` as a new revision and waits until
/// every node of `ids` acknowledged it as applied. Returns when each step ended, and when each node
/// acknowledged.
async fn push_and_wait(
    nats: &NatsServer,
    ids: &BTreeSet<String>,
    doc: &str,
) -> anyhow::Result<String> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(30);
    let client = loop {
        match publisher(nats).await {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    let mut acks = client.subscribe("edge.v1.ack.*").await?;
    client.flush().await?;
    let kv = edgeplane_bus::jetstream::config_bucket(
        &jetstream::new(client.clone()),
        "edge_config",
        64,
        1,
    )
    .await?;
    let connected = start.elapsed();
    let revision = kv.put("current", doc.to_string().into()).await?;
    let written = start.elapsed();
    let mut applied = BTreeSet::new();
    let mut last = Vec::new();
    while applied != *ids {
        let msg = tokio::time::timeout_at(deadline.into(), acks.next())
            .await
            .with_context(|| format!("revision {revision}: only {applied:?} applied in time"))?
            .context("ack subscription ended")?;
        if let Ok(ack) = decode::<ConfigAck>(&msg.payload) {
            if ack.revision == revision && ack.status == AckStatus::Applied {
                last.push(format!("{} {} ms", ack.node, start.elapsed().as_millis()));
                applied.insert(ack.node);
            }
        }
    }
    Ok(format!(
        "publisher connected {} ms, written {} ms, acks: {}",
        connected.as_millis(),
        written.as_millis(),
        last.join(", ")
    ))
}
