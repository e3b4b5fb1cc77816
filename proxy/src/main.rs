//! The `edgeplane` binary: `run`, `check`, `demo`, and the fleet commands over NATS.

#![warn(unreachable_pub)]

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand, ValueEnum};
use edgeplane_config::Config;
use edgeplane_proxy::reload::Reloader;
use edgeplane_proxy::upgrade;
use edgeplane_proxy::{demo, NodeHandle};
use std::path::PathBuf;
use std::process::ExitCode;

mod cli;

use cli::{diff, events, heartbeat, nats, push, rollout, scale};

// mimalloc saves about half a microsecond per proxied request over glibc malloc (measured with
// callgrind; BENCHMARKS.md, "instructions per request").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// edgeplane: an edge HTTP reverse proxy with a NATS-driven control plane.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node from a config file, reloading it when it changes (or on SIGHUP).
    Run {
        /// Config file (TOML, or JSON if it ends in .json). Without it, the shipped default is used.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Binary upgrade: take the listening sockets over from the node running on the config's
        /// `node.upgrade_socket`, start serving, then let that node drain and exit. Without a node
        /// there, start on fresh sockets.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate config files and print every error with its path; exit 1 if any is invalid.
    Check {
        /// Config files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run the shipped default config with two built-in demo upstreams and show traffic balanced over them.
    Demo,
    /// Push a config's routes and clusters to the fleet over NATS and report which nodes applied it.
    Push(push::PushArgs),
    /// Roll a config out in waves, each baked and gated on live health against the nodes not yet
    /// updated, rolled back automatically on a failed gate; or act on a rollout (status, resume,
    /// abort, promote).
    Rollout(Box<rollout::RolloutArgs>),
    /// Show what pushing a config would change against the current revision: routes, clusters and
    /// endpoints added, removed or changed (exit 0: none, 1: some, 2: trouble).
    Diff(diff::DiffArgs),
    /// Restore an earlier config revision (default: the previous one) as a new revision.
    Rollback(push::RollbackArgs),
    /// List the config revisions the fleet's bucket keeps.
    History(nats::ListArgs),
    /// List the fleet's nodes: id, zone, applied revision, last seen, uptime and load.
    Fleet(nats::ListArgs),
    /// Tail the fleet's events (config applied or rejected, endpoints down, ejected, failovers...),
    /// filtered by kind, node or cluster.
    Events(events::EventsArgs),
    /// Create the fleet's JetStream assets (config bucket, nodes bucket, leases bucket, scaling stream) with
    /// `--replicas`, so that nodes and publishers need no right to create them.
    Provision(nats::ListArgs),
    /// Keep a backend instance in the fleet's tables by heartbeats; drain it on SIGINT/SIGTERM.
    Heartbeat(heartbeat::HeartbeatArgs),
    /// Add, remove, drain or re-weight an endpoint on every node, durably.
    Scale(scale::ScaleArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that print a report keep the log to warnings unless RUST_LOG says otherwise.
    let quiet = !matches!(
        cli.command,
        Command::Run { .. } | Command::Demo | Command::Heartbeat(_)
    );
    init_logging(cli.log_format, if quiet { "warn" } else { "info" });
    let result = match cli.command {
        Command::Check { files } => return check(&files),
        Command::Run { config, upgrade } => run(config, upgrade),
        Command::Demo => demo(),
        Command::Push(args) => return nats_command(push::run(args)),
        Command::Rollback(args) => return nats_command(push::rollback(args)),
        Command::Rollout(args) => return nats_command(rollout::run(*args)),
        Command::Diff(args) => return nats_command(diff::run(args)),
        Command::History(args) => return nats_command(nats::history(args)),
        Command::Fleet(args) => return nats_command(nats::fleet(args)),
        Command::Provision(args) => return nats_command(nats::provision(args)),
        Command::Events(args) => return nats_command(events::run(args)),
        Command::Heartbeat(args) => return nats_command(heartbeat::run(args)),
        Command::Scale(args) => return nats_command(scale::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for file in files {
        // What starting the node would read is checked too: certificates against their keys, and
        // the admin token file; every problem found is reported.
        let checked = edgeplane_config::from_file(file)
            .map_err(|e| e.lines())
            .and_then(|c| {
                let mut problems: Vec<String> =
                    edgeplane_proxy::tables::CertTable::load(&c.routing.certificates)
                        .err()
                        .unwrap_or_default()
                        .iter()
                        .map(ToString::to_string)
                        .collect();
                if let Err(e) = edgeplane_proxy::node::admin_token(&c.node) {
                    problems.push(format!("node.admin_token_file: {e}"));
                }
                if problems.is_empty() {
                    Ok(c)
                } else {
                    Err(problems)
                }
            });
        match checked {
            Ok(c) => {
                let endpoints: usize = c.routing.clusters.iter().map(|c| c.endpoints.len()).sum();
                println!(
                    "{}: ok ({} routes, {} clusters, {} endpoints, hash {})",
                    file.display(),
                    c.routing.routes.len(),
                    c.routing.clusters.len(),
                    endpoints,
                    c.routing.hash.short()
                );
            }
            Err(lines) => {
                ok = false;
                println!("{}: invalid", file.display());
                for line in lines {
                    println!("  {line}");
                }
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn runtime(config: &Config) -> anyhow::Result<tokio::runtime::Runtime> {
    // One worker: a current-thread runtime skips the work-stealing machinery (no cross-thread task
    // queues, no idle-worker wakeups). More: the multi-thread scheduler.
    let mut builder =
        if config.node.workers == 1 || std::env::var_os("EDGEPLANE_CURRENT_THREAD").is_some() {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if config.node.workers > 0 {
                b.worker_threads(config.node.workers);
            }
            b
        };
    builder
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

/// Runs a CLI command that talks to NATS on a small runtime.
fn nats_command(command: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    match small_runtime().and_then(|rt| rt.block_on(command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A runtime for the CLI commands that talk to NATS.
fn small_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

fn run(path: Option<PathBuf>, upgrade: bool) -> anyhow::Result<()> {
    let config = match &path {
        Some(p) => edgeplane_config::from_file(p)
            .with_context(|| format!("{} is not a valid config", p.display()))?,
        None => {
            tracing::warn!("no --config given: running the shipped default config (no hot reload)");
            edgeplane_config::default_config()?
        }
    };
    let socket = config.node.upgrade_socket.clone();
    let taken = match (&socket, upgrade) {
        (None, true) => bail!("--upgrade needs node.upgrade_socket in the config"),
        (Some(p), true) => {
            let taken = upgrade::take_over(p)?;
            if taken.is_none() {
                tracing::warn!(path = %p.display(), "--upgrade: no node answers there; starting on fresh sockets");
            }
            taken
        }
        _ => None,
    };
    runtime(&config)?.block_on(async {
        let (predecessor, inherited) = match taken {
            Some((p, i)) => (Some(p), i),
            None => (None, upgrade::Inherited::default()),
        };
        let node = NodeHandle::start_with(&config, inherited, predecessor.is_none()).await?;
        let controller = edgeplane_proxy::fleet::join(&node).await?;
        if let Some(predecessor) = predecessor {
            take_traffic(&node, predecessor).await;
        }
        let mut offer = socket.as_deref().and_then(|p| {
            let sockets = node
                .listening_sockets()
                .map_err(|e| tracing::error!(error = %e, "cannot offer the listening sockets"))
                .ok()?;
            let grace = config.node.timeouts.shutdown_grace;
            upgrade::Offer::bind(p, sockets, node.tables().clone(), grace, upgrade)
                .map_err(|e| tracing::error!(error = %e, "binary upgrades unavailable"))
                .ok()
        });
        // With NATS, routing comes from the fleet's pushes (the file's routes only bootstrap a node
        // that has never seen one), so the file is not reloaded.
        let reloader = match (&controller, path) {
            (None, Some(p)) => Some(tokio::spawn(
                Reloader::new(p, node.tables().clone(), config.node.clone()).run(),
            )),
            _ => None,
        };
        tokio::select! {
            stop = wait_for_stop_signal() => stop?,
            () = handed_over(&mut offer) => {}
        }
        drop(offer);
        if let Some(r) = reloader {
            r.abort();
        }
        drop(controller);
        let grace = config.node.timeouts.shutdown_grace;
        tokio::select! {
            _ = node.shutdown_within(grace) => {}
            _ = wait_for_stop_signal() => tracing::warn!("second signal: exiting now"),
        }
        Ok(())
    })
}

/// The new process of a binary upgrade: once its clusters have the endpoints the old process had (or
/// after ten seconds), it accepts, and the old process stops.
async fn take_traffic(node: &NodeHandle, predecessor: upgrade::Predecessor) {
    let short = upgrade::warm_up(
        node.tables(),
        predecessor.endpoints(),
        std::time::Duration::from_secs(10),
    )
    .await;
    if !short.is_empty() {
        tracing::warn!(clusters = ?short, "binary upgrade: fewer endpoints than the old process after 10s; taking traffic anyway");
    }
    node.accept();
    match tokio::task::spawn_blocking(move || predecessor.ready()).await {
        Ok(Ok(grace)) => {
            tracing::info!(old_grace = ?grace, "binary upgrade: serving; the old process drains")
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "binary upgrade: the old process did not confirm; serving")
        }
        Err(e) => tracing::warn!(error = %e, "binary upgrade: serving"),
    }
}

/// Resolves when a new process took the listening sockets over (never without an offer).
async fn handed_over(offer: &mut Option<upgrade::Offer>) {
    match offer {
        Some(o) => o.handed_over().await,
        None => std::future::pending().await,
    }
}

fn demo() -> anyhow::Result<()> {
    let config = edgeplane_config::default_config()?;
    runtime(&config)?.block_on(async {
        let cluster = config.routing.clusters.first().context("default config has no cluster")?;
        for (i, e) in cluster.endpoints.iter().enumerate() {
            demo::spawn_upstream(format!("upstream-{}", i + 1), e.address)
                .await
                .with_context(|| format!("cannot start demo upstream on {} (is the port in use?)", e.address))?;
        }
        let node = NodeHandle::start(&config).await?;
        let Some(&addr) = node.listen_addrs().first() else {
            bail!("default config has no listener");
        };
        println!("\nedgeplane demo: node on http://{addr}, balancing round robin over {} upstreams\n", cluster.endpoints.len());
        for i in 1..=4 {
            let answer = demo_request(addr, &format!("/hello/{i}")).await?;
            print!("  GET /hello/{i} -> {answer}");
        }
        println!("\nTry it yourself:\n  curl -s http://{addr}/anything\n  curl -si http://{addr}/ -H 'host: example.com'");
        if let Some(admin) = node.admin_addr() {
            println!("  curl -s http://{admin}/readyz");
            println!("  curl -s http://{admin}/metrics | grep edgeplane_requests_total");
        }
        println!("\nCtrl-C stops the demo.");
        wait_for_stop_signal().await?;
        node.shutdown_within(std::time::Duration::from_secs(5)).await;
        Ok(())
    })
}

/// One request through the proxy with a plain HTTP/1.1 client connection.
async fn demo_request(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, "demo.local")
        .body(Empty::<bytes::Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
