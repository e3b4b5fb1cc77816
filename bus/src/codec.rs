//! Encoding and decoding of wire messages: JSON, a `schema` field, and a `Content-Type` header.
//!
//! Decoding checks the shape (serde, unknown fields rejected), the schema version, and the values
//! ([`Validate`]), and says which of the three failed, so that a malformed message can be counted,
//! logged with its reason and dropped.

use crate::wire::Validate;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The content type of every JSON message (sent as a NATS header where the API allows).
pub const CONTENT_TYPE: &str = "application/json";

/// Why a message was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or not the message's shape.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A schema version this build does not read.
    #[error("unsupported schema version {0} (this node reads {SCHEMA_VERSION})")]
    Schema(u32),
    /// Well-formed, but with values out of range.
    #[error("invalid: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl DecodeError {
    /// A short, bounded label for counting (`malformed`, `schema`, `invalid`).
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Malformed(_) => "malformed",
            DecodeError::Schema(_) => "schema",
            DecodeError::Invalid(_) => "invalid",
        }
    }
}

/// A message that carries a schema version.
pub trait Versioned {
    /// The message's schema version.
    fn schema(&self) -> u32;
}

macro_rules! versioned {
    ($($t:ty),*) => {$(
        impl Versioned for $t {
            fn schema(&self) -> u32 {
                self.schema
            }
        }
    )*};
}
versioned!(
    crate::wire::ConfigAck,
    crate::wire::Heartbeat,
    crate::wire::ScaleEvent,
    crate::wire::NodeStatus,
    crate::wire::ValidateReply,
    crate::usage::UsageReport,
    crate::event::FleetEvent,
    crate::autoscale::AutoscaleRecommendation,
    crate::rollout::RolloutRecord,
    crate::rollout::RolloutEvent
);

/// Encodes a message as JSON.
pub fn encode<T: Serialize>(message: &T) -> Bytes {
    // Our wire structs hold only strings, numbers and enums: serializing them cannot fail.
    Bytes::from(serde_json::to_vec(message).unwrap_or_default())
}

/// Decodes and checks a message.
pub fn decode<T: DeserializeOwned + Versioned + Validate>(
    payload: &[u8],
) -> Result<T, DecodeError> {
    // Look at the schema first, so that a newer publisher gets "unsupported schema", not a shape error.
    #[derive(serde::Deserialize)]
    struct Probe {
        schema: Option<u32>,
    }
    match serde_json::from_slice::<Probe>(payload) {
        Ok(Probe { schema: Some(v) }) if v != SCHEMA_VERSION => return Err(DecodeError::Schema(v)),
        Ok(Probe { schema: None }) => {
            return Err(DecodeError::Malformed("missing field `schema`".into()))
        }
        Err(e) => return Err(DecodeError::Malformed(e.to_string())),
        Ok(_) => {}
    }
    let message: T =
        serde_json::from_slice(payload).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    debug_assert_eq!(message.schema(), SCHEMA_VERSION);
    let problems = message.problems();
    if problems.is_empty() {
        Ok(message)
    } else {
        Err(DecodeError::Invalid(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Heartbeat, ScaleAction, ScaleEvent};

    #[test]
    fn heartbeat_round_trip_and_defaults() {
        let json = br#"{"schema":1,"instance":"i-1","boot_id":"b1","seq":7,"address":"127.0.0.1:9001","ttl_ms":3000}"#;
        let hb: Heartbeat = decode(json).unwrap();
        assert_eq!((hb.weight, hb.health, hb.in_flight), (1, 100, 0));
        assert!(!hb.draining);
        let again: Heartbeat = decode(&encode(&hb)).unwrap();
        assert_eq!(again, hb);
    }

    #[test]
    fn scale_events_in_every_form() {
        for (json, want) in [
            (
                r#"{"schema":1,"id":"e1","action":"add","address":"10.0.0.1:80","weight":3}"#,
                "add",
            ),
            (
                r#"{"schema":1,"id":"e2","action":"remove","address":"10.0.0.1:80"}"#,
                "remove",
            ),
            (
                r#"{"schema":1,"id":"e3","action":"drain","address":"10.0.0.1:80"}"#,
                "drain",
            ),
            (
                r#"{"schema":1,"id":"e4","action":"weight","address":"10.0.0.1:80","weight":9}"#,
                "weight",
            ),
        ] {
            let e: ScaleEvent =
                decode(json.as_bytes()).unwrap_or_else(|err| panic!("{json}: {err}"));
            let got = match e.action {
                ScaleAction::Add { .. } => "add",
                ScaleAction::Remove { .. } => "remove",
                ScaleAction::Drain { deadline_ms, .. } => {
                    assert_eq!(deadline_ms, 30_000);
                    "drain"
                }
                ScaleAction::Weight { .. } => "weight",
            };
            assert_eq!(got, want);
        }
    }

    #[test]
    fn bad_messages_say_why() {
        let cases: [(&[u8], &str); 6] = [
            (b"not json", "malformed"),
            (br#"{"instance":"i"}"#, "malformed"),
            (br#"{"schema":2,"anything":true}"#, "schema"),
            (br#"{"schema":1,"instance":"i-1","boot_id":"b","seq":1,"address":"x","ttl_ms":1,"extra":1}"#, "malformed"),
            (br#"{"schema":1,"instance":"i.1","boot_id":"b","seq":1,"address":"nope","ttl_ms":0,"weight":0}"#, "invalid"),
            (br#"{"schema":1,"instance":"i-1","boot_id":"b","seq":1,"address":"127.0.0.1:1","ttl_ms":5,"health":101}"#, "invalid"),
        ];
        for (payload, kind) in cases {
            let err = decode::<Heartbeat>(payload).unwrap_err();
            assert_eq!(
                err.kind(),
                kind,
                "{}: {err}",
                String::from_utf8_lossy(payload)
            );
        }
        let err = decode::<Heartbeat>(cases[4].0).unwrap_err();
        let text = err.to_string();
        for part in ["instance:", "address:", "weight:", "ttl_ms:"] {
            assert!(text.contains(part), "{text}");
        }
    }
}
