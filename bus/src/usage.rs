//! Rate-limit usage reports, on `<prefix>.rl.usage.<node>` (core NATS, lossy): every node tells the
//! others, about five times a second, how many requests per second its hottest keys of each fleet
//! limit receive, so that each takes a share of the limit in proportion to its demand.

use crate::wire::Validate;
use serde::{Deserialize, Serialize};

/// Limits at most in one report.
pub const MAX_LIMITS: usize = 1_000;
/// Keys at most per limit in one report.
pub const MAX_KEYS: usize = 10_000;
/// Highest demand a key may report, in requests per second.
pub const MAX_RATE: f64 = 1e12;

/// One node's demand on its fleet limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    /// Schema version of this message.
    pub schema: u32,
    /// The reporting node (also the last subject token).
    pub node: String,
    /// How often the node reports, in milliseconds.
    pub interval_ms: u64,
    /// Every fleet limit the node has, with its hot keys (possibly none).
    pub limits: Vec<LimitUsage>,
}

/// A node's demand on one fleet limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitUsage {
    /// `route` or `cluster`: what the limit belongs to.
    pub owner: String,
    /// The route's or cluster's name.
    pub name: String,
    /// The limit's name.
    pub limit: String,
    /// Hot keys, hottest first.
    pub keys: Vec<KeyUsage>,
}

/// One key's demand on the reporting node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUsage {
    /// The key's 64-bit hash, 16 lower-case hex digits (docs/bus.md gives the hash).
    pub key: String,
    /// Requests per second the node receives for the key, admitted or not.
    pub rate: f64,
}

impl KeyUsage {
    /// The key's hash, if `key` is 16 hex digits.
    pub fn hash(&self) -> Option<u64> {
        (self.key.len() == 16)
            .then(|| u64::from_str_radix(&self.key, 16).ok())
            .flatten()
    }
}

impl Validate for UsageReport {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !crate::subjects::valid_token(&self.node) {
            out.push(format!("node: invalid name {:?}", self.node));
        }
        if !(1..=60_000).contains(&self.interval_ms) {
            out.push(format!(
                "interval_ms: {} is out of range 1..=60000",
                self.interval_ms
            ));
        }
        if self.limits.len() > MAX_LIMITS {
            out.push(format!("limits: more than {MAX_LIMITS}"));
        }
        for (i, l) in self.limits.iter().enumerate() {
            if !matches!(l.owner.as_str(), "route" | "cluster") {
                out.push(format!("limits[{i}].owner: expected route or cluster"));
            }
            for (field, v) in [("name", &l.name), ("limit", &l.limit)] {
                if !crate::subjects::valid_token(v) {
                    out.push(format!("limits[{i}].{field}: invalid name {v:?}"));
                }
            }
            if l.keys.len() > MAX_KEYS {
                out.push(format!("limits[{i}].keys: more than {MAX_KEYS}"));
            }
            for (j, k) in l.keys.iter().enumerate() {
                if k.hash().is_none() {
                    out.push(format!("limits[{i}].keys[{j}].key: expected 16 hex digits"));
                }
                if !k.rate.is_finite() || !(0.0..=MAX_RATE).contains(&k.rate) {
                    out.push(format!(
                        "limits[{i}].keys[{j}].rate: expected a number from 0 to {MAX_RATE}"
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, DecodeError};

    #[test]
    fn reports_decode_and_bad_ones_are_refused_with_paths() {
        let good = br#"{"schema":1,"node":"edge-1","interval_ms":200,"limits":[{"owner":"route","name":"api","limit":"per-key","keys":[{"key":"75f90ab416473e08","rate":12.5}]}]}"#;
        let r: UsageReport = decode(good).unwrap();
        assert_eq!(r.limits[0].keys[0].hash(), Some(0x75f9_0ab4_1647_3e08));
        let bad = br#"{"schema":1,"node":"a b","interval_ms":0,"limits":[{"owner":"x","name":"api","limit":"l","keys":[{"key":"zz","rate":-1}]}]}"#;
        match decode::<UsageReport>(bad) {
            Err(DecodeError::Invalid(p)) => {
                assert_eq!(p.len(), 5, "{p:?}");
                assert!(p[4].starts_with("limits[0].keys[0].rate"), "{p:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode::<UsageReport>(br#"{"schema":1,"node":"a"}"#),
            Err(DecodeError::Malformed(_))
        ));
    }
}
