//! How the CLI reaches the fleet's NATS ([`NatsArgs`], shared by every fleet command), and the
//! commands that read or prepare the fleet: `provision`, `history` and `fleet`. `push` and
//! `rollback` are in `push.rs`.

use edgeplane_bus::{BusOptions, Credentials, Subjects};
use edgeplane_controller::publish;
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
