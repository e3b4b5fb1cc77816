//! Wire messages, JSON with a `schema` version field. Field names and meanings are the public contract
//! documented in `docs/bus.md`; change them only with a new schema version.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// A node's answer to a config revision, on `<prefix>.ack.<node>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigAck {
    /// Schema version of this message.
    pub schema: u32,
    /// The node that answers.
    pub node: String,
    /// Changes at every process start, so a restart is visible.
    pub boot_id: String,
    /// The KV revision the answer is about.
    pub revision: u64,
    /// SHA-256 of the routing document (hex), when it parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// What the node did.
    pub status: AckStatus,
    /// Every error, with its path, when rejected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// What a node did with a config revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    /// Validated and in place.
    Applied,
    /// Invalid; nothing changed.
    Rejected,
}

/// A backend instance's heartbeat, on `<prefix>.hb.<cluster>.<instance>` (core NATS, lossy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Schema version of this message.
    pub schema: u32,
    /// Instance id (also the last subject token).
    pub instance: String,
    /// Changes when the instance restarts; sequences restart with it.
    pub boot_id: String,
    /// Increases by one per heartbeat within a boot; older or repeated sequences are dropped.
    pub seq: u64,
    /// `ip:port` that serves traffic.
    pub address: String,
    /// Relative weight, 1..=10000 (default 1).
    #[serde(default = "one")]
    pub weight: u32,
    /// Zone of the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Health score, 0 (down) to 100 (fully healthy).
    #[serde(default = "hundred")]
    pub health: u8,
    /// Requests in flight at the instance.
    #[serde(default)]
    pub in_flight: u32,
    /// CPU use, 0.0 to 1.0 (per the instance's own measure).
    #[serde(default)]
    pub cpu: f32,
    /// Recent latency seen by the instance, in milliseconds.
    #[serde(default)]
    pub latency_ms: f32,
    /// Without a newer heartbeat within this many milliseconds, the instance is down.
    pub ttl_ms: u64,
    /// The instance is leaving: nodes stop sending it new requests, let in-flight ones finish, then
    /// (for a self-registered instance) remove it, at the latest `ttl_ms` later.
    #[serde(default)]
    pub draining: bool,
}

fn one() -> u32 {
    1
}

fn hundred() -> u8 {
    100
}

/// A scaling event, on `<prefix>.scale.<cluster>` (durable in a JetStream stream). Unlike the other
/// messages it tolerates unknown fields: serde cannot reject them through the flattened action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleEvent {
    /// Schema version of this message.
    pub schema: u32,
    /// Unique id; an event seen before is ignored (idempotency).
    pub id: String,
    /// What to do.
    #[serde(flatten)]
    pub action: ScaleAction,
}

/// The change a scaling event asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ScaleAction {
    /// Add an endpoint (or update it if present).
    Add {
        /// `ip:port`.
        address: String,
        /// Relative weight, 1..=10000.
        #[serde(default = "one")]
        weight: u32,
        /// Zone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<String>,
    },
    /// Remove an endpoint at once.
    Remove {
        /// `ip:port`.
        address: String,
    },
    /// Stop sending new requests to an endpoint, let in-flight ones finish, then remove it.
    Drain {
        /// `ip:port`.
        address: String,
        /// Remove it after this many milliseconds even if requests are still in flight.
        #[serde(default = "drain_deadline")]
        deadline_ms: u64,
    },
    /// Change an endpoint's weight.
    Weight {
        /// `ip:port`.
        address: String,
        /// Relative weight, 1..=10000.
        weight: u32,
    },
}

fn drain_deadline() -> u64 {
    30_000
}

/// A node's periodic announcement, on `<prefix>.node.<node>`, and its answer to `<prefix>.status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeStatus {
    /// Schema version of this message.
    pub schema: u32,
    /// Node id.
    pub node: String,
    /// Changes at every process start.
    pub boot_id: String,
    /// Zone of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// edgeplane version.
    pub version: String,
    /// KV revision of the config in place (0 = file config only); a rejected revision never shows
    /// here.
    pub revision: u64,
    /// The newest revision handled, applied or rejected (absent from nodes older than this field).
    #[serde(default)]
    pub handled: u64,
    /// Content hash of the routing document in place.
    pub hash: String,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Requests received since start (a counter: rates are its differences).
    pub requests: u64,
    /// Open downstream connections.
    pub connections: u64,
    /// What the node answered since start (counters), for rollout gates; absent from nodes older
    /// than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
}

