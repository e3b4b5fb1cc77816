//! `edgeplane diff FILE`: what pushing FILE would change against the fleet's current revision (or a
//! kept one): routes, clusters and endpoints added, removed or changed, as text or JSON.
//!
//! Exit codes, like diff(1): 0 no difference, 1 differences, 2 trouble (an invalid file, nothing
//! pushed yet, NATS failed).

use super::nats::NatsArgs;
use edgeplane_controller::publish;
use std::path::PathBuf;
use std::process::ExitCode;

/// `edgeplane diff` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct DiffArgs {
    /// Config file (TOML or JSON); its routes and clusters are compared, `[node]` is ignored.
    file: PathBuf,
    /// Compare with this kept revision instead of the current one.
    #[arg(long)]
    revision: Option<u64>,
    /// Print the changes as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    nats: NatsArgs,
}

/// Runs `edgeplane diff`.
pub(crate) async fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let trouble = |what: String| {
        eprintln!("error: {what}");
        Ok(ExitCode::from(2))
    };
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => return trouble(format!("cannot read {}: {e}", args.file.display())),
    };
    let routing = match edgeplane_config::document_of_file_text(&text) {
        Ok((_, routing)) => routing,
        Err(e) => {
            eprintln!("error: {} is invalid:", args.file.display());
            for l in e.lines() {
                eprintln!("  {l}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let (client, _) = args.nats.connect().await?;
    let old = match publish::document_at(&client, args.nats.bucket(), args.revision).await {
        Ok(Some(old)) => old,
        Ok(None) => {
            return trouble(match args.revision {
                Some(r) => format!("revision {r} is not kept in the bucket"),
                None => "nothing was pushed yet: every route and cluster would be new".into(),
            })
        }
        Err(e) => return trouble(e.to_string()),
    };
    let diff = match edgeplane_config::diff::diff(&old.1, &text) {
        Ok(d) => d,
        Err(e) => return trouble(format!("revision {} does not parse: {e}", old.0)),
    };
    if args.json {
        let report = serde_json::json!({
            "revision": old.0,
            "hash": routing.hash.to_string(),
            "same": diff.is_empty(),
            "changes": diff,
        });
        println!("{report}");
    } else if diff.is_empty() {
        println!("no difference with revision {} (as written)", old.0);
    } else {
        println!(
            "revision {} -> {} (hash {}):",
            old.0,
            args.file.display(),
            &routing.hash.to_string()[..12]
        );
        for l in diff.lines() {
            println!("  {l}");
        }
    }
    Ok(if diff.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
