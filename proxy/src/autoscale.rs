//! Autoscale recommendations on a node: every second, each cluster with `[clusters.<name>.autoscale]`
//! gets its signals from the tables (what its instances report in their heartbeats, else this node's
//! own view of in-flight and latency) and a recommendation ([`edgeplane_controller::autoscale`]).
//! Every node computes them (the admin API and metrics show them); only the holder of the fleet's
//! `autoscale` lease publishes them, on `<prefix>.autoscale.<cluster>`, when the desired count
//! changes and every [`REPEAT_EVERY`], with an `autoscale_recommendation` fleet event on a change.

use crate::tables::{Cluster, Tables};
use crate::telemetry::Telemetry;
use edgeplane_bus::autoscale::{AutoscaleRecommendation, AutoscaleSignals};
use edgeplane_bus::event::FleetEvent;
use edgeplane_bus::{encode, Subjects, SCHEMA_VERSION};
use edgeplane_config::model::Autoscale;
use edgeplane_controller::autoscale::decide::{Recommendation, Recommender, Signals};
use edgeplane_controller::autoscale::lease::Lease;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often recommendations are computed.
pub(crate) const EVERY: Duration = Duration::from_secs(1);
/// An unchanged recommendation is published again this often.
pub(crate) const REPEAT_EVERY: Duration = Duration::from_secs(30);

/// One cluster's latest recommendation, for the admin API.
#[derive(Debug, Clone)]
pub(crate) struct ClusterView {
    pub(crate) config: Autoscale,
    pub(crate) signals: Signals,
    pub(crate) recommendation: Recommendation,
}

/// What this node computed, and whether it leads.
#[derive(Debug, Default)]
pub(crate) struct AutoscaleView {
    pub(crate) leader: AtomicBool,
    pub(crate) clusters: Mutex<BTreeMap<String, ClusterView>>,
}

