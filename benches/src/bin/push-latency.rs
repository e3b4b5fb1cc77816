//! How long from a config push until every node of a 10-node fleet has applied it (target p99 ≤ 20 ms
//! on loopback)? Starts a real nats-server (ephemeral port, JetStream in a temp dir), 10 in-process
//! nodes following the config bucket, then pushes 100 documents one after the other and measures,
//! for each, the time from the KV write until the tenth `applied` ack.
//!
//! `cargo run --release -p edgeplane-benches --bin push-latency [-- PUSHES NODES]`

use anyhow::{bail, Context as _};
use edgeplane_benches::routing_text;
use edgeplane_bus::decode;
use edgeplane_bus::wire::{AckStatus, ConfigAck};
use edgeplane_tests::NatsServer;
use futures_util::StreamExt;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let [pushes, nodes] = edgeplane_benches::numeric_args([100, 10])?;
    let nats = NatsServer::start(&[]);
    let state = tempfile::tempdir()?;

    let routing = routing_text(1, 3, "round_robin", 0);
    let _fleet = edgeplane_benches::start_fleet(nodes, &nats.url(), state.path(), &routing).await?;
    let client = edgeplane_benches::publisher(nats.url()).await?;
    let js = async_nats::jetstream::new(client.clone());
    let kv = edgeplane_bus::jetstream::config_bucket(&js, "edge_config", 64, 1).await?;
    let mut acks = client.subscribe("edge.v1.ack.*").await?;
    client.flush().await?;

    // Warm-up: one push every node must apply before measuring (nodes connect in the background).
    let mut samples = Vec::new();
    for i in 0..=pushes {
        let doc = routing_text(1, 3, "round_robin", 1 + i as u16);
        let started = Instant::now();
        let revision = kv.put("current", doc.into()).await?;
        let mut applied = 0;
        while applied < nodes {
            // The warm-up waits for every node to have connected and made its watch.
            let wait = Duration::from_secs(if i == 0 { 30 + nodes / 10 } else { 5 });
            let msg = tokio::time::timeout(wait, acks.next())
                .await
                .with_context(|| {
                    format!("push {i}: {applied} of {nodes} nodes acked within {wait:?}")
                })?
                .context("ack subscription ended")?;
            let ack: ConfigAck = decode(&msg.payload)?;
            if ack.revision == revision {
                if ack.status != AckStatus::Applied {
                    bail!(
                        "node {} rejected revision {revision}: {:?}",
                        ack.node,
                        ack.errors
                    );
                }
                applied += 1;
            }
        }
        if i > 0 {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    let pct =
        |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "push -> applied on all {nodes} nodes, {} pushes: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.90).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
    edgeplane_benches::print_usage(nats.pid());
    Ok(())
}
