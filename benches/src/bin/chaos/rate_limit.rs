//! Scenario `rate-limit`: four node processes share one fleet rate limit (1,000 requests per second
//! for one key, burst 100) over a nats-server; an open-loop load generator offers 2,000 requests per
//! second spread 70/10/10/10 % over the nodes for 40 s, and nats-server is SIGKILLed 20 s in. The
//! admitted rate of the fleet, per 10 s window, is the figure: within ±10 % of 1,000 with the bus
//! up, and still limited (at most 1,000 plus the documented fallback error) with it down.

use crate::procs::EdgeNode;
use crate::{until, Row};
use edgeplane_tests::{Backend, Client, NatsServer};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// The limit, per second.
const RATE: u64 = 1_000;
/// Offered per second, all nodes together.
const OFFERED: f64 = 2_000.0;
/// Each node's part of the offered load.
const SPREAD: [f64; 4] = [0.7, 0.1, 0.1, 0.1];
/// Seconds of load; NATS dies half-way.
const SECONDS: usize = 40;
/// Connections per node.
const CONNS: usize = 8;

/// Per second and node: admitted, limited, anything else.
struct Tally {
    cells: Vec<[AtomicU64; 3]>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            cells: (0..SECONDS * SPREAD.len())
                .map(|_| Default::default())
                .collect(),
        }
    }

    fn add(&self, second: usize, node: usize, outcome: usize) {
        if let Some(c) = self.cells.get(second * SPREAD.len() + node) {
            c[outcome].fetch_add(1, Relaxed);
        }
    }

    fn get(&self, second: usize, node: usize, outcome: usize) -> u64 {
        self.cells
            .get(second * SPREAD.len() + node)
            .map_or(0, |c| c[outcome].load(Relaxed))
    }
}

/// Runs the scenario.
pub async fn run() -> anyhow::Result<Row> {
    let dir = crate::work_dir()?;
    let mut nats = NatsServer::start(&[]);
    let backend = Backend::named("b").await;
    let routing = format!(
        "[[routes]]\nname = \"api\"\ncluster = \"b\"\n[[routes.rate_limits]]\nname = \"fleet\"\n\
         rate = {RATE}\nburst = 100\nkey = [\"route\"]\nscope = \"fleet\"\n\
         [clusters.b]\n[[clusters.b.endpoints]]\naddress = \"{}\"\n",
        backend.addr
    );
    let mut nodes = Vec::new();
    for i in 0..SPREAD.len() {
        let nats_lines = format!("urls = [\"{}\"]", nats.url());
        nodes.push(EdgeNode::start(&format!("rl-{i}"), dir.path(), &nats_lines, &routing).await?);
    }
    let sharing = "edgeplane_rate_limit_fleet_nodes{route=\"api\",cluster=\"\",limit=\"fleet\"}";
    until(
        Duration::from_secs(20),
        "every node sees the others",
        || async {
            for n in &nodes {
                if n.metric(sharing).await != Some(SPREAD.len() as f64) {
                    return false;
                }
            }
            true
        },
    )
    .await?;

    let tally = Arc::new(Tally::new());
    let start = tokio::time::Instant::now();
    let end = start + Duration::from_secs(SECONDS as u64);
    let mut tasks = Vec::new();
    for (i, (node, part)) in nodes.iter().zip(SPREAD).enumerate() {
        let per_conn = OFFERED * part / CONNS as f64;
        for _ in 0..CONNS {
            let (tally, client) = (tally.clone(), Client::new(node.addr));
            tasks.push(tokio::spawn(async move {
                let mut tick =
                    tokio::time::interval_at(start, Duration::from_secs_f64(1.0 / per_conn));
                loop {
                    let at = tick.tick().await;
                    if at >= end {
                        return;
                    }
                    let second = (at - start).as_secs() as usize;
                    let outcome = match client.try_get("rl.test", "/").await {
                        Ok(r) if r.status == 200 => 0,
                        Ok(r) if r.status == 429 => 1,
                        _ => 2,
                    };
                    tally.add(second, i, outcome);
                }
            }));
        }
    }
    tokio::time::sleep_until(start + Duration::from_secs(SECONDS as u64 / 2)).await;
    nats.stop();
    for t in tasks {
        let _ = t.await;
    }
    eprintln!("NATS killed at {} s", SECONDS / 2);

    let window = |from: usize, to: usize| -> (f64, Vec<u64>) {
        let per_node: Vec<u64> = (0..SPREAD.len())
            .map(|n| (from..to).map(|s| tally.get(s, n, 0)).sum())
            .collect();
        let total: u64 = per_node.iter().sum();
        (total as f64 / (to - from) as f64, per_node)
    };
    let mut windows = Vec::new();
    let (mut offered, mut errors) = (0, 0);
    for s in 0..SECONDS {
        for n in 0..SPREAD.len() {
            offered += (0..3).map(|o| tally.get(s, n, o)).sum::<u64>();
            errors += tally.get(s, n, 2);
        }
    }
    for w in (0..SECONDS).step_by(10) {
        let (rate, per_node) = window(w, w + 10);
        let bus = if w >= SECONDS / 2 {
            "NATS down"
        } else {
            "NATS up"
        };
        eprintln!(
            "{w:>2}-{:>2} s ({bus}): admitted {rate:.0}/s, per node {per_node:?}",
            w + 10
        );
        windows.push(format!("{rate:.0}/s ({bus})"));
    }
    Ok(Row {
        scenario: format!(
            "fleet limit {RATE}/s, 4 nodes, {OFFERED:.0}/s offered 70/10/10/10 %, NATS killed at {} s",
            SECONDS / 2
        ),
        requests: offered,
        failed: errors,
        convergence: format!("admitted per 10 s window: {}", windows.join(", ")),
        notes: "failed = answers neither 200 nor 429".into(),
    })
}
