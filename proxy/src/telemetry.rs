//! Prometheus metrics: one recorder per node (not the process-global one, so several nodes in one
//! process keep their own numbers), rendered at `/metrics` on the admin listener.
//!
//! Two kinds of metric, by where the number lives:
//! - events counted on the request path and in the controller (requests, durations, errors, config
//!   applies) are counters and histograms whose handles are registered once, on the cold path (a
//!   snapshot build registers its routes' handles), and only incremented on the hot path;
//! - state that already lives in atomics (in-flight per endpoint, health, connections, bus and
//!   membership counters) is copied into gauges and counters by collectors at scrape time, so the hot
//!   path pays nothing for it and removed endpoints stop being reported.
//!
//! Every name, its kind and its help text are in [`CATALOG`], which `docs/metrics.md` mirrors.

pub(crate) mod access_writer;
mod catalog;
mod collect;
mod fleet;
mod route;
pub(crate) mod traffic;
pub mod utc;

pub use catalog::{Kind, CATALOG};
pub(crate) use collect::collect_node;
pub(crate) use fleet::{collect_controller, collect_rollout, push_metrics};
pub(crate) use route::RouteMetrics;

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use metrics_util::MetricKindMask;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Histogram buckets for request durations, in seconds (100 µs to 30 s).
const DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 30.0,
];

/// A scrape-time collector: copies state kept elsewhere into this node's metrics.
pub(crate) type Collector = Box<dyn Fn(&Telemetry) + Send + Sync>;

/// One node's metrics.
pub struct Telemetry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    collectors: Mutex<Vec<Collector>>,
    traffic: Arc<traffic::TrafficTotals>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

const METADATA: Metadata<'static> =
    Metadata::new("edgeplane", metrics::Level::INFO, Some(module_path!()));

impl Telemetry {
    /// A fresh set of metrics with every name of the [`CATALOG`] described.
    pub(crate) fn new() -> Arc<Telemetry> {
        let builder = PrometheusBuilder::new()
            // Gauges are set by collectors at every scrape: one not set for a minute belongs to
            // something that is gone (a removed endpoint) and is dropped.
            .idle_timeout(MetricKindMask::GAUGE, Some(Duration::from_secs(60)));
        let recorder = match builder.set_buckets(&DURATION_BUCKETS) {
            Ok(b) => b.build_recorder(),
            // Only fails for an empty bucket list, which this is not.
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        for m in CATALOG {
            let (name, help) = (m.name.into(), m.help.into());
            match m.kind {
                Kind::Counter => recorder.describe_counter(name, None, help),
                Kind::Gauge => recorder.describe_gauge(name, None, help),
                Kind::Histogram => recorder.describe_histogram(name, None, help),
            }
        }
        let handle = recorder.handle();
        Arc::new(Telemetry {
            recorder,
            handle,
            collectors: Mutex::new(Vec::new()),
            traffic: Arc::default(),
        })
    }

    /// The counter `name` with these labels (registered once, then shared).
    pub(crate) fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder
            .register_counter(&key(name, labels), &METADATA)
    }

    /// The gauge `name` with these labels.
    pub(crate) fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &METADATA)
    }

    /// The histogram `name` with these labels.
    pub(crate) fn histogram(
        &self,
        name: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Histogram {
        self.recorder
            .register_histogram(&key(name, labels), &METADATA)
    }

    /// The node's answered requests, all routes together (reported in status replies).
    pub(crate) fn traffic(&self) -> &Arc<traffic::TrafficTotals> {
        &self.traffic
    }

    /// Adds a scrape-time collector.
    pub(crate) fn collect_with(&self, collector: Collector) {
        self.collectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(collector);
    }

    /// Runs the collectors and renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        {
            let collectors = self.collectors.lock().unwrap_or_else(|p| p.into_inner());
            for c in collectors.iter() {
                c(self);
            }
        }
        self.handle.render()
    }

    /// Folds recorded histogram samples into their buckets and drops metrics that stopped being
    /// reported. Runs every few seconds so that memory stays bounded between scrapes.
    pub(crate) async fn upkeep(self: Arc<Self>) {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            self.handle.run_upkeep();
        }
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::new(*k, v.to_string()))
        .collect();
    Key::from_parts(name, labels)
}

/// The Prometheus status class of a status code: `1xx` to `5xx`.
pub(crate) fn status_class(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// Label values of [`status_class`].
pub(crate) const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
