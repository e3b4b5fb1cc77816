//! `edgeplane rollout`: staged pushes in waves gated on live health, with automatic rollback, and
//! the commands that act on a rollout from anywhere (`status`, `resume`, `abort`, `promote`).
//!
//! Exit codes: 0 completed (or nothing to do, or the request was passed to the live driver); 1 rolled
//! back, or NATS failed; 2 invalid file or plan (nothing written); 3 another rollout is active, or
//! another driver moves this one; 4 aborted or superseded while this driver ran; 5 paused, waiting
//! for a person.

use super::nats::NatsArgs;
use anyhow::Context as _;
use edgeplane_bus::rollout::{RolloutRecord, WaveRecord};
use edgeplane_controller::rollout::plan::{GatesInput, PlanInput};
use edgeplane_controller::rollout::{self, Fleet, Outcome, RolloutError};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `edgeplane rollout` arguments.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct RolloutArgs {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    start: StartArgs,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Show the rollout: phase, waves with their gates, and which revision each node serves.
    Status {
        /// Print the rollout record as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Drive an active rollout whose driver is gone, or a paused one, from its current wave.
    Resume(DriveArgs),
    /// Send every node back to the base revision now.
    Abort(DriveArgs),
    /// End the current wave's bake now (and drive on if no driver runs).
    Promote(DriveArgs),
}

#[derive(clap::Args, Debug)]
struct DriveArgs {
    /// Take the rollout over even if its driver looks alive (it wrote the record within the last
    /// 10 s): that driver stops at its next write.
    #[arg(long)]
    force: bool,
    /// How often the fleet is sampled during a bake.
    #[arg(long, default_value = "1s", value_parser = edgeplane_config::duration::parse)]
    sample_every: Duration,
    #[command(flatten)]
    nats: NatsArgs,
}

#[derive(clap::Args, Debug)]
struct StartArgs {
    /// Config file to roll out (TOML or JSON); its routes and clusters are taken, `[node]` is ignored.
    file: Option<PathBuf>,
    /// Waves, comma-separated: a node count (`1`), a share of the fleet (`10%`), `zone:NAME`, or
    /// `node:ID+ID`; cumulative; `100%` is added if the last one is not. Default `1,10%,50%,100%`.
    #[arg(long, value_delimiter = ',')]
    waves: Option<Vec<String>>,
    /// A plan file (TOML: waves, bake, wave_timeout, min_requests, abandon_after, `[gates]`); flags
    /// given too win over it.
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Bake time of each wave (default 60s).
    #[arg(long)]
    bake: Option<String>,
    /// How long a wave's nodes have to apply the candidate (default 30s).
    #[arg(long)]
    wave_timeout: Option<String>,
    /// Fewest requests the candidate's nodes must answer during a bake for the gates to judge it;
    /// fewer pauses the rollout (default 100).
    #[arg(long)]
    min_requests: Option<u64>,
    /// Nodes go back to the base revision on their own this long after the driver was last heard of
    /// (default 30m; 0s: never).
    #[arg(long)]
    abandon_after: Option<String>,
    /// 5xx gate: at most this many points above the baseline (default 1).
    #[arg(long)]
    max_5xx_increase: Option<f64>,
    /// 5xx gate: at most this many times the baseline (default 2).
    #[arg(long)]
    max_5xx_factor: Option<f64>,
    /// Proxy-error gate: at most this many points above the baseline (default 1).
    #[arg(long)]
    max_proxy_error_increase: Option<f64>,
    /// Proxy-error gate: at most this many times the baseline (default 2).
    #[arg(long)]
    max_proxy_error_factor: Option<f64>,
    /// Latency gate: p99 time to response headers at most the baseline's times this (default 1.5)...
    #[arg(long)]
    max_p99_factor: Option<f64>,
    /// ...plus this many milliseconds (default 50).
    #[arg(long)]
    p99_slack_ms: Option<f64>,
    /// How often the fleet is sampled during a bake.
    #[arg(long, default_value = "1s", value_parser = edgeplane_config::duration::parse)]
    sample_every: Duration,
    #[command(flatten)]
    nats: NatsArgs,
}

/// Runs `edgeplane rollout ...`.
pub(crate) async fn run(args: RolloutArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        None => start(args.start).await,
        Some(Action::Status { json, nats }) => status(&nats, json).await,
        Some(Action::Resume(a)) => {
            let fleet = fleet(&a.nats, a.sample_every).await?;
            Ok(outcome(rollout::resume(fleet, false, a.force).await))
        }
        Some(Action::Promote(a)) => {
            let fleet = fleet(&a.nats, a.sample_every).await?;
            match rollout::promote(fleet, a.force).await {
                Ok(None) => {
                    println!("asked the rollout's driver to end the current bake");
                    Ok(ExitCode::SUCCESS)
                }
                Ok(Some(o)) => Ok(outcome(Ok(o))),
                Err(e) => Ok(outcome(Err(e))),
            }
        }
        Some(Action::Abort(a)) => {
            let fleet = fleet(&a.nats, a.sample_every).await?;
            match rollout::abort(fleet).await {
                Ok(Outcome::RolledBack { nodes, took, .. }) => {
                    match took {
                        Some(t) => println!(
                            "aborted: {} node(s) back on the base revision in {} ms",
                            nodes.len(),
                            t.as_millis()
                        ),
                        None => println!(
                            "aborted: the record says so, but not every node confirmed the base revision yet"
                        ),
                    }
                    Ok(if took.is_some() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    })
                }
                other => Ok(outcome(other)),
            }
        }
    }
}

