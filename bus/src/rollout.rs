//! Staged rollouts on the wire: the rollout record every node follows (key [`ROLLOUT_KEY`] of the
//! config bucket), the candidate document beside it (key [`CANDIDATE_KEY`]), and the events a driver
//! publishes. A node serves the candidate when the record is active and its [`Selector`] picks the
//! node; every other node serves the bucket's `current` key. Documented in `docs/bus.md`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The key of the rollout record in the config bucket.
pub const ROLLOUT_KEY: &str = "rollout";
/// The key of the candidate document in the config bucket.
pub const CANDIDATE_KEY: &str = "candidate";

/// Where a rollout stands. Only [`Phase::Running`] and [`Phase::Paused`] put selected nodes on the
/// candidate; the others are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The record is claimed; the candidate is being written. No node serves it yet.
    Starting,
    /// A driver moves the waves forward.
    Running,
    /// Waiting for a person: the driver stopped (not enough traffic to judge, or it was told to).
    /// Nodes stay as they are.
    Paused,
    /// Every wave passed; the candidate became the `current` key.
    Completed,
    /// A gate failed or a wave did not acknowledge in time; every node went back to `current`.
    RolledBack,
    /// Someone aborted it; every node went back to `current`.
    Aborted,
}

impl Phase {
    /// Whether selected nodes serve the candidate in this phase.
    pub fn active(self) -> bool {
        matches!(self, Phase::Running | Phase::Paused)
    }

    /// Whether the rollout is over (a new one may start).
    pub fn finished(self) -> bool {
        matches!(self, Phase::Completed | Phase::RolledBack | Phase::Aborted)
    }
}

/// Which nodes serve the candidate: a node is selected when its id is in `nodes`, or its zone is in
/// `zones`, or its [`position`] is at most `position_max`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    /// Node ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// Positions up to this one (inclusive), as 16 lower-case hex digits; absent: none by position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_max: Option<String>,
}

impl Selector {
    /// Whether node `node` in `zone` is selected.
    pub fn selects(&self, node: &str, zone: Option<&str>) -> bool {
        if self.nodes.iter().any(|n| n == node) {
            return true;
        }
        if let Some(z) = zone {
            if self.zones.iter().any(|s| s == z) {
                return true;
            }
        }
        self.position_max
            .as_deref()
            .and_then(parse_position)
            .is_some_and(|max| position(node) <= max)
    }

    /// Whether it selects nothing at all.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.zones.is_empty() && self.position_max.is_none()
    }
}

