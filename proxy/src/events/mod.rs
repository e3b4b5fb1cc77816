//! Fleet events: every [`SAMPLE_EVERY`] the node samples its state (endpoints' health, ejections and
//! checks; clusters' panic, priority failover and circuit-breaker refusals; the config in place; the
//! membership's freeze), turns the changes into events, keeps them within budget ([`budget`]) and
//! publishes them on `<prefix>.event.<kind>.<node>` (docs/bus.md). Sampling keeps the request path
//! untouched and coalesces what flips faster than a sample.

mod budget;
mod sample;

use crate::tables::Tables;
use crate::telemetry::Telemetry;
use edgeplane_bus::event::FleetEvent;
use edgeplane_bus::{encode, Subjects, SCHEMA_VERSION};
use edgeplane_controller::composer::Composer;
use edgeplane_controller::state::ConfigState;
use sample::{changes, circuits, ConfigSeen, Sample};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the node's state is sampled.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// What the event task reads.
pub(crate) struct Sources {
    /// The routing tables.
    pub(crate) tables: Arc<Tables>,
    /// The config in place.
    pub(crate) state: Arc<Mutex<ConfigState>>,
    /// Membership (its freeze).
    pub(crate) composer: Arc<Composer>,
}

impl Sources {
    fn sample(&self) -> Sample {
        let mut s = Sample::of(&self.tables.load());
        if let Ok(state) = self.state.lock() {
            s.config = Some(ConfigSeen {
                revision: state.revision,
                handled: state.handled,
                hash: state.hash.map(|h| h.to_string()),
            });
        }
        s.frozen = self.composer.frozen().map(|f| f.reason());
        s
    }
}

/// Samples, detects and publishes events until the task is dropped.
pub(crate) async fn run(
    client: async_nats::Client,
    subjects: Subjects,
    node: String,
    sources: Sources,
    telemetry: Option<Arc<Telemetry>>,
) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut budget = budget::Budget::new(Instant::now());
    let mut open = BTreeMap::new();
    let mut before: Option<Sample> = None;
    // The content hash in place before the last applied change (a return to it is a roll-back).
    let mut hash_before_last: Option<String> = None;
    loop {
        tick.tick().await;
        let now = Instant::now();
        let after = sources.sample();
        let Some(was) = before.replace(after.clone()) else {
            continue;
        };
        let mut found = changes(&was, &after, hash_before_last.as_deref());
        found.extend(circuits(&was, &after, &mut open, now));
        if let (Some(w), Some(a)) = (&was.config, &after.config) {
            if w.revision != a.revision {
                hash_before_last = w.hash.clone();
            }
        }
        for (change, suppressed) in budget.admit(found, now) {
            let event = FleetEvent {
                schema: SCHEMA_VERSION,
                kind: change.kind.to_string(),
                node: node.clone(),
                time_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                cluster: change.cluster,
                endpoint: change.endpoint.map(|a| a.to_string()),
                details: change
                    .details
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                suppressed,
            };
            tracing::info!(kind = %event.kind, cluster = ?event.cluster, endpoint = ?event.endpoint, details = ?event.details, suppressed, "fleet event");
            if let Some(t) = &telemetry {
                t.counter("edgeplane_events_total", &[("kind", change.kind)])
                    .increment(1);
                t.counter("edgeplane_events_suppressed_total", &[])
                    .increment(suppressed);
            }
            let Ok(subject) = subjects.event(change.kind, &node) else {
                continue;
            };
            if let Err(e) = client.publish(subject, encode(&event)).await {
                tracing::debug!(error = %e, "fleet event not sent");
            }
        }
    }
}
