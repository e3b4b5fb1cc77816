//! Scenarios `backend-kill`, `backend-hang`, `backend-hang-unchecked`, `backend-restart`: one node, a cluster of two backends
//! in processes of their own (outlier detection with `consecutive_failures = 3`, retries `attempts =
//! 2` on `connect_failure` and `reset`), closed-loop keep-alive load, and 5 s into the run backend `b`
//! is SIGKILLed, SIGSTOPped (it accepts and never answers; `response_header = 1s`; with or without
//! active health checks every second), or SIGKILLed and started again 3 s later on the same address
//! (with health checks). Counts the
//! failed requests, the failures charged to `b` until it was taken out, the requests in flight to it
//! then, and the picks of `b` after that.

use crate::load::Load;
use crate::procs::{BackendProc, EdgeNode};
use crate::{until, Row};
use std::time::{Duration, Instant};

/// What happens to backend `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL.
    Kill,
    /// SIGSTOP: connections are accepted by the kernel, nothing answers; with active health checks
    /// or without.
    Hang {
        /// Whether the cluster has active health checks.
        checked: bool,
    },
    /// SIGKILL, then a new process on the same address 3 s later.
    Restart,
}

/// Seconds of load before the fault, and in all.
const BEFORE: Duration = Duration::from_secs(5);
const RUN: Duration = Duration::from_secs(20);

/// What the node says about backend `b` at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    requests: f64,
    failures: f64,
    in_flight: f64,
}

async fn seen(node: &EdgeNode, b: &str) -> Seen {
    let m = |name: &str| format!("{name}{{cluster=\"api\",endpoint=\"{b}\"}}");
    Seen {
        requests: node
            .metric(&m("edgeplane_endpoint_requests_total"))
            .await
            .unwrap_or(0.0),
        failures: node
            .metric(&m("edgeplane_endpoint_failures_total"))
            .await
            .unwrap_or(0.0),
        in_flight: node
            .metric(&m("edgeplane_endpoint_in_flight"))
            .await
            .unwrap_or(0.0),
    }
}

/// Runs one scenario; `run` numbers it in the report.
pub async fn run(fault: Fault, conns: usize, run: usize) -> anyhow::Result<Row> {
    let dir = crate::work_dir()?;
    let any = ([127, 0, 0, 1], 0).into();
    let a = BackendProc::start("a", any).await?;
    let mut b = BackendProc::start("b", any).await?;
    let checks =
        "[clusters.api.health_check]\npath = \"/\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n";
    let extra = match fault {
        Fault::Kill => String::new(),
        Fault::Hang { checked } => format!(
            "[clusters.api.timeouts]\nresponse_header = \"1s\"\n{}",
            if checked { checks } else { "" }
        ),
        Fault::Restart => checks.to_string(),
    };
    let routing = format!(
        "[[routes]]\ncluster = \"api\"\n[clusters.api]\n[clusters.api.outlier]\nconsecutive_failures = 3\n\
         [clusters.api.retry]\nattempts = 2\non = [\"connect_failure\", \"reset\"]\n{extra}\
         [[clusters.api.endpoints]]\naddress = \"{}\"\n[[clusters.api.endpoints]]\naddress = \"{}\"\n",
        a.addr, b.addr
    );
    let node = EdgeNode::start("chaos-backend", dir.path(), "", &routing).await?;
    let b_addr = b.addr.to_string();
    let ejected = format!("edgeplane_endpoint_ejected{{cluster=\"api\",endpoint=\"{b_addr}\"}}");
    let load = Load::start(node.addr, conns);
    let started = Instant::now();
    tokio::time::sleep(BEFORE).await;
    let before = seen(&node, &b_addr).await;
    let at_fault = load.now();
    let fault_at = Instant::now();
    match fault {
        Fault::Kill | Fault::Restart => b.kill().await?,
        Fault::Hang { .. } => b.pause(true).await?,
    }
    // The most requests seen in flight to b until it is out: what a hang can cost.
    let stuck = std::cell::Cell::new(0f64);
    until(Duration::from_secs(10), "b is ejected", || async {
        stuck.set(stuck.get().max(seen(&node, &b_addr).await.in_flight));
        node.metric(&ejected).await == Some(1.0)
    })
    .await?;
    let out_after = fault_at.elapsed();
    let at_ejection = seen(&node, &b_addr).await;
    let mut back = String::new();
    if fault == Fault::Restart {
        tokio::time::sleep(Duration::from_secs(3).saturating_sub(fault_at.elapsed())).await;
        b = BackendProc::start("b", b.addr).await?;
        let restarted = Instant::now();
        let picks = seen(&node, &b_addr).await.requests;
        until(Duration::from_secs(20), "b takes traffic again", || async {
            seen(&node, &b_addr).await.requests > picks + 100.0
        })
        .await?;
        back = format!(
            "; b back in traffic {} ms after its restart",
            restarted.elapsed().as_millis()
        );
    }
    tokio::time::sleep(RUN.saturating_sub(started.elapsed())).await;
    let elapsed = started.elapsed();
    let end = seen(&node, &b_addr).await;
    let (requests, failed) = load.stop().await;
    if let Fault::Hang { .. } = fault {
        b.pause(false).await?;
    }
    let name = match fault {
        Fault::Kill => "backend SIGKILLed under load",
        Fault::Hang { checked: true } => "backend SIGSTOPped (hangs) under load, health checks",
        Fault::Hang { checked: false } => "backend SIGSTOPped (hangs) under load, no health checks",
        Fault::Restart => "backend SIGKILLed, restarted 3 s later",
    };
    let after_ejection = match fault {
        // The restarted backend is picked again on purpose.
        Fault::Restart => String::new(),
        _ => format!(
            "; picks of b after its ejection: {}",
            end.requests - at_ejection.requests
        ),
    };
    Ok(Row {
        scenario: format!("{name} (run {run})"),
        requests,
        failed,
        convergence: format!("b out {} ms after the fault", out_after.as_millis()),
        notes: format!(
            "{:.0} req/s; failed before/after the fault: {}/{}; failures charged to b until out: {} \
             (in all: {}); most in flight to b until out: {}{after_ejection}{back}",
            requests as f64 / elapsed.as_secs_f64(),
            at_fault.1,
            failed - at_fault.1,
            at_ejection.failures - before.failures,
            end.failures - before.failures,
            stuck.get().max(at_ejection.in_flight),
        ),
    })
}