/// A node's place in every rollout's order: the first 8 bytes of SHA-256 of its id, big-endian. The
/// same nodes come first in every rollout, on every driver.
pub fn position(node: &str) -> u64 {
    let digest = Sha256::digest(node.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// A position as written in a [`Selector`].
pub fn format_position(p: u64) -> String {
    format!("{p:016x}")
}

/// Parses a position written by [`format_position`].
pub fn parse_position(s: &str) -> Option<u64> {
    (s.len() == 16)
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

/// The rollout record, JSON under [`ROLLOUT_KEY`]. Nodes read `phase`, `candidate`, `selector` and
/// `expires_ms`; the rest is the driver's, kept so that another driver can resume and so that
/// `edgeplane rollout status` can tell the story. Unknown fields are tolerated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    /// Schema version of this message.
    pub schema: u32,
    /// Rollout id.
    pub id: String,
    /// Where it stands.
    pub phase: Phase,
    /// Revision of the `current` key when the rollout started: what nodes outside the waves serve,
    /// and what a rollback returns to.
    pub base: u64,
    /// Revision of the [`CANDIDATE_KEY`] entry being rolled out (0 while starting).
    #[serde(default)]
    pub candidate: u64,
    /// Content hash of the candidate document.
    #[serde(default)]
    pub candidate_hash: String,
    /// The nodes that serve the candidate now.
    #[serde(default)]
    pub selector: Selector,
    /// Unix milliseconds after which nodes treat an active rollout as abandoned and serve `current`
    /// (a driver renews it while it runs); 0: never.
    #[serde(default)]
    pub expires_ms: u64,
    /// The plan, as given.
    #[serde(default)]
    pub plan: PlanRecord,
    /// Index of the wave in progress (into `plan.waves`).
    #[serde(default)]
    pub wave: usize,
    /// What happened to each wave started so far.
    #[serde(default)]
    pub waves: Vec<WaveRecord>,
    /// The driver that moves it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<DriverRecord>,
    /// Set by `edgeplane rollout promote`: end the current wave's bake now.
    #[serde(default)]
    pub promote: bool,
    /// Why it ended or paused, with figures.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Revision of `current` written when it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_revision: Option<u64>,
    /// Unix milliseconds of the start.
    #[serde(default)]
    pub started_ms: u64,
    /// Unix milliseconds of the last change.
    #[serde(default)]
    pub updated_ms: u64,
}

impl RolloutRecord {
    /// A record claimed by a driver at Unix time `now_ms`, before its candidate is written.
    pub fn starting(id: String, base: u64, plan: PlanRecord, driver: String, now_ms: u64) -> Self {
        RolloutRecord {
            schema: crate::SCHEMA_VERSION,
            id,
            phase: Phase::Starting,
            base,
            candidate: 0,
            candidate_hash: String::new(),
            selector: Selector::default(),
            expires_ms: 0,
            plan,
            wave: 0,
            waves: Vec::new(),
            driver: Some(DriverRecord {
                id: driver,
                seen_ms: now_ms,
            }),
            promote: false,
            reason: String::new(),
            completed_revision: None,
            started_ms: now_ms,
            updated_ms: now_ms,
        }
    }

    /// Whether node `node` in `zone` should serve the candidate at Unix time `now_ms`.
    pub fn serves_candidate(&self, node: &str, zone: Option<&str>, now_ms: u64) -> bool {
        self.phase.active()
            && self.candidate > 0
            && !self.expired(now_ms)
            && self.selector.selects(node, zone)
    }

    /// Whether the driver's lease ran out at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms != 0 && now_ms > self.expires_ms
    }
}

/// The plan of a rollout as stored in its record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    /// Waves as written (`1`, `10%`, `zone:eu-1`, `node:edge-3+edge-4`).
    pub waves: Vec<String>,
    /// Bake time of each wave, milliseconds.
    pub bake_ms: u64,
    /// How long a wave's nodes have to apply the candidate, milliseconds.
    pub wave_timeout_ms: u64,
    /// Fewest requests a wave's nodes must answer during a bake for the gates to judge it.
    pub min_requests: u64,
    /// Nodes revert on their own this long after the driver was last heard of; 0: never.
    pub abandon_after_ms: u64,
    /// Gate thresholds.
    pub gates: GatesRecord,
}

/// Gate thresholds: the wave's figures against the baseline's over the same bake.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GatesRecord {
    /// The wave's 5xx ratio may exceed the baseline's by at most this many percentage points...
    pub max_5xx_increase_pct: f64,
    /// ...and be at most this many times the baseline's (differences under 0.1 point are ignored).
    pub max_5xx_factor: f64,
    /// The same two limits for the ratio of requests the proxy answered itself (no route, no
    /// endpoint, connect failed, upstream timeout...).
    pub max_proxy_error_increase_pct: f64,
    /// See `max_proxy_error_increase_pct`.
    pub max_proxy_error_factor: f64,
    /// The wave's p99 time to response headers may be at most the baseline's times this...
    pub max_p99_factor: f64,
    /// ...plus this many milliseconds.
    pub p99_slack_ms: f64,
}

impl Default for GatesRecord {
    fn default() -> Self {
        GatesRecord {
            max_5xx_increase_pct: 1.0,
            max_5xx_factor: 2.0,
            max_proxy_error_increase_pct: 1.0,
            max_proxy_error_factor: 2.0,
            max_p99_factor: 1.5,
            p99_slack_ms: 50.0,
        }
    }
}

/// One wave's story.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WaveRecord {
    /// The wave as written in the plan.
    pub spec: String,
    /// Nodes this wave put on the candidate (not counting earlier waves').
    pub nodes: Vec<String>,
    /// Unix milliseconds when it started.
    pub started_ms: u64,
    /// When every node of the wave serves the candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_ms: Option<u64>,
    /// When its bake ended with the gates passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed_ms: Option<u64>,
    /// The gates' last verdict, one line per gate with its figures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<String>,
}

/// Who drives a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverRecord {
    /// `host:pid` of the driver.
    pub id: String,
    /// Unix milliseconds when it last wrote the record.
    pub seen_ms: u64,
}

