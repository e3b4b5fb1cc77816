//! `edgeplane events`: tails the fleet's events (`<prefix>.event.>`) in readable form, or as the
//! JSON they are (`--json`), filtered by kind, node and cluster; rollout events included.

use super::nats::NatsArgs;
use edgeplane_bus::decode;
use edgeplane_bus::event::FleetEvent;
use futures_util::StreamExt;
use std::process::ExitCode;

/// `edgeplane events` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct EventsArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// Only events of this kind (repeat for several), e.g. `endpoint_ejected`, `config_rejected`.
    #[arg(long)]
    kind: Vec<String>,
    /// Only events of this node (repeat for several).
    #[arg(long)]
    node: Vec<String>,
    /// Only events about this cluster (repeat for several).
    #[arg(long)]
    cluster: Vec<String>,
    /// Print each event as its JSON message, one per line.
    #[arg(long)]
    json: bool,
    /// Stop after this many events (default: run until interrupted).
    #[arg(long)]
    count: Option<u64>,
}

fn wanted(filter: &[String], value: Option<&str>) -> bool {
    filter.is_empty() || value.is_some_and(|v| filter.iter().any(|f| f == v))
}

/// Runs `edgeplane events`.
pub(crate) async fn run(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let (client, subjects) = args.nats.connect().await?;
    let mut events = client.subscribe(subjects.events_all()).await?;
    client.flush().await?;
    let mut shown = 0;
    while let Some(message) = events.next().await {
        let kind = message.subject.rsplit('.').nth(1).unwrap_or("");
        if message.subject.as_str() == subjects.rollout_events() {
            // A rollout's own record of its progress: shown as it is.
            if wanted(&args.kind, Some("rollout"))
                && args.node.is_empty()
                && args.cluster.is_empty()
            {
                println!("rollout {}", String::from_utf8_lossy(&message.payload));
                shown += 1;
            }
        } else {
            match decode::<FleetEvent>(&message.payload) {
                Ok(e) => {
                    if !(wanted(&args.kind, Some(&e.kind))
                        && wanted(&args.node, Some(&e.node))
                        && wanted(&args.cluster, e.cluster.as_deref()))
                    {
                        continue;
                    }
                    if args.json {
                        println!("{}", String::from_utf8_lossy(&message.payload));
                    } else {
                        println!("{}", line(&e));
                    }
                    shown += 1;
                }
                Err(err) => {
                    eprintln!(
                        "skipping a malformed event on {} ({kind}): {err}",
                        message.subject
                    );
                    continue;
                }
            }
        }
        if args.count.is_some_and(|n| shown >= n) {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `2026-12-04T16:30:01.250Z edge-1 endpoint_ejected cluster=api endpoint=10.0.0.1:80 reason=…`
fn line(e: &FleetEvent) -> String {
    let mut out = format!("{} {} {}", time(e.time_ms), e.node, e.kind);
    if let Some(c) = &e.cluster {
        out.push_str(&format!(" cluster={c}"));
    }
    if let Some(a) = &e.endpoint {
        out.push_str(&format!(" endpoint={a}"));
    }
    for (k, v) in &e.details {
        out.push_str(&format!(" {k}={v}"));
    }
    if e.suppressed > 0 {
        out.push_str(&format!(" (and {} more held back)", e.suppressed));
    }
    out
}

/// Milliseconds since the epoch as an RFC 3339 UTC time.
fn time(ms: u64) -> String {
    edgeplane_proxy::telemetry::utc::rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_well() {
        let e = FleetEvent {
            schema: 1,
            kind: "endpoint_ejected".into(),
            node: "edge-1".into(),
            time_ms: 1_796_401_801_250,
            cluster: Some("api".into()),
            endpoint: Some("10.0.0.1:80".into()),
            details: Default::default(),
            suppressed: 3,
        };
        assert_eq!(
            line(&e),
            "2026-12-04T16:30:01.250Z edge-1 endpoint_ejected cluster=api endpoint=10.0.0.1:80 (and 3 more held back)"
        );
        assert!(wanted(&[], None));
        assert!(!wanted(&["api".into()], None));
    }
}
