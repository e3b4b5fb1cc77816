//! Fleet events, on `<prefix>.event.<kind>.<node>` (core NATS): what happens on a node that an
//! operator or a tool wants to hear of, one message per change (docs/bus.md lists the kinds).

use crate::wire::Validate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every kind of fleet event, as its subject token.
pub const KINDS: [&str; 17] = [
    "config_applied",
    "config_rejected",
    "config_rolled_back",
    "endpoint_down",
    "endpoint_up",
    "endpoint_ejected",
    "endpoint_restored",
    "health_check_failed",
    "health_check_passed",
    "cluster_panic_entered",
    "cluster_panic_left",
    "cluster_failover",
    "cluster_failback",
    "circuit_open",
    "circuit_closed",
    "membership_frozen",
    "autoscale_recommendation",
];

/// One fleet event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetEvent {
    /// Schema version of this message.
    pub schema: u32,
    /// What happened: one of [`KINDS`] (or `membership_thawed`), also the subject's kind token.
    pub kind: String,
    /// The node it happened on.
    pub node: String,
    /// When the node saw it, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The cluster concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The endpoint concerned (`ip:port`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Details of the kind (a revision, a reason, shares...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// Events of the same kind and subject left out since the last one sent (rate limit).
    #[serde(default)]
    pub suppressed: u64,
}

impl Validate for FleetEvent {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !crate::subjects::valid_token(&self.kind) {
            out.push(format!("kind: invalid name {:?}", self.kind));
        }
        if !crate::subjects::valid_token(&self.node) {
            out.push(format!("node: invalid name {:?}", self.node));
        }
        out
    }
}
