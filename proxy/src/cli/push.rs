//! `edgeplane push` (validate locally, write the routing document with compare-and-set, print the
//! distribution report; `--dry-run` asks every online node instead) and `edgeplane rollback`.

use super::nats::NatsArgs;
use anyhow::Context as _;
use edgeplane_bus::Subjects;
use edgeplane_controller::publish::{self, PushError, PushOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
        bucket: args.nats.bucket().to_string(),
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
            let Some((_, current)) = publish::document_at(client, args.nats.bucket(), None).await?
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
    let after = |node: &String| {
        report
            .answered_after
            .get(node)
            .map_or(String::new(), |d| format!(" ({} ms)", d.as_millis()))
    };
    for node in &report.applied {
        println!("  applied   {node}{}", after(node));
    }
    for (node, errors) in &report.rejected {
        println!("  rejected  {node}{}", after(node));
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
        bucket: args.nats.bucket().to_string(),
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
