//! The node's side of fleet limits on the bus: every [`REPORT_EVERY`] it publishes its demand on
//! `<prefix>.rl.usage.<node>`, reads every other node's, and recomputes its shares ([`super::fleet`]).
//! Reports that do not decode or validate are counted, logged and dropped.

use super::fleet::{Ledger, REPORT_EVERY};
use super::{Limiter, Owner};
use crate::tables::Tables;
use crate::telemetry::Telemetry;
use async_nats::connection::State;
use edgeplane_bus::usage::{KeyUsage, LimitUsage, UsageReport};
use edgeplane_bus::{decode, encode, Subjects, SCHEMA_VERSION};
use foldhash::HashMap;
use futures_util::StreamExt;
use metrics::Counter;
use std::sync::Arc;
use std::time::Instant;

/// A fleet limit's identity on the bus: owner kind, owner name, limit name.
type LimitId = (Owner, Arc<str>, String);

/// Counters of usage reports.
struct ReportMetrics {
    sent: Counter,
    received: Counter,
    malformed: Counter,
}

impl ReportMetrics {
    fn new(telemetry: Option<&Telemetry>) -> ReportMetrics {
        let c = |result: &str| {
            telemetry.map_or_else(Counter::noop, |t| {
                t.counter("edgeplane_rate_limit_reports_total", &[("result", result)])
            })
        };
        ReportMetrics {
            sent: c("sent"),
            received: c("received"),
            malformed: c("malformed"),
        }
    }
}

/// Reports and follows fleet-limit usage until the task is dropped.
pub(crate) async fn run(
    client: async_nats::Client,
    subjects: Subjects,
    node: String,
    tables: Arc<Tables>,
    telemetry: Option<Arc<Telemetry>>,
) {
    let metrics = ReportMetrics::new(telemetry.as_deref());
    let Ok(own_subject) = subjects.usage(&node) else {
        return;
    };
    let mut subscription = loop {
        match client.subscribe(subjects.usage_all()).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to rate-limit usage; retrying");
                tokio::time::sleep(REPORT_EVERY * 5).await;
            }
        }
    };
    let mut ledgers: HashMap<LimitId, Ledger> = HashMap::default();
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    let mut malformed_logged = 0u64;
    loop {
        tokio::select! {
            message = subscription.next() => {
                let Some(message) = message else { return };
                match decode::<UsageReport>(&message.payload) {
                    Ok(report) if report.node == node => {}
                    Ok(report) => {
                        metrics.received.increment(1);
                        take_report(&mut ledgers, &report);
                    }
                    Err(e) => {
                        metrics.malformed.increment(1);
                        // Logged once, then every 1,000th: a flood must not flood the log too.
                        if malformed_logged.is_multiple_of(1_000) {
                            tracing::warn!(subject = %message.subject, error = %e, dropped = malformed_logged + 1, "dropping a malformed rate-limit usage report");
                        }
                        malformed_logged += 1;
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let elapsed = now.saturating_duration_since(last);
                last = now;
                let connected = client.connection_state() == State::Connected;
                let report = account(&tables, &mut ledgers, &node, elapsed, connected, now);
                if connected && (!report.limits.is_empty()) {
                    if let Err(e) = client.publish(own_subject.clone(), encode(&report)).await {
                        tracing::debug!(error = %e, "rate-limit usage report not sent");
                    } else {
                        metrics.sent.increment(1);
                    }
                }
            }
        }
    }
}

/// Records a peer's report in the ledgers of the limits this node has.
fn take_report(ledgers: &mut HashMap<LimitId, Ledger>, report: &UsageReport) {
    let at = Instant::now();
    for l in &report.limits {
        let owner = match l.owner.as_str() {
            "route" => Owner::Route,
            _ => Owner::Cluster,
        };
        let id: LimitId = (owner, l.name.as_str().into(), l.limit.clone());
        let Some(ledger) = ledgers.get_mut(&id) else {
            continue;
        };
        let keys = l
            .keys
            .iter()
            .filter_map(|k| Some((k.hash()?, k.rate)))
            .collect();
        ledger.peer(&report.node, at, keys);
    }
}

/// Folds this node's demand into every fleet limit's ledger, recomputes the shares, and returns the
/// report to publish. Peers expire only while `connected`: with the bus down, their last demand
/// stands and shares hold still.
fn account(
    tables: &Tables,
    ledgers: &mut HashMap<LimitId, Ledger>,
    node: &str,
    elapsed: std::time::Duration,
    connected: bool,
    now: Instant,
) -> UsageReport {
    let snapshot = tables.load();
    let fleet: Vec<&Limiter> = snapshot
        .limits
        .all()
        .filter(|l| l.fleet.is_some())
        .collect();
    ledgers.retain(|id, _| {
        fleet
            .iter()
            .any(|l| l.owner == id.0 && l.owner_name == id.1 && l.spec.name == id.2)
    });
    let mut limits = Vec::with_capacity(fleet.len());
    for l in fleet {
        let Some(share) = &l.fleet else { continue };
        let id: LimitId = (l.owner, l.owner_name.clone(), l.spec.name.clone());
        let ledger = ledgers.entry(id).or_default();
        let rate_per_sec = l.spec.rate as f64 / l.spec.per.as_secs_f64().max(1e-9);
        let hot = ledger.take_own(&l.table, elapsed, rate_per_sec, share.nodes());
        if connected {
            ledger.expire(now);
        }
        ledger.apply(&l.table, share, l.policy.interval, REPORT_EVERY);
        limits.push(LimitUsage {
            owner: l.owner.name().to_string(),
            name: l.owner_name.to_string(),
            limit: l.spec.name.clone(),
            keys: hot
                .into_iter()
                .map(|(k, rate)| KeyUsage {
                    key: format!("{k:016x}"),
                    rate,
                })
                .collect(),
        });
    }
    UsageReport {
        schema: SCHEMA_VERSION,
        node: node.to_string(),
        interval_ms: REPORT_EVERY.as_millis() as u64,
        limits,
    }
}
