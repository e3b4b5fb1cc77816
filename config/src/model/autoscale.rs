//! A cluster's `[clusters.<name>.autoscale]`: the instance count the fleet recommends for it.

use std::time::Duration;

/// Autoscale recommendations for a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Autoscale {
    /// Fewest instances recommended (at least 1).
    pub min: u32,
    /// Most instances recommended.
    pub max: u32,
    /// The signal followed.
    pub target: AutoscaleTarget,
    /// The signal's value per instance the count aims at.
    pub target_value: f64,
    /// Above this value of the signal, instances are added.
    pub scale_up_above: f64,
    /// Below this value, instances are removed.
    pub scale_down_below: f64,
    /// Time after any change before instances are added again.
    pub cooldown_up: Duration,
    /// Time after any change before instances are removed.
    pub cooldown_down: Duration,
    /// Instances added or removed at most per recommendation.
    pub max_step: u32,
    /// Scale up ahead of a rising signal: its linear trend over `window`, projected `cooldown_up`
    /// ahead.
    pub predictive: bool,
    /// The trend's window (predictive mode).
    pub window: Duration,
}

/// What an autoscaled cluster follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoscaleTarget {
    /// CPU utilisation the instances report in their heartbeats, 0 to 1 (mean).
    Cpu,
    /// Requests in flight per instance (reported in heartbeats, else this node's own count).
    InFlight,
    /// Latency in milliseconds (reported in heartbeats, else this node's own estimate; mean).
    Latency,
}

impl AutoscaleTarget {
    /// As written in the config.
    pub fn name(self) -> &'static str {
        match self {
            AutoscaleTarget::Cpu => "cpu",
            AutoscaleTarget::InFlight => "in_flight",
            AutoscaleTarget::Latency => "latency",
        }
    }
}
