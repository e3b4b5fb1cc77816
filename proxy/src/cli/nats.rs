//! The CLI commands that talk to the fleet over NATS: `push` (validate locally, write the routing
//! document with compare-and-set, print the distribution report), `rollback`, `history` and `fleet`.

use anyhow::Context as _;
use edgeplane_bus::{BusOptions, Credentials, Subjects};
use edgeplane_controller::publish::{self, PushError, PushOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Where and how to reach the fleet's NATS.
#[derive(clap::Args, Debug)]
pub(crate) struct NatsArgs {
    /// NATS server URL (repeat for several).
    #[arg(
        long = "server",
        env = "EDGEPLANE_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    servers: Vec<String>,
    /// Subject prefix of the fleet.
    #[arg(long, default_value = edgeplane_bus::DEFAULT_PREFIX)]
    prefix: String,
    /// Config KV bucket.
    #[arg(long, default_value = edgeplane_bus::jetstream::CONFIG_BUCKET)]
    bucket: String,
    /// Stream of the scaling events.
    #[arg(long, default_value = edgeplane_bus::jetstream::SCALE_STREAM)]
    pub(crate) scale_stream: String,
    /// Replicas of the JetStream assets (config bucket, scaling stream) this command creates when
    /// they are absent; 3 on a NATS cluster. Existing ones are left as they are.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub(crate) replicas: u8,
    /// NATS user (with --password).
    #[arg(long, requires = "password")]
    user: Option<String>,
    /// NATS password.
    #[arg(long, env = "EDGEPLANE_NATS_PASSWORD", requires = "user")]
    password: Option<String>,
    /// NATS token.
    #[arg(long, env = "EDGEPLANE_NATS_TOKEN", conflicts_with_all = ["user", "creds"])]
    token: Option<String>,
    /// NATS credentials file.
    #[arg(long, conflicts_with = "user")]
    creds: Option<PathBuf>,
}

impl NatsArgs {
    /// The config bucket.
    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Connects (failing at once if no server answers).
    pub(crate) async fn connect(&self) -> anyhow::Result<(async_nats::Client, Subjects)> {
        self.connect_as("edgeplane-cli", false).await
    }

    /// Connects as `name`; with `keep_trying`, returns at once and connects in the background.
    pub(crate) async fn connect_as(
        &self,
        name: &str,
        keep_trying: bool,
    ) -> anyhow::Result<(async_nats::Client, Subjects)> {
        let credentials = match (&self.user, &self.password, &self.token, &self.creds) {
            (Some(u), Some(p), _, _) => Credentials::UserPassword {
                user: u.clone(),
                password: p.clone(),
            },
            (_, _, Some(t), _) => Credentials::Token(t.clone()),
            (_, _, _, Some(c)) => Credentials::CredsFile(c.clone()),
            _ => Credentials::None,
        };
        let options = BusOptions {
            urls: self.servers.clone(),
            credentials,
            name: name.into(),
            retry_initial: keep_trying,
            ..BusOptions::default()
        };
        let client = options.connect(Default::default()).await?;
        Ok((client, Subjects::new(&self.prefix)?))
    }
}

/// `edgeplane push` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct PushArgs {
    /// Config file to push (TOML or JSON); its routes and clusters are pushed, `[node]` is ignored.
    file: PathBuf,
    /// Only push if the fleet's current revision is this one (the version you started from).
    #[arg(long)]
    expect_revision: Option<u64>,
    /// Overwrite whatever revision is current.
    #[arg(long, conflicts_with = "cluster")]
    force: bool,
    /// Replace only this cluster (taken from FILE) in the current config: read, modify, write with
    /// compare-and-set, retried if another publisher writes in between.
    #[arg(long, conflicts_with = "expect_revision")]
    cluster: Option<String>,
    /// Seconds to wait for every node's answer.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Write nothing: ask every online node whether it would apply the document (its own
    /// constraints included, e.g. certificate files) and report per node.
    #[arg(long, conflicts_with_all = ["force", "expect_revision"])]
    dry_run: bool,
    #[command(flatten)]
    nats: NatsArgs,
}

