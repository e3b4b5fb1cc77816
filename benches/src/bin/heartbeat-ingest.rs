//! How many heartbeats per second can one node's controller take in on one core (target ≥ 200k/s,
//! with zero rebuilds for known instances)?
//!
//! Starts a real nats-server (ephemeral port, JetStream in a temp dir) and one in-process node whose
//! runtime is a single thread (its NATS client, controller and proxy all run there). A publisher on
//! another thread registers `INSTANCES` instances in a self-registering cluster, waits until they
//! joined, then sends `HEARTBEATS` heartbeats for them as fast as the node takes them in (it keeps at
//! most 50 000 ahead of the node, so nothing is dropped as a slow consumer). Reports the rate, the CPU
//! time of the node's thread per heartbeat, and the rebuilds during the run.
//!
//! `cargo run --release -p edgeplane-benches --bin heartbeat-ingest [-- HEARTBEATS INSTANCES]`

use anyhow::Context as _;
use edgeplane_bus::encode;
use edgeplane_proxy::fleet::join;
use edgeplane_proxy::NodeHandle;
use edgeplane_tests::NatsServer;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const AHEAD: u64 = 50_000;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2_000_000);
    let instances: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_000);
    let nats = NatsServer::start(&[]);
    let state = tempfile::tempdir()?;
    let text = format!(
        "[node]\nid = \"n1\"\nworkers = 1\nstate_dir = \"{}\"\n[node.nats]\nurls = [\"{}\"]\n\
         [[node.listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"api\"\n\
         [clusters.api]\nself_registration = true\n",
        state.path().display(),
        nats.url()
    );
    let config = edgeplane_config::from_toml(&text)?;

    // The node on its own single-threaded runtime; it hands back its counters and its thread id.
    let (tx, rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let node_thread = std::thread::spawn(move || -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let node = NodeHandle::start(&config).await?;
            let controller = join(&node).await?.context("node follows NATS")?;
            let tid = std::fs::read_link("/proc/thread-self")?;
            tx.send((controller.composer.clone(), tid, node.tables().clone()))?;
            let _ = stop_rx.await;
            drop(controller);
            Ok(())
        })
    });
    let (composer, tid, tables) = rx.recv()?;
    let stats = &composer.stats;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = edgeplane_benches::publisher(nats.url()).await?;
        let mut beats = edgeplane_benches::heartbeats(instances);

        // Registration: beat every instance until all joined (the node subscribes in the background).
        let deadline = Instant::now() + Duration::from_secs(30);
        while tables.load().clusters[0].endpoints.len() < instances as usize {
            anyhow::ensure!(Instant::now() < deadline, "instances did not join in 30 s");
            for (subject, hb) in &mut beats {
                hb.seq += 1;
                client.publish(subject.clone(), encode(hb)).await?;
            }
            client.flush().await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Let the registration beats drain, then measure.
        let mut last = stats.heartbeats.load(Relaxed);
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = stats.heartbeats.load(Relaxed);
            if now == last {
                break;
            }
            last = now;
        }
        let base = stats.heartbeats.load(Relaxed);
        let rebuilds = stats.rebuilds.load(Relaxed);
        let in_place = stats.heartbeats_in_place.load(Relaxed);
        let cpu0 = thread_cpu(&tid)?;
        let started = Instant::now();
        let mut sent = 0u64;
        while sent < total {
            for (subject, hb) in beats.iter_mut().take((total - sent) as usize) {
                while sent - (stats.heartbeats.load(Relaxed) - base) >= AHEAD {
                    client.flush().await?;
                    tokio::task::yield_now().await;
                }
                hb.seq += 1;
                client.publish(subject.clone(), encode(hb)).await?;
                sent += 1;
            }
        }
        client.flush().await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while stats.heartbeats.load(Relaxed) - base < total {
            anyhow::ensure!(
                Instant::now() < deadline,
                "node took in {} of {total} heartbeats",
                stats.heartbeats.load(Relaxed) - base
            );
            tokio::task::yield_now().await;
        }
        let elapsed = started.elapsed();
        let cpu = thread_cpu(&tid)? - cpu0;
        println!(
            "heartbeat ingestion, {total} heartbeats over {instances} known instances: {:.0} /s wall, \
             node thread CPU {:.2} µs per heartbeat ({:.0} /s per core); in place {}, rebuilds {}, stale {}",
            total as f64 / elapsed.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / total as f64,
            total as f64 / cpu.as_secs_f64(),
            stats.heartbeats_in_place.load(Relaxed) - in_place,
            stats.rebuilds.load(Relaxed) - rebuilds,
            stats.heartbeats_stale.load(Relaxed),
        );
        anyhow::Ok(())
    })?;
    let _ = stop_tx.send(());
    node_thread
        .join()
        .map_err(|_| anyhow::anyhow!("node thread panicked"))??;
    Ok(())
}

/// User plus system CPU time of thread `tid` (`/proc/thread-self` of that thread: `PID/task/TID`).
fn thread_cpu(tid: &std::path::Path) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(std::path::Path::new("/proc").join(tid).join("stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').context("odd stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // USER_HZ is 100 on Linux.
    Ok(Duration::from_millis(ticks * 10))
}
