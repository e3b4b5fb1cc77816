//! A reconnect storm at fleet scale: `NODES` in-process nodes, each with its own NATS connection,
//! config watch, scaling consumer and status responder, on one real nats-server that is SIGKILLed
//! and started again `CYCLES` times (down `DOWN_MS`, 2,000 by default). Per cycle, counted from the
//! moment the server accepts connections again: when each node was connected again (how the
//! reconnect delay's jitter spreads the fleet), and when every node had acknowledged a push written
//! at once by a fresh publisher connection. Then the server's consumer count on the config bucket
//! and the scaling stream against the count before the cycles (consumers of connections that are
//! gone disappear after their 30 s inactivity threshold). Prints the server's and the nodes' CPU.
//!
//! `cargo run --release -p edgeplane-benches --bin reconnect-fleet [-- NODES CYCLES DOWN_MS]`

use anyhow::Context as _;
use edgeplane_benches::routing_text;
use edgeplane_bus::decode;
use edgeplane_bus::wire::{AckStatus, ConfigAck};
use edgeplane_tests::NatsServer;
use futures_util::StreamExt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let [nodes, cycles, down_ms] = edgeplane_benches::numeric_args([100, 10, 2_000])?;
    let mut nats = NatsServer::start(&[]);
    let state = tempfile::tempdir()?;
    let fleet = edgeplane_benches::start_fleet(
        nodes,
        &nats.url(),
        state.path(),
        &routing_text(1, 3, "round_robin", 0),
    )
    .await?;
    // Warm-up: every node has applied a first push (so each has made its watch and consumer).
    let warm = push_and_wait(nats.url(), 0, nodes, Duration::from_secs(60)).await?;
    println!("warm-up push applied on all {nodes} nodes in {warm:.0?}");
    let consumers_before = consumers(&nats.url()).await?;

    let mut reconnects = Vec::new();
    let mut spreads = Vec::new();
    let mut converged = Vec::new();
    let nodes_cpu = edgeplane_benches::cpu_seconds("self").unwrap_or(0.0);
    let mut server_cpu = 0.0;
    for cycle in 1..=cycles {
        nats.stop();
        tokio::time::sleep(Duration::from_millis(down_ms)).await;
        nats.start_again();
        let back = Instant::now();
        let pushing = tokio::spawn(push_and_wait(
            nats.url(),
            cycle as u16,
            nodes,
            Duration::from_secs(30),
        ));
        // Each node's reconnection, seen by polling its connection flag every 2 ms.
        let mut seen: Vec<Option<Duration>> = vec![None; fleet.len()];
        let deadline = back + Duration::from_secs(30);
        while seen.iter().any(Option::is_none) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "cycle {cycle}: {} of {nodes} nodes connected again within 30 s",
                seen.iter().flatten().count()
            );
            for (slot, (_, controller)) in seen.iter_mut().zip(&fleet) {
                if slot.is_none() && controller.stats.connected.load(Relaxed) {
                    *slot = Some(back.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut times: Vec<Duration> = seen.into_iter().flatten().collect();
        times.sort();
        let applied = pushing.await??;
        // The restarted server's CPU from its start (recovery, reconnections, the push).
        server_cpu += nats
            .pid()
            .and_then(|p| edgeplane_benches::cpu_seconds(&p.to_string()))
            .unwrap_or(0.0);
        println!(
            "cycle {cycle}: nodes connected again {:.0?} .. {:.0?} after the server was back (median {:.0?}); push applied by all {:.0?} after it",
            times[0],
            times[times.len() - 1],
            times[times.len() / 2],
            applied
        );
        spreads.push(times[times.len() - 1] - times[0]);
        reconnects.extend(times);
        converged.push(applied);
    }
    let nodes_cpu = edgeplane_benches::cpu_seconds("self").unwrap_or(0.0) - nodes_cpu;

    let settle = Instant::now();
    let consumers_after = loop {
        let now = consumers(&nats.url()).await?;
        if now <= consumers_before || settle.elapsed() > Duration::from_secs(60) {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "reconnect (server back -> node connected), {} samples: {}",
        reconnects.len(),
        summary(&mut reconnects)
    );
    println!(
        "spread within a cycle (first -> last node): {}",
        summary(&mut spreads)
    );
    println!(
        "server back -> push applied by all {nodes} nodes, {cycles} cycles: {}",
        summary(&mut converged)
    );
    println!(
        "consumers on the config bucket and the scaling stream: {consumers_before} before, {consumers_after} after ({:.0?} to settle)",
        settle.elapsed()
    );
    println!(
        "CPU: nats-server {server_cpu:.1} s from its restarts until each push was applied \
         everywhere (all cycles), the nodes' process {nodes_cpu:.1} s during the cycles"
    );
    edgeplane_benches::print_usage(nats.pid());
    Ok(())
}

/// Connects a publisher, writes routing document `salt` and waits until `nodes` nodes acked it as
/// applied; the time from the call.
async fn push_and_wait(
    url: String,
    salt: u16,
    nodes: u64,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let client = edgeplane_benches::publisher(url).await?;
    let mut acks = client.subscribe("edge.v1.ack.*").await?;
    client.flush().await?;
    let js = async_nats::jetstream::new(client.clone());
    let kv = edgeplane_bus::jetstream::config_bucket(&js, "edge_config", 64, 1).await?;
    let revision = kv
        .put(
            "current",
            routing_text(1, 3, "round_robin", 1 + salt).into(),
        )
        .await?;
    let mut applied = 0;
    while applied < nodes {
        let msg = tokio::time::timeout_at((started + limit).into(), acks.next())
            .await
            .with_context(|| format!("{applied} of {nodes} nodes acked within {limit:?}"))?
            .context("ack subscription ended")?;
        let ack: ConfigAck = decode(&msg.payload)?;
        if ack.revision == revision && ack.status == AckStatus::Applied {
            applied += 1;
        }
    }
    Ok(started.elapsed())
}

/// Consumers on the config bucket's stream and the scaling stream.
async fn consumers(url: &str) -> anyhow::Result<usize> {
    let client = edgeplane_benches::publisher(url.to_string()).await?;
    let js = async_nats::jetstream::new(client);
    let mut total = 0;
    for name in ["KV_edge_config", "edge_scale"] {
        let mut stream = js.get_stream(name).await?;
        total += stream.info().await?.state.consumer_count;
    }
    Ok(total)
}

/// p50, p99 and max of `samples`, in milliseconds.
fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let pct = |p: f64| {
        samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1]
            .as_secs_f64()
            * 1e3
    };
    format!(
        "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    )
}