async fn fleet(nats: &NatsArgs, sample_every: Duration) -> anyhow::Result<Fleet> {
    let (client, subjects) = nats.connect().await?;
    Ok(Fleet {
        client,
        subjects,
        bucket: nats.bucket().to_string(),
        replicas: usize::from(nats.replicas),
        progress: Arc::new(|line: &str| println!("{line}")),
        sample_every: sample_every.max(Duration::from_millis(100)),
    })
}

async fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    let Some(file) = &args.file else {
        eprintln!("error: give the config file to roll out, or status|resume|abort|promote");
        return Ok(ExitCode::from(2));
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut errors = Vec::new();
    let from_file = match &args.plan {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => PlanInput::from_toml(&t).unwrap_or_else(|e| {
                errors.extend(e);
                PlanInput::default()
            }),
            Err(e) => {
                errors.push(format!("plan: cannot read {}: {e}", p.display()));
                PlanInput::default()
            }
        },
        None => PlanInput::default(),
    };
    let flags = PlanInput {
        waves: args.waves.clone(),
        bake: args.bake.clone(),
        wave_timeout: args.wave_timeout.clone(),
        min_requests: args.min_requests,
        abandon_after: args.abandon_after.clone(),
        gates: GatesInput {
            max_5xx_increase_pct: args.max_5xx_increase,
            max_5xx_factor: args.max_5xx_factor,
            max_proxy_error_increase_pct: args.max_proxy_error_increase,
            max_proxy_error_factor: args.max_proxy_error_factor,
            max_p99_factor: args.max_p99_factor,
            p99_slack_ms: args.p99_slack_ms,
        },
    };
    // Every error of the document and of the plan, before anything is written.
    if let Err(e) = edgeplane_config::document_of_file_text(&text) {
        errors.extend(
            e.lines()
                .into_iter()
                .map(|l| format!("{}: {l}", file.display())),
        );
    }
    let plan = match from_file.merged(flags).validate() {
        Ok(p) => Some(p),
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    let Some(plan) = plan.filter(|_| errors.is_empty()) else {
        eprintln!("error: nothing was written:");
        for e in &errors {
            eprintln!("  {e}");
        }
        return Ok(ExitCode::from(2));
    };
    let fleet = fleet(&args.nats, args.sample_every).await?;
    Ok(outcome(rollout::start(fleet, &text, plan).await))
}

