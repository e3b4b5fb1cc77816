//! Heartbeats across a fleet: do `NODES` nodes all take in the heartbeats of `INSTANCES` instances
//! beating once a second, without slow-consumer drops (issue 15: 10,000 instances seen by 100 nodes)?
//!
//! Starts a real nats-server (ephemeral port, JetStream in a temp dir) and `NODES` in-process nodes,
//! each with its own NATS connection and a self-registered cluster. A publisher registers the
//! instances (beating them until every node lists all of them), then sends each instance's heartbeat
//! once a second, spread over ten slices per second, for `SECONDS`. Reports per node the heartbeats
//! taken in against those sent, the heartbeats missed by sequence gaps, slow-consumer events, and the
//! server's and the nodes' process RSS and CPU.
//!
//! `cargo run --release -p edgeplane-benches --bin heartbeat-fleet [-- NODES INSTANCES SECONDS]`

use edgeplane_bus::encode;
use edgeplane_proxy::NodeHandle;
use edgeplane_tests::NatsServer;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let [nodes, instances, seconds] = edgeplane_benches::numeric_args([100, 10_000, 20])?;
    let nats = NatsServer::start(&[]);
    let state = tempfile::tempdir()?;

    let routing = "[[routes]]\ncluster = \"api\"\n[clusters.api]\nself_registration = true\n";
    let fleet = edgeplane_benches::start_fleet(nodes, &nats.url(), state.path(), routing).await?;
    let client = edgeplane_benches::publisher(nats.url()).await?;
    let mut beats = edgeplane_benches::heartbeats(instances);

    // Registration: beat every instance once a second until every node lists all of them.
    let joined = |fleet: &[(NodeHandle, _)]| {
        fleet
            .iter()
            .filter(|(n, _)| n.tables().load().clusters[0].endpoints.len() == instances as usize)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while joined(&fleet) < fleet.len() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} of {nodes} nodes list all {instances} instances after 120 s",
            joined(&fleet)
        );
        for (subject, hb) in &mut beats {
            hb.seq += 1;
            client.publish(subject.clone(), encode(hb)).await?;
        }
        client.flush().await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let counters = |fleet: &[(NodeHandle, edgeplane_proxy::fleet::Controller)]| {
        fleet
            .iter()
            .map(|(_, c)| {
                (
                    c.composer.stats.heartbeats.load(Relaxed),
                    c.composer.missed_heartbeats(),
                    c.stats.slow_consumers.load(Relaxed),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = counters(&fleet);
    // Each instance once a second, in ten slices a tenth of a second apart.
    let slice = (instances as usize).div_ceil(10);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let started = Instant::now();
    let mut sent = 0u64;
    for round in 0..seconds * 10 {
        tick.tick().await;
        let part = (round % 10) as usize;
        for (subject, hb) in beats.iter_mut().skip(part * slice).take(slice) {
            hb.seq += 1;
            client.publish(subject.clone(), encode(hb)).await?;
            sent += 1;
        }
        client.flush().await?;
    }
    let publishing = started.elapsed();
    // What is still on its way arrives within a second or two.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let taken = counters(&fleet)
            .iter()
            .zip(&before)
            .map(|(a, b)| a.0 - b.0)
            .min()
            .unwrap_or(0);
        if taken >= sent || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = counters(&fleet);
    let taken: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a.0 - b.0).collect();
    let missed: u64 = after.iter().zip(&before).map(|(a, b)| a.1 - b.1).sum();
    let slow: u64 = after.iter().zip(&before).map(|(a, b)| a.2 - b.2).sum();
    let short = taken.iter().filter(|&&t| t < sent).count();
    println!(
        "{instances} instances at 1/s seen by {nodes} nodes for {seconds} s: {sent} heartbeats sent \
         in {:.1} s ({:.0}/s, {:.0} deliveries/s); taken per node min {} max {}; nodes short {short}; \
         missed by sequence gaps {missed}; slow-consumer events {slow}",
        publishing.as_secs_f64(),
        sent as f64 / publishing.as_secs_f64(),
        (sent * nodes) as f64 / publishing.as_secs_f64(),
        taken.iter().min().unwrap_or(&0),
        taken.iter().max().unwrap_or(&0),
    );
    edgeplane_benches::print_usage(nats.pid());
    Ok(())
}
