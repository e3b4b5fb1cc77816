//! Autoscale recommendations, on `<prefix>.autoscale.<cluster>` (core NATS): the instance count the
//! fleet's autoscale leader recommends for a cluster, when it changes and every 30 s.

use crate::wire::Validate;
use serde::{Deserialize, Serialize};

/// One recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscaleRecommendation {
    /// Schema version of this message.
    pub schema: u32,
    /// The cluster (also the last subject token).
    pub cluster: String,
    /// The node that made it (the lease holder).
    pub node: String,
    /// Instances serving now.
    pub current: u32,
    /// Instances recommended.
    pub desired: u32,
    /// Why, in a few words.
    pub reason: String,
    /// The signals used.
    pub signals: AutoscaleSignals,
    /// When, milliseconds since the Unix epoch.
    pub time_ms: u64,
}

/// The signals behind a recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscaleSignals {
    /// `cpu`, `in_flight` or `latency`: the one the cluster follows.
    pub target: String,
    /// Its aim per instance.
    pub target_value: f64,
    /// Its value now, if reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Its projection (predictive mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected: Option<f64>,
    /// Mean CPU utilisation reported, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Requests in flight per instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<f64>,
    /// Mean latency, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

impl Validate for AutoscaleRecommendation {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (field, v) in [("cluster", &self.cluster), ("node", &self.node)] {
            if !crate::subjects::valid_token(v) {
                out.push(format!("{field}: invalid name {v:?}"));
            }
        }
        out
    }
}