/// A node's answer to a dry-run request on `<prefix>.validate` (the request's payload is a routing
/// document): whether it would apply it, without applying it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateReply {
    /// Schema version of this message.
    pub schema: u32,
    /// The node that answers.
    pub node: String,
    /// Changes at every process start.
    pub boot_id: String,
    /// True when the node would apply the document.
    pub valid: bool,
    /// Content hash of the document, when it parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Every error, with its path, when not valid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Upper bounds (milliseconds, inclusive) of the buckets of [`Traffic::headers_ms`]; one more bucket
/// counts everything slower.
pub const HEADER_BOUNDS_MS: [f64; 24] = [
    0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0,
    500.0, 750.0, 1000.0, 1500.0, 2000.0, 3000.0, 5000.0, 10000.0,
];

/// A node's answered requests since start, all routes together: counters, so that a reader takes the
/// difference of two reports for a window (a changed `boot_id` means the counters started over).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Responses sent to clients (any status).
    pub answered: u64,
    /// Of them, with a 5xx status (the proxy's own 502/503/504 included).
    pub status_5xx: u64,
    /// Requests the proxy answered itself for want of a route or a working upstream: `no_route`,
    /// `no_endpoint`, `connect_failed`, `upstream_timeout`, `upstream_error`, `circuit_open`
    /// (not the client's own faults, `bad_request` and `client_timeout`).
    pub proxy_errors: u64,
    /// Time to response headers: counts per bucket of [`HEADER_BOUNDS_MS`], then one for slower.
    pub headers_ms: Vec<u64>,
}

/// Checks a decoded message beyond its shape.
pub trait Validate {
    /// Every problem, as `field: message`.
    fn problems(&self) -> Vec<String>;
}

fn check_address(field: &str, address: &str, out: &mut Vec<String>) {
    if address.parse::<SocketAddr>().is_err() {
        out.push(format!(
            "{field}: invalid socket address {address:?} (expected ip:port)"
        ));
    }
}

fn check_weight(weight: u32, out: &mut Vec<String>) {
    if !(1..=10_000).contains(&weight) {
        out.push(format!("weight: {weight} is out of range 1..=10000"));
    }
}

fn check_token(field: &str, value: &str, out: &mut Vec<String>) {
    if !crate::subjects::valid_token(value) {
        out.push(format!(
            "{field}: invalid name {value:?}: use 1 to 64 letters, digits, '-' or '_'"
        ));
    }
}

impl Validate for Heartbeat {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        check_token("instance", &self.instance, &mut out);
        check_address("address", &self.address, &mut out);
        check_weight(self.weight, &mut out);
        if self.health > 100 {
            out.push(format!("health: {} is out of range 0..=100", self.health));
        }
        if self.ttl_ms == 0 {
            out.push("ttl_ms: must be greater than zero".into());
        }
        if let Some(z) = &self.zone {
            check_token("zone", z, &mut out);
        }
        if !(0.0..=1.0).contains(&self.cpu) || !self.latency_ms.is_finite() || self.latency_ms < 0.0
        {
            out.push(
                "cpu/latency_ms: cpu must be within 0..=1 and latency_ms finite and non-negative"
                    .into(),
            );
        }
        out
    }
}

impl Validate for ScaleEvent {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.id.is_empty() || self.id.len() > 128 {
            out.push("id: must be 1 to 128 bytes".into());
        }
        match &self.action {
            ScaleAction::Add {
                address,
                weight,
                zone,
            } => {
                check_address("address", address, &mut out);
                check_weight(*weight, &mut out);
                if let Some(z) = zone {
                    check_token("zone", z, &mut out);
                }
            }
            ScaleAction::Remove { address } | ScaleAction::Drain { address, .. } => {
                check_address("address", address, &mut out);
            }
            ScaleAction::Weight { address, weight } => {
                check_address("address", address, &mut out);
                check_weight(*weight, &mut out);
            }
        }
        out
    }
}

impl Validate for ConfigAck {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        check_token("node", &self.node, &mut out);
        out
    }
}

impl Validate for ValidateReply {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        check_token("node", &self.node, &mut out);
        out
    }
}

impl Validate for NodeStatus {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        check_token("node", &self.node, &mut out);
        out
    }
}