/// Prints how a driven rollout ended; its exit code.
fn outcome(result: Result<Outcome, RolloutError>) -> ExitCode {
    match result {
        Ok(Outcome::Completed { revision }) => {
            println!("rollout complete: every node serves revision {revision}");
            ExitCode::SUCCESS
        }
        Ok(Outcome::RolledBack {
            reason,
            nodes,
            took,
        }) => {
            println!("rollout rolled back: {reason}");
            match took {
                Some(t) => println!(
                    "  {} node(s) back on the base revision {} ms after the decision",
                    nodes.len(),
                    t.as_millis()
                ),
                None => println!("  not every node confirmed the base revision in time"),
            }
            ExitCode::FAILURE
        }
        Ok(Outcome::Paused { reason }) => {
            println!("rollout paused: {reason}");
            ExitCode::from(5)
        }
        Ok(Outcome::Aborted { reason }) => {
            println!("rollout stopped: {reason}");
            ExitCode::from(4)
        }
        Err(RolloutError::Invalid(errors)) => {
            eprintln!("error: nothing was written:");
            for e in errors {
                eprintln!("  {e}");
            }
            ExitCode::from(2)
        }
        Err(e @ RolloutError::Busy(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
        Err(RolloutError::Nothing(what)) => {
            println!("{what}");
            ExitCode::SUCCESS
        }
        Err(e @ RolloutError::Bus(_)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn status(nats: &NatsArgs, json: bool) -> anyhow::Result<ExitCode> {
    let fleet = fleet(nats, Duration::from_secs(1)).await?;
    let report = rollout::status(fleet)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(r) = &report.record else {
        println!("no rollout has run on this bucket");
        return Ok(ExitCode::SUCCESS);
    };
    if json {
        println!("{}", String::from_utf8_lossy(&edgeplane_bus::encode(r)));
        return Ok(ExitCode::SUCCESS);
    }
    print_record(r, report.driver_alive, report.expired);
    println!();
    println!("{:<20} {:>9}  serves", "node", "revision");
    for n in &report.nodes {
        let role = if r.phase.active() && !report.expired && n.revision == r.candidate {
            "candidate"
        } else if n.revision == r.base {
            "base"
        } else {
            "other"
        };
        println!("{:<20} {:>9}  {role}", n.node, n.revision);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_record(r: &RolloutRecord, alive: bool, expired: bool) {
    println!("rollout    {}", r.id);
    println!(
        "phase      {:?}{}",
        r.phase,
        if expired && r.phase.active() {
            " (lease ran out: nodes serve the base revision)"
        } else {
            ""
        }
    );
    println!("base       revision {}", r.base);
    println!(
        "candidate  revision {} (hash {})",
        r.candidate,
        r.candidate_hash.get(..12).unwrap_or(&r.candidate_hash)
    );
    if let Some(rev) = r.completed_revision {
        println!("current    revision {rev} (completed)");
    }
    if let Some(d) = &r.driver {
        let ago = edgeplane_controller::follow::now_ms().saturating_sub(d.seen_ms) / 1000;
        println!(
            "driver     {} (last write {ago} s ago: {})",
            d.id,
            if alive {
                "alive"
            } else if r.phase.active() {
                "not running; `edgeplane rollout resume` drives on"
            } else {
                "done"
            }
        );
    }
    if !r.reason.is_empty() {
        println!("reason     {}", r.reason);
    }
    println!("waves      {}", r.plan.waves.join(", "));
    for (i, w) in r.waves.iter().enumerate() {
        println!("  wave {} ({}): {}", i + 1, w.spec, wave_state(w));
        if !w.nodes.is_empty() {
            println!("    nodes: {}", w.nodes.join(", "));
        }
        for g in &w.gates {
            println!("    {g}");
        }
    }
}

fn wave_state(w: &WaveRecord) -> &'static str {
    match (w.applied_ms, w.passed_ms) {
        (_, Some(_)) => "passed",
        (Some(_), None) => "baking",
        (None, None) => "applying",
    }
}