/// What happened to a rollout, published on `<prefix>.event.rollout` by its driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutEvent {
    /// Schema version of this message.
    pub schema: u32,
    /// Rollout id.
    pub rollout: String,
    /// What happened.
    pub kind: EventKind,
    /// Wave index it concerns.
    pub wave: usize,
    /// Candidate revision.
    pub candidate: u64,
    /// Nodes concerned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Figures and reasons, readable.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Unix milliseconds.
    pub at_ms: u64,
}

/// Kinds of [`RolloutEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The rollout was created.
    Started,
    /// A wave's nodes were put on the candidate.
    WaveStarted,
    /// A wave's bake ended with its gates passed.
    WavePassed,
    /// A wave's bake was cut short by `edgeplane rollout promote`.
    Promoted,
    /// A gate failed, a node rejected the candidate, or a wave did not apply it in time.
    Failed,
    /// Every node is back on `current`.
    RolledBack,
    /// The driver paused it.
    Paused,
    /// Someone aborted it.
    Aborted,
    /// The candidate became `current` for the whole fleet.
    Completed,
}

impl crate::wire::Validate for RolloutRecord {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.id.is_empty() || self.id.len() > 128 {
            out.push("id: must be 1 to 128 bytes".into());
        }
        if self.phase.active() && self.candidate == 0 {
            out.push("candidate: an active rollout needs its candidate revision".into());
        }
        if let Some(p) = &self.selector.position_max {
            if parse_position(p).is_none() {
                out.push(format!("selector.position_max: {p:?} is not 16 hex digits"));
            }
        }
        for (i, n) in self.selector.nodes.iter().enumerate() {
            if !crate::subjects::valid_token(n) {
                out.push(format!("selector.nodes[{i}]: invalid node id {n:?}"));
            }
        }
        out
    }
}

impl crate::wire::Validate for RolloutEvent {
    fn problems(&self) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_stable_and_spread() {
        assert_eq!(position("edge-1"), position("edge-1"));
        assert_ne!(position("edge-1"), position("edge-2"));
        let p = position("edge-1");
        assert_eq!(parse_position(&format_position(p)), Some(p));
        assert_eq!(parse_position("xyz"), None);
        assert_eq!(parse_position("00"), None);
    }

    #[test]
    fn selector_by_id_zone_and_position() {
        let none = Selector::default();
        assert!(none.is_empty() && !none.selects("a", Some("z")));
        let by_id = Selector {
            nodes: vec!["a".into()],
            ..Selector::default()
        };
        assert!(by_id.selects("a", None) && !by_id.selects("b", None));
        let by_zone = Selector {
            zones: vec!["eu".into()],
            ..Selector::default()
        };
        assert!(by_zone.selects("b", Some("eu")) && !by_zone.selects("b", Some("us")));
        assert!(!by_zone.selects("b", None));
        let all = Selector {
            position_max: Some(format_position(u64::MAX)),
            ..Selector::default()
        };
        assert!(all.selects("anything", None));
        let upto_a = Selector {
            position_max: Some(format_position(position("a"))),
            ..Selector::default()
        };
        assert!(upto_a.selects("a", None));
    }

    #[test]
    fn only_active_unexpired_records_select() {
        let mut r = RolloutRecord {
            phase: Phase::Running,
            candidate: 5,
            selector: Selector {
                nodes: vec!["a".into()],
                ..Selector::default()
            },
            expires_ms: 1000,
            ..RolloutRecord::starting("r".into(), 3, PlanRecord::default(), "d".into(), 0)
        };
        assert!(r.serves_candidate("a", None, 999));
        assert!(!r.serves_candidate("a", None, 1001), "lease ran out");
        r.expires_ms = 0;
        assert!(r.serves_candidate("a", None, u64::MAX), "0: never expires");
        r.phase = Phase::RolledBack;
        assert!(!r.serves_candidate("a", None, 0));
        r.phase = Phase::Paused;
        assert!(r.serves_candidate("a", None, 0));
        // A record from another driver version with fields this one does not know still parses.
        let mut v = serde_json::to_value(&r).unwrap();
        v["future_field"] = serde_json::json!(1);
        let back: RolloutRecord = crate::decode(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(back, r);
        v["selector"]["position_max"] = serde_json::json!("zz");
        let bad = crate::decode::<RolloutRecord>(&serde_json::to_vec(&v).unwrap());
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("selector.position_max"));
    }
}
