//! edgeplane's benchmarks.
//!
//! - `benches/load/run.sh`: the side-by-side load harness against nginx and HAProxy (a script: it drives
//!   external programs).
//! - `benches/tables.rs` (criterion): how long a rebuild and swap of the tables takes at 10,000
//!   endpoints, and what one balancer pick costs at 3, 100 and 10,000 endpoints.
//! - `src/bin/push-latency.rs`: push → applied on every node of a 10-node fleet over a real
//!   nats-server, p50/p99 over 100 pushes.
//! - `src/bin/heartbeat-fleet.rs`, `src/bin/heartbeat-ingest.rs`: heartbeats taken in by many nodes,
//!   and by one node per second of CPU.
//! - `src/bin/reconnect-fleet.rs`: a fleet reconnecting after nats-server restarts: the spread of the
//!   reconnections, the push right after, the server's consumers.
//! - `src/bin/chaos/`: fault scenarios against the release binaries (RELIABILITY.md).
//!
//! Results and the commands that produced them are in BENCHMARKS.md.

use std::fmt::Write as _;

/// A routing document with `clusters` clusters of `per_cluster` endpoints each (unique loopback
/// addresses), one route per cluster, and `salt` folded into the last endpoint so that two documents
/// can differ by one endpoint.
pub fn routing_text(clusters: usize, per_cluster: usize, policy: &str, salt: u16) -> String {
    let mut text = String::new();
    for c in 0..clusters {
        let _ = write!(
            text,
            "[[routes]]\nname = \"r{c}\"\npath_prefix = \"/c{c}/\"\ncluster = \"c{c}\"\n"
        );
    }
    for c in 0..clusters {
        let _ = write!(text, "[clusters.c{c}]\nbalancing = \"{policy}\"\n");
        for e in 0..per_cluster {
            let n = c * per_cluster + e;
            let port = if e + 1 == per_cluster {
                20_000 + salt
            } else {
                1_000 + (n % 60_000) as u16
            };
            let _ = write!(
                text,
                "[[clusters.c{c}.endpoints]]\naddress = \"127.{}.{}.{}:{port}\"\nweight = {}\n",
                (n >> 16) & 0xff,
                (n >> 8) & 0xff,
                n & 0xff,
                1 + n % 5
            );
        }
    }
    text
}

/// Prints the RSS and CPU time of nats-server (`nats_pid`) and of this process (the in-process nodes).
pub fn print_usage(nats_pid: Option<u32>) {
    for (who, pid) in [
        ("nats-server", nats_pid.map(|p| p.to_string())),
        ("the nodes' process", Some("self".to_string())),
    ] {
        if let Some(usage) = pid.and_then(|p| process_usage(&p)) {
            println!("{who}: {usage}");
        }
    }
}

/// Peak and current RSS and CPU time so far of process `pid` (a number or `self`), from /proc.
pub fn process_usage(pid: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
    };
    let cpu = cpu_seconds(pid)?;
    Some(format!(
        "RSS {:.0} MiB (peak {:.0} MiB), CPU {cpu:.1} s",
        kib("VmRSS:")? / 1024.0,
        kib("VmHWM:")? / 1024.0
    ))
}

/// The program's first `N` arguments as numbers, `defaults[i]` for each one not given.
pub fn numeric_args<const N: usize>(defaults: [u64; N]) -> anyhow::Result<[u64; N]> {
    use anyhow::Context as _;
    let mut out = defaults;
    for (slot, arg) in out.iter_mut().zip(std::env::args().skip(1)) {
        *slot = arg
            .parse()
            .with_context(|| format!("argument {arg:?} is not a number"))?;
    }
    Ok(out)
}

/// CPU time (user + system) so far of process `pid` (a number or `self`), in seconds, from /proc.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// Heartbeats of `instances` instances `i-0`, `i-1`… of cluster `api` (unique loopback addresses,
/// healthy, a long ttl), each with the subject it is published on; bump `seq` before each send.
pub fn heartbeats(instances: u64) -> Vec<(String, edgeplane_bus::wire::Heartbeat)> {
    let subjects = edgeplane_bus::Subjects::default();
    (0..instances)
        .map(|i| {
            let id = format!("i-{i}");
            let hb = edgeplane_bus::wire::Heartbeat {
                schema: 1,
                instance: id.clone(),
                boot_id: "bench".into(),
                seq: 0,
                address: format!("127.1.{}.{}:8080", (i >> 8) & 0xff, i & 0xff),
                weight: 1,
                zone: None,
                health: 100,
                in_flight: 2,
                cpu: 0.25,
                latency_ms: 3.5,
                ttl_ms: 600_000,
                draining: false,
            };
            (subjects.heartbeat("api", &id).unwrap_or_default(), hb)
        })
        .collect()
}

/// A publisher's NATS connection to `url` (no retry on the first connect: the server is up).
pub async fn publisher(url: String) -> anyhow::Result<async_nats::Client> {
    Ok(edgeplane_bus::BusOptions {
        urls: vec![url],
        retry_initial: false,
        ..edgeplane_bus::BusOptions::default()
    }
    .connect(Default::default())
    .await?)
}

/// Starts a fleet of `nodes` in-process nodes (`n0`, `n1`...), each with its own NATS connection to
/// `nats_url`, its state under `state_dir`, one listener on a free port and the routing `routing`
/// (TOML), each following the bus; returns once every node has joined.
pub async fn start_fleet(
    nodes: u64,
    nats_url: &str,
    state_dir: &std::path::Path,
    routing: &str,
) -> anyhow::Result<
    Vec<(
        edgeplane_proxy::NodeHandle,
        edgeplane_proxy::fleet::Controller,
    )>,
> {
    use anyhow::Context as _;
    let mut fleet = Vec::new();
    for i in 0..nodes {
        let text = format!(
            "[node]\nid = \"n{i}\"\nstate_dir = \"{}\"\n[node.nats]\nurls = [\"{nats_url}\"]\n\
             [[node.listeners]]\naddress = \"127.0.0.1:0\"\n{routing}",
            state_dir.join(format!("n{i}")).display(),
        );
        let node = edgeplane_proxy::NodeHandle::start(&edgeplane_config::from_toml(&text)?).await?;
        let controller = edgeplane_proxy::fleet::join(&node)
            .await?
            .context("node follows NATS")?;
        fleet.push((node, controller));
    }
    Ok(fleet)
}
