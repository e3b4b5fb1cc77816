//! Scenario `upgrade`: one node with two backends under closed-loop load, keep-alive clients and
//! clients opening a connection per request, and three binary upgrades in a row (`edgeplane run
//! --upgrade`, 5 s apart). Counts the failed requests (refused connections included) and how long
//! each old process took to drain and exit.

use crate::load::Load;
use crate::procs::{BackendProc, EdgeNode};
use crate::Row;
use std::time::{Duration, Instant};

/// Seconds between upgrades, and of load before the first and after the last.
const STEP: Duration = Duration::from_secs(5);

/// Runs the scenario.
pub async fn run(conns: usize) -> anyhow::Result<Row> {
    let dir = crate::work_dir()?;
    let any = ([127, 0, 0, 1], 0).into();
    let a = BackendProc::start("a", any).await?;
    let b = BackendProc::start("b", any).await?;
    let routing = format!(
        "[[routes]]\ncluster = \"api\"\n[clusters.api]\n\
         [[clusters.api.endpoints]]\naddress = \"{}\"\n[[clusters.api.endpoints]]\naddress = \"{}\"\n",
        a.addr, b.addr
    );
    let mut node = EdgeNode::start("chaos-upgrade", dir.path(), "", &routing).await?;
    let fresh = (conns / 4).max(1);
    let keep_alive = Load::start(node.addr, conns);
    let reconnecting = Load::start_with(node.addr, fresh, false);
    let started = Instant::now();
    let mut exits = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(STEP).await;
        exits.push(node.upgrade().await?);
    }
    tokio::time::sleep(STEP).await;
    let elapsed = started.elapsed();
    let (k_requests, k_failed) = keep_alive.stop().await;
    let (f_requests, f_failed) = reconnecting.stop().await;
    let requests = k_requests + f_requests;
    let exits: Vec<String> = exits
        .iter()
        .map(|d| format!("{} ms", d.as_millis()))
        .collect();
    Ok(Row {
        scenario: "3 binary upgrades in a row under load".into(),
        requests,
        failed: k_failed + f_failed,
        convergence: format!("old processes exited after {}", exits.join(", ")),
        notes: format!(
            "{:.0} req/s; {conns} keep-alive clients ({k_failed} failed of {k_requests}), {fresh} \
             connection-per-request clients ({f_failed} failed of {f_requests})",
            requests as f64 / elapsed.as_secs_f64()
        ),
    })
}
