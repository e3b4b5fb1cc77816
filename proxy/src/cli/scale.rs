//! `edgeplane scale`: store a scaling event (add, remove, drain, weight) in the fleet's durable
//! stream, which every node follows, including nodes that start later.

use super::nats::NatsArgs;
use edgeplane_bus::wire::ScaleAction;
use edgeplane_controller::scale_publish::{self, ScaleError};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// `edgeplane scale` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct ScaleArgs {
    /// Cluster to change.
    #[arg(long)]
    cluster: String,
    /// Event id; nodes apply an id once, so re-running with the same id is safe (default: new id).
    #[arg(long)]
    id: Option<String>,
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    nats: NatsArgs,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Add an endpoint (or set its weight and zone if present).
    Add {
        /// `ip:port`.
        address: SocketAddr,
        /// Relative weight, 1 to 10000.
        #[arg(long, default_value_t = 1)]
        weight: u32,
        /// Zone.
        #[arg(long)]
        zone: Option<String>,
    },
    /// Remove an endpoint at once.
    Remove {
        /// `ip:port`.
        address: SocketAddr,
    },
    /// Stop new requests to an endpoint, let in-flight ones finish, then remove it.
    Drain {
        /// `ip:port`.
        address: SocketAddr,
        /// Remove it after this long even if requests are still in flight.
        #[arg(long, default_value = "30s", value_parser = edgeplane_config::duration::parse)]
        deadline: Duration,
    },
    /// Set an endpoint's weight.
    Weight {
        /// `ip:port`.
        address: SocketAddr,
        /// Relative weight, 1 to 10000.
        weight: u32,
    },
}

impl From<Action> for ScaleAction {
    fn from(a: Action) -> ScaleAction {
        match a {
            Action::Add {
                address,
                weight,
                zone,
            } => ScaleAction::Add {
                address: address.to_string(),
                weight,
                zone,
            },
            Action::Remove { address } => ScaleAction::Remove {
                address: address.to_string(),
            },
            Action::Drain { address, deadline } => ScaleAction::Drain {
                address: address.to_string(),
                deadline_ms: deadline.as_millis() as u64,
            },
            Action::Weight { address, weight } => ScaleAction::Weight {
                address: address.to_string(),
                weight,
            },
        }
    }
}

/// Runs `edgeplane scale`.
pub(crate) async fn run(args: ScaleArgs) -> anyhow::Result<ExitCode> {
    let (client, subjects) = args.nats.connect().await?;
    let id = args.id.unwrap_or_else(scale_publish::new_id);
    let stream = &args.nats.scale_stream;
    match scale_publish::publish(
        &client,
        &subjects,
        stream,
        usize::from(args.nats.replicas),
        &args.cluster,
        id,
        args.action.into(),
    )
    .await
    {
        Ok(stored) if stored.duplicate => {
            println!(
                "event {} was already stored (#{} in {stream}); nodes apply it once",
                stored.id, stored.sequence
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(stored) => {
            println!("event {} stored as #{} in {stream}; every node applies it, including nodes that start later", stored.id, stored.sequence);
            Ok(ExitCode::SUCCESS)
        }
        Err(ScaleError::Invalid(problems)) => {
            println!("rejected, nothing published:");
            for p in problems {
                println!("  {p}");
            }
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}