/// Runs `edgeplane push`; exit 0 only if every node applied, 2 for an invalid document, 3 on a
/// revision conflict, 4 during a staged rollout. With `--dry-run`: 0 only if every node would apply
/// it, 1 otherwise, 2 for a document invalid here.
pub(crate) async fn run(args: PushArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let (client, subjects) = args.nats.connect().await?;
    let options = PushOptions {
        bucket: args.nats.bucket.clone(),
        replicas: usize::from(args.nats.replicas),
        expect_revision: args.expect_revision,
        force: args.force,
        discover: Duration::from_millis(500),
        timeout: Duration::from_secs_f64(args.timeout.max(0.1)),
    };
    if args.dry_run {
        return dry_run(&client, &subjects, &args, &text, &options).await;
    }
    let result = match &args.cluster {
        Some(name) => publish::push_cluster(&client, &subjects, name, &text, &options).await,
        None => publish::push(&client, &subjects, &text, &options).await,
    };
    let report = match result {
        Ok(r) => r,
        Err(e @ PushError::Conflict { .. }) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(3));
        }
        Err(e @ PushError::Invalid(_)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e @ PushError::RolloutActive(_)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(4));
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    Ok(print_report(&report))
}

/// `push --dry-run`: the document (with `--cluster`, the current one with that cluster replaced) is
/// checked by every online node; nothing is written.
async fn dry_run(
    client: &async_nats::Client,
    subjects: &Subjects,
    args: &PushArgs,
    text: &str,
    options: &PushOptions,
) -> anyhow::Result<ExitCode> {
    let text = match &args.cluster {
        None => text.to_string(),
        Some(name) => {
            let Some((_, current)) = publish::document_at(client, &args.nats.bucket, None).await?
            else {
                eprintln!("error: nothing was pushed yet: push a whole config first");
                return Ok(ExitCode::from(2));
            };
            match edgeplane_config::replace_cluster(&current, name, text) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(2));
                }
            }
        }
    };
    let report = match publish::dry_run(client, subjects, &text, options).await {
        Ok(r) => r,
        Err(e @ PushError::Invalid(_)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!(
        "dry run of hash {} (nothing written)",
        &report.hash[..12.min(report.hash.len())]
    );
    for node in &report.valid {
        println!("  valid     {node}");
    }
    for (node, errors) in &report.invalid {
        println!("  invalid   {node}");
        for e in errors {
            println!("              {e}");
        }
    }
    for node in &report.silent {
        println!("  no answer {node}");
    }
    let nobody = report.valid.is_empty() && report.invalid.is_empty() && report.silent.is_empty();
    if nobody {
        println!("  no node is online: nothing was checked");
    }
    Ok(if report.all_valid() && !nobody {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints a push report; the exit code says whether every node applied.
fn print_report(report: &publish::PushReport) -> ExitCode {
    if report.unchanged {
        println!(
            "unchanged: revision {} already holds this document (hash {})",
            report.revision,
            &report.hash[..12]
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "pushed revision {} (hash {})",
        report.revision,
        &report.hash[..12]
    );
    for node in &report.applied {
        println!("  applied   {node}");
    }
    for (node, errors) in &report.rejected {
        println!("  rejected  {node}");
        for e in errors {
            println!("              {e}");
        }
    }
    for node in &report.silent {
        println!("  no answer {node}");
    }
    if report.applied.is_empty() && report.rejected.is_empty() && report.silent.is_empty() {
        println!("  no node is online; nodes apply it when they start");
    }
    if report.all_applied() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `edgeplane rollback` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct RollbackArgs {
    /// Revision to restore; default: the one before the current revision.
    revision: Option<u64>,
    /// Seconds to wait for every node's answer.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    #[command(flatten)]
    nats: NatsArgs,
}

/// Runs `edgeplane rollback`: the old document becomes a new revision, reported like a push.
pub(crate) async fn rollback(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let (client, subjects) = args.nats.connect().await?;
    let options = PushOptions {
        bucket: args.nats.bucket.clone(),
        replicas: usize::from(args.nats.replicas),
        expect_revision: None,
        force: false,
        discover: Duration::from_millis(500),
        timeout: Duration::from_secs_f64(args.timeout.max(0.1)),
    };
    match publish::rollback(&client, &subjects, args.revision, &options).await {
        Ok((target, report)) => {
            println!("rolling back to revision {target}");
            Ok(print_report(&report))
        }
        Err(e @ PushError::Conflict { .. }) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(3))
        }
        Err(e @ PushError::RolloutActive(_)) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(4))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `edgeplane history` / `edgeplane fleet` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    nats: NatsArgs,
}

/// Runs `edgeplane provision`: creates what is absent, then lists each asset with its replicas.
pub(crate) async fn provision(args: ListArgs) -> anyhow::Result<ExitCode> {
    let (client, subjects) = args.nats.connect().await?;
    let n = &args.nats;
    let assets = edgeplane_controller::provision::provision(
        &client,
        &subjects,
        &n.bucket,
        &n.scale_stream,
        usize::from(n.replicas),
    )
    .await?;
    for a in assets {
        println!("{:<24} replicas {}", a.stream, a.replicas);
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `edgeplane history`: every revision the bucket keeps, oldest first.
pub(crate) async fn history(args: ListArgs) -> anyhow::Result<ExitCode> {
    let (client, _) = args.nats.connect().await?;
    let revisions = publish::history(&client, &args.nats.bucket).await?;
    if revisions.is_empty() {
        println!("no config pushed yet");
    }
    println!("{:>9}  {:>10}  {:>8}  document", "revision", "age", "bytes");
    for r in revisions {
        let doc = match &r.hash {
            Ok(h) => format!("hash {}", &h[..12]),
            Err(e) => format!("invalid: {}", e.lines().next().unwrap_or("")),
        };
        println!(
            "{:>9}  {:>10}  {:>8}  {doc}",
            r.revision,
            age(r.age_s),
            r.size
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `edgeplane fleet`: every node online now or heard from within the last hour.
pub(crate) async fn fleet(args: ListArgs) -> anyhow::Result<ExitCode> {
    let (client, subjects) = args.nats.connect().await?;
    let nodes = publish::fleet(&client, &subjects, Duration::from_millis(500)).await?;
    if nodes.is_empty() {
        println!("no node has been seen in the last hour");
        return Ok(ExitCode::SUCCESS);
    }
    // During a staged rollout, which side of it each node is on.
    let rollout = publish::rollout_record(&client, &args.nats.bucket)
        .await?
        .filter(|r| r.phase.active() && !r.expired(edgeplane_controller::follow::now_ms()));
    if let Some(r) = &rollout {
        println!(
            "rollout {} {:?}: wave {} of {}, base revision {}, candidate revision {}",
            r.id,
            r.phase,
            (r.wave + 1).min(r.plan.waves.len()),
            r.plan.waves.len(),
            r.base,
            r.candidate
        );
    }
    let side = |revision: u64| match &rollout {
        Some(r) if revision == r.candidate => "candidate",
        Some(r) if revision == r.base => "base",
        Some(_) => "other",
        None => "-",
    };
    println!(
        "{:<20} {:<10} {:>9} {:<12} {:<9} {:>10} {:>10} {:>7} {:>12}",
        "node", "zone", "revision", "hash", "rollout", "last seen", "uptime", "conns", "requests"
    );
    for n in nodes {
        let s = &n.status;
        let seen = if n.online {
            "now".to_string()
        } else {
            format!("{} ago", age(n.age_s))
        };
        println!(
            "{:<20} {:<10} {:>9} {:<12} {:<9} {:>10} {:>10} {:>7} {:>12}",
            s.node,
            s.zone.as_deref().unwrap_or("-"),
            s.revision,
            s.hash.get(..12).unwrap_or(&s.hash),
            side(s.revision),
            seen,
            age(s.uptime_s),
            s.connections,
            s.requests
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
