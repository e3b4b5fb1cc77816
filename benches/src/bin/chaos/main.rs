//! Does a control-plane failure, or a backend's death, change what the data plane serves? Runs fault
//! scenarios against the release binaries (`edgeplane run` and `edgeplane heartbeat` processes, a
//! real nats-server on an ephemeral port, hyper backends in process or in processes of their own, a
//! keep-alive load generator) and prints one table row per scenario: requests, failed requests, and
//! how fast the fleet converged afterwards.
//!
//! `benches/chaos/run.sh [SCENARIO...]` (builds the release binary first), or
//! `cargo run --release -p edgeplane-benches --bin chaos -- [SCENARIO...]`. Scenarios: `outage`
//! (NATS killed 20 s under load, self-registered backends), `outage-long` (the same, 60 s),
//! `convergence` (10 nodes, 20 outages, a push right after each), `backend-kill`, `backend-hang`,
//! `backend-hang-unchecked`, `backend-restart` (a backend process SIGKILLed, SIGSTOPped with or
//! without health checks, or killed and started again under load; `CHAOS_RUNS` runs each), `upgrade`
//! (three binary upgrades in a row under load), `rate-limit` (a fleet rate limit on four nodes under
//! skewed load, NATS killed half-way), `heartbeat-burst` (heartbeats of `CHAOS_HB_INSTANCES` (1,000)
//! instances at `CHAOS_HB_RATE` (250,000) a second for `CHAOS_HB_SECONDS` (10) into one node).
//! Default: `outage convergence`.
//! Environment: `CHAOS_NODES` (10), `CHAOS_CYCLES` (20), `CHAOS_CONNS` (16), `CHAOS_RUNS` (3),
//! `EDGEPLANE_BIN`, `CHAOS_LOGS` (a folder that keeps each scenario's node configs and logs).
//! `chaos backend NAME ADDR` is the backend process those scenarios start.
//! Figures are recorded in RELIABILITY.md.

mod backend_death;
mod convergence;
mod heartbeat_burst;
mod load;
mod outage;
mod procs;
mod rate_limit;
mod upgrade;

use anyhow::bail;
use std::future::Future;
use std::time::{Duration, Instant};

/// One line of the report.
pub struct Row {
    scenario: String,
    requests: u64,
    failed: u64,
    convergence: String,
    notes: String,
}

/// Polls `check` every 20 ms until it is true, or fails with `what` after `limit`.
pub async fn until<F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        if Instant::now() > deadline {
            bail!("timed out after {limit:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A scenario's folder (node configs, state, logs): kept under `$CHAOS_LOGS` when set, else
/// temporary.
pub fn work_dir() -> anyhow::Result<tempfile::TempDir> {
    match std::env::var_os("CHAOS_LOGS") {
        Some(root) => {
            std::fs::create_dir_all(&root)?;
            let mut dir = tempfile::Builder::new().prefix("chaos-").tempdir_in(root)?;
            dir.disable_cleanup(true);
            Ok(dir)
        }
        None => Ok(tempfile::tempdir()?),
    }
}

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => Ok(v.parse()?),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut scenarios: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, name, addr] = &scenarios[..] {
        if mode == "backend" {
            return procs::serve_backend(name, addr).await;
        }
    }
    if scenarios.is_empty() {
        scenarios = vec!["outage".into(), "convergence".into()];
    }
    let conns = env_usize("CHAOS_CONNS", 16)?;
    procs::edgeplane_bin()?;
    let mut rows = Vec::new();
    for s in &scenarios {
        eprintln!("== {s}");
        match s.as_str() {
            "outage" => rows.push(outage::run(Duration::from_secs(20), conns).await?),
            "outage-long" => rows.push(outage::run(Duration::from_secs(60), conns).await?),
            "convergence" => rows.extend(
                convergence::run(&convergence::Settings {
                    nodes: env_usize("CHAOS_NODES", 10)?,
                    cycles: env_usize("CHAOS_CYCLES", 20)?,
                    outage: Duration::from_secs(2),
                    conns,
                })
                .await?,
            ),
            "backend-kill" | "backend-hang" | "backend-hang-unchecked" | "backend-restart" => {
                let fault = match s.as_str() {
                    "backend-kill" => backend_death::Fault::Kill,
                    "backend-hang" => backend_death::Fault::Hang { checked: true },
                    "backend-hang-unchecked" => backend_death::Fault::Hang { checked: false },
                    _ => backend_death::Fault::Restart,
                };
                for run in 1..=env_usize("CHAOS_RUNS", 3)? {
                    rows.push(backend_death::run(fault, conns, run).await?);
                }
            }
            "upgrade" => rows.push(upgrade::run(conns).await?),
            "rate-limit" => rows.push(rate_limit::run().await?),
            "heartbeat-burst" => rows.push(
                heartbeat_burst::run(&heartbeat_burst::Settings {
                    instances: env_usize("CHAOS_HB_INSTANCES", 1_000)? as u64,
                    rate: env_usize("CHAOS_HB_RATE", 250_000)? as u64,
                    seconds: env_usize("CHAOS_HB_SECONDS", 10)? as u64,
                })
                .await?,
            ),
            other => bail!(
                "unknown scenario {other:?} (outage, outage-long, convergence, backend-kill, \
                 backend-hang, backend-hang-unchecked, backend-restart, upgrade, rate-limit, \
                 heartbeat-burst)"
            ),
        }
    }
    println!("| scenario | requests | failed | convergence | notes |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.scenario, r.requests, r.failed, r.convergence, r.notes
        );
    }
    Ok(())
}
