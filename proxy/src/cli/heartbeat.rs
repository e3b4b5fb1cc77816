//! `edgeplane heartbeat`: runs next to a backend instance and keeps it in the fleet's tables. Every
//! interval it publishes a heartbeat (health from an optional HTTP probe of the backend, host load,
//! probe latency); on SIGINT or SIGTERM it publishes a draining heartbeat, so that nodes stop sending
//! new requests, let in-flight ones finish and then remove the instance.

use super::nats::NatsArgs;
use anyhow::Context as _;
use edgeplane_bus::wire::{Heartbeat, Validate};
use edgeplane_bus::{encode, SCHEMA_VERSION};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// `edgeplane heartbeat` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct HeartbeatArgs {
    /// Cluster the instance serves.
    #[arg(long)]
    cluster: String,
    /// Instance id (stable across restarts of the same instance).
    #[arg(long)]
    instance: String,
    /// Address that serves traffic, `ip:port`.
    #[arg(long)]
    addr: SocketAddr,
    /// Relative weight, 1 to 10000.
    #[arg(long, default_value_t = 1)]
    weight: u32,
    /// Zone of the instance.
    #[arg(long)]
    zone: Option<String>,
    /// Time between heartbeats.
    #[arg(long, default_value = "1s", value_parser = edgeplane_config::duration::parse)]
    interval: Duration,
    /// Without a heartbeat for this long, nodes mark the instance down (default: 3 intervals).
    #[arg(long, value_parser = edgeplane_config::duration::parse)]
    ttl: Option<Duration>,
    /// HTTP URL to probe before each heartbeat (`http://127.0.0.1:9001/healthz`): a 2xx or 3xx answer
    /// within the probe timeout is healthy (100), anything else down (0). Without it: always 100.
    #[arg(long)]
    probe: Option<http::Uri>,
    /// Probe timeout.
    #[arg(long, default_value = "1s", value_parser = edgeplane_config::duration::parse)]
    probe_timeout: Duration,
    /// On stop, nodes give in-flight requests up to this long before removing the instance.
    #[arg(long, default_value = "30s", value_parser = edgeplane_config::duration::parse)]
    drain: Duration,
    #[command(flatten)]
    nats: NatsArgs,
}

/// Runs `edgeplane heartbeat` until SIGINT or SIGTERM.
pub(crate) async fn run(args: HeartbeatArgs) -> anyhow::Result<ExitCode> {
    let ttl = args.ttl.unwrap_or(args.interval * 3);
    let (client, subjects) = args
        .nats
        .connect_as(&format!("edgeplane-heartbeat-{}", args.instance), true)
        .await?;
    let subject = subjects
        .heartbeat(&args.cluster, &args.instance)
        .context("cluster and instance must be 1 to 64 letters, digits, '-' or '_'")?;
    let mut hb = Heartbeat {
        schema: SCHEMA_VERSION,
        instance: args.instance.clone(),
        boot_id: edgeplane_controller::scale_publish::new_id(),
        seq: 0,
        address: args.addr.to_string(),
        weight: args.weight,
        zone: args.zone.clone(),
        health: 100,
        in_flight: 0,
        cpu: 0.0,
        latency_ms: 0.0,
        ttl_ms: ttl.as_millis() as u64,
        draining: false,
    };
    let problems = hb.problems();
    anyhow::ensure!(
        problems.is_empty(),
        "invalid heartbeat: {}",
        problems.join("; ")
    );
    tracing::info!(%subject, interval = ?args.interval, ?ttl, "sending heartbeats");
    let mut ticks = tokio::time::interval(args.interval);
    let mut stop = std::pin::pin!(crate::wait_for_stop_signal());
    let mut healthy = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = &mut stop => break,
        }
        if let Some(uri) = &args.probe {
            let (ok, latency) = probe(uri, args.probe_timeout).await;
            hb.health = if ok { 100 } else { 0 };
            hb.latency_ms = latency.as_secs_f32() * 1000.0;
            if healthy != Some(ok) {
                tracing::info!(healthy = ok, "probe of {uri}");
                healthy = Some(ok);
            }
        }
        hb.cpu = host_load();
        hb.seq += 1;
        if let Err(e) = client.publish(subject.clone(), encode(&hb)).await {
            tracing::warn!(error = %e, "cannot publish heartbeat");
        }
    }
    hb.seq += 1;
    hb.draining = true;
    hb.ttl_ms = args.drain.as_millis() as u64;
    client
        .publish(subject, encode(&hb))
        .await
        .context("cannot publish the draining heartbeat")?;
    tokio::time::timeout(Duration::from_secs(5), client.flush())
        .await
        .context("NATS did not take the draining heartbeat in time")?
        .context("cannot flush the draining heartbeat")?;
    println!(
        "{} is draining: nodes finish its in-flight requests (up to {:?}) and remove it",
        args.instance, args.drain
    );
    Ok(ExitCode::SUCCESS)
}

/// GETs `uri` over a fresh connection: whether it answered 2xx or 3xx in time, and how long it took.
async fn probe(uri: &http::Uri, timeout: Duration) -> (bool, Duration) {
    let started = Instant::now();
    let Some(host) = uri.host() else {
        return (false, started.elapsed());
    };
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let ok =
        edgeplane_proxy::upstream::health_check::http_check((host, port), authority, path, timeout)
            .await;
    (ok, started.elapsed())
}

/// The host's one-minute load average per core, 0 to 1 (0 where unknown).
fn host_load() -> f32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f32;
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f32>().ok())
        .map_or(0.0, |l| (l / cores).clamp(0.0, 1.0))
}
