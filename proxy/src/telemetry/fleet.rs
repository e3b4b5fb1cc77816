//! The controller's scrape-time collector: bus, config and membership counters, copied from the
//! atomics the controller keeps.

use super::Telemetry;
use edgeplane_bus::BusStats;
use edgeplane_controller::composer::Composer;
use edgeplane_controller::follow::RolloutView;
use edgeplane_controller::pushes::PushMetrics;
use edgeplane_controller::state::ConfigState;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Handles the config follower records into.
pub(crate) fn push_metrics(t: &Telemetry) -> PushMetrics {
    PushMetrics {
        applied: t.counter("edgeplane_config_applies_total", &[("result", "applied")]),
        rejected: t.counter("edgeplane_config_applies_total", &[("result", "rejected")]),
        latency: t.histogram("edgeplane_config_push_apply_seconds", &[]),
    }
}

/// Registers the collector of the staged rollout as this node sees it.
pub(crate) fn collect_rollout(telemetry: &Telemetry, view: Arc<Mutex<RolloutView>>) {
    telemetry.collect_with(Box::new(move |t: &Telemetry| {
        let v = view.lock().map(|v| v.clone()).unwrap_or_default();
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        t.gauge("edgeplane_rollout_active", &[]).set(flag(v.active));
        if let Some(phase) = v.phase {
            let name = serde_json::to_value(phase)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            t.gauge("edgeplane_rollout_phase", &[("phase", &name)])
                .set(1.0);
        }
        t.gauge("edgeplane_rollout_wave", &[]).set(v.wave as f64);
        t.gauge("edgeplane_rollout_waves", &[]).set(v.waves as f64);
        t.gauge("edgeplane_rollout_candidate_revision", &[])
            .set(v.candidate as f64);
        t.gauge("edgeplane_rollout_serving_candidate", &[])
            .set(flag(v.serving_candidate));
        t.gauge("edgeplane_rollout_gates_failing", &[])
            .set(v.gates_failing as f64);
    }));
}

/// Registers the collector of a node's controller.
pub(crate) fn collect_controller(
    telemetry: &Telemetry,
    bus: Arc<BusStats>,
    state: Arc<Mutex<ConfigState>>,
    composer: Arc<Composer>,
) {
    telemetry.collect_with(Box::new(move |t: &Telemetry| {
        let (revision, handled) = state.lock().map_or((0, 0), |s| (s.revision, s.handled));
        t.gauge("edgeplane_config_revision", &[])
            .set(revision as f64);
        t.gauge("edgeplane_config_handled_revision", &[])
            .set(handled as f64);
        t.gauge("edgeplane_bus_connected", &[])
            .set(f64::from(u8::from(bus.connected.load(Relaxed))));
        let copy = |name: &'static str, labels: &[(&'static str, &str)], v: &AtomicU64| {
            t.counter(name, labels).absolute(v.load(Relaxed));
        };
        copy("edgeplane_bus_connects_total", &[], &bus.connects);
        copy("edgeplane_bus_disconnects_total", &[], &bus.disconnects);
        copy("edgeplane_bus_decode_errors_total", &[], &bus.decode_errors);
        copy(
            "edgeplane_bus_slow_consumer_total",
            &[],
            &bus.slow_consumers,
        );
        copy("edgeplane_bus_errors_total", &[], &bus.errors);
        copy("edgeplane_bus_messages_received_total", &[], &bus.received);
        let s = &composer.stats;
        let hb = "edgeplane_heartbeats_total";
        copy(hb, &[("result", "in_place")], &s.heartbeats_in_place);
        copy(hb, &[("result", "joined")], &s.joins);
        copy(hb, &[("result", "stale")], &s.heartbeats_stale);
        copy(hb, &[("result", "ignored")], &s.heartbeats_ignored);
        copy("edgeplane_heartbeats_expired_total", &[], &s.expired);
        let rebuilds = "edgeplane_membership_rebuilds_total";
        copy(rebuilds, &[("result", "ok")], &s.rebuilds);
        copy(rebuilds, &[("result", "failed")], &s.rebuild_failures);
        let scale = "edgeplane_scale_events_total";
        copy(scale, &[("result", "applied")], &s.scale_events);
        copy(scale, &[("result", "duplicate")], &s.scale_duplicates);
        copy(
            "edgeplane_membership_silent_clusters_total",
            &[],
            &s.silent_clusters,
        );
        t.counter("edgeplane_heartbeats_missed_total", &[])
            .absolute(composer.missed_heartbeats());
        t.gauge("edgeplane_membership_instances", &[])
            .set(composer.instances() as f64);
        t.gauge("edgeplane_membership_held_instances", &[])
            .set(composer.held() as f64);
        t.gauge("edgeplane_membership_frozen", &[])
            .set(f64::from(u8::from(composer.frozen().is_some())));
    }));
}