/// A cluster's signals from the tables.
fn signals(c: &Cluster) -> Signals {
    let serving: Vec<_> = c
        .endpoints
        .iter()
        .filter(|e| e.upstream.usable(c.health_threshold) && !e.upstream.draining())
        .collect();
    let n = serving.len();
    let mean = |f: &dyn Fn(&crate::tables::Endpoint) -> f64| -> Option<f64> {
        (n > 0).then(|| serving.iter().map(|e| f(e)).sum::<f64>() / n as f64)
    };
    // Heartbeats report load: any non-zero value means the instances speak for themselves.
    let reported = serving.iter().any(|e| {
        let (f, cpu, lat) = e.upstream.reported_load();
        f > 0 || cpu > 0.0 || !lat.is_zero()
    });
    let (cpu, in_flight, latency_ms) = if reported {
        (
            mean(&|e| f64::from(e.upstream.reported_load().1)),
            mean(&|e| f64::from(e.upstream.reported_load().0)),
            mean(&|e| e.upstream.reported_load().2.as_secs_f64() * 1e3),
        )
    } else {
        let latencies: Vec<f64> = serving
            .iter()
            .filter_map(|e| e.upstream.ewma_latency())
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        (
            None,
            mean(&|e| f64::from(e.upstream.in_flight())),
            (!latencies.is_empty()).then(|| latencies.iter().sum::<f64>() / latencies.len() as f64),
        )
    };
    Signals {
        instances: n as u32,
        cpu,
        in_flight,
        latency_ms,
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Computes, and while leading publishes, recommendations until the task is dropped.
pub(crate) async fn run(
    client: async_nats::Client,
    subjects: Subjects,
    node: String,
    replicas: usize,
    tables: Arc<Tables>,
    view: Arc<AutoscaleView>,
    telemetry: Option<Arc<Telemetry>>,
) {
    let mut lease = Lease::new(client.clone(), "autoscale", &node, replicas);
    let mut recommenders: BTreeMap<String, Recommender> = BTreeMap::new();
    let mut published: BTreeMap<String, (u32, Instant)> = BTreeMap::new();
    let mut renewed: Option<Instant> = None;
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let snapshot = tables.load();
        let autoscaled: Vec<(&Cluster, Autoscale)> = snapshot
            .clusters
            .iter()
            .filter_map(|c| {
                let cfg = snapshot
                    .routing
                    .clusters
                    .iter()
                    .find(|m| *m.name == *c.name)?
                    .autoscale
                    .clone()?;
                Some((c, cfg))
            })
            .collect();
        recommenders.retain(|name, _| autoscaled.iter().any(|(c, _)| *c.name == **name));
        if autoscaled.is_empty() {
            if lease.holds() {
                lease.release().await;
            }
            view.leader.store(false, Relaxed);
            view.clusters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            continue;
        }
        // The holder renews every third of the lease's TTL; the others try every second, so that a
        // dead holder is replaced within the TTL plus a second.
        if !lease.holds()
            || renewed.is_none_or(|t| now.saturating_duration_since(t) >= Lease::renew_every())
        {
            lease.hold().await;
            renewed = Some(now);
        }
        let leading = lease.holds();
        view.leader.store(leading, Relaxed);
        let mut current = BTreeMap::new();
        for (c, cfg) in autoscaled {
            let s = signals(c);
            let rec = recommenders
                .entry(c.name.to_string())
                .or_default()
                .step(&cfg, &s, now);
            if let Some(t) = &telemetry {
                let labels = [("cluster", &*c.name)];
                t.gauge("edgeplane_autoscale_desired_instances", &labels)
                    .set(f64::from(rec.desired));
                t.gauge("edgeplane_autoscale_current_instances", &labels)
                    .set(f64::from(rec.current));
            }
            if leading {
                let due = match published.get(&*c.name) {
                    Some((desired, at)) => {
                        *desired != rec.desired
                            || now.saturating_duration_since(*at) >= REPEAT_EVERY
                    }
                    None => true,
                };
                if due {
                    let changed = published
                        .get(&*c.name)
                        .is_none_or(|(d, _)| *d != rec.desired);
                    publish(&client, &subjects, &node, &c.name, &cfg, &s, &rec, changed).await;
                    published.insert(c.name.to_string(), (rec.desired, now));
                }
            }
            current.insert(
                c.name.to_string(),
                ClusterView {
                    config: cfg,
                    signals: s,
                    recommendation: rec,
                },
            );
        }
        if !leading {
            published.clear();
        }
        if let Some(t) = &telemetry {
            t.gauge("edgeplane_autoscale_leader", &[])
                .set(if leading { 1.0 } else { 0.0 });
        }
        *view.clusters.lock().unwrap_or_else(|p| p.into_inner()) = current;
    }
}

/// Publishes a recommendation, and a fleet event when the desired count `changed`.
#[allow(clippy::too_many_arguments)]
async fn publish(
    client: &async_nats::Client,
    subjects: &Subjects,
    node: &str,
    cluster: &str,
    cfg: &Autoscale,
    s: &Signals,
    rec: &Recommendation,
    changed: bool,
) {
    let message = AutoscaleRecommendation {
        schema: SCHEMA_VERSION,
        cluster: cluster.to_string(),
        node: node.to_string(),
        current: rec.current,
        desired: rec.desired,
        reason: rec.reason.clone(),
        signals: AutoscaleSignals {
            target: cfg.target.name().to_string(),
            target_value: cfg.target_value,
            value: rec.value,
            projected: rec.projected,
            cpu: s.cpu,
            in_flight: s.in_flight,
            latency_ms: s.latency_ms,
        },
        time_ms: unix_ms(),
    };
    if let Ok(subject) = subjects.autoscale(cluster) {
        if let Err(e) = client.publish(subject, encode(&message)).await {
            tracing::debug!(error = %e, "autoscale recommendation not sent");
        }
    }
    if changed {
        tracing::info!(cluster, current = rec.current, desired = rec.desired, reason = %rec.reason, "autoscale recommendation");
        let event = FleetEvent {
            schema: SCHEMA_VERSION,
            kind: "autoscale_recommendation".into(),
            node: node.to_string(),
            time_ms: message.time_ms,
            cluster: Some(cluster.to_string()),
            endpoint: None,
            details: [
                ("current".to_string(), rec.current.to_string()),
                ("desired".to_string(), rec.desired.to_string()),
                ("reason".to_string(), rec.reason.clone()),
            ]
            .into(),
            suppressed: 0,
        };
        if let Ok(subject) = subjects.event("autoscale_recommendation", node) {
            let _ = client.publish(subject, encode(&event)).await;
        }
    }
}
