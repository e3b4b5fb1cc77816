//! Subject names. Every subject starts with a configurable prefix (default [`DEFAULT_PREFIX`]) so that
//! several independent fleets, or versions of the protocol, can share one NATS deployment.

use crate::BusError;

/// The default subject prefix.
pub const DEFAULT_PREFIX: &str = "edge.v1";

/// Builds the subjects of one fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Default for Subjects {
    fn default() -> Self {
        Subjects {
            prefix: DEFAULT_PREFIX.to_string(),
        }
    }
}

/// Whether `token` can be one token of a subject: letters, digits, `-` and `_` only (no `.`, `*`, `>`,
/// whitespace), 1 to 64 bytes. Cluster, node and instance names all obey it.
pub fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 64
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn token(t: &str) -> Result<&str, BusError> {
    if valid_token(t) {
        Ok(t)
    } else {
        Err(BusError::Token(t.to_string()))
    }
}

impl Subjects {
    /// Subjects under `prefix`, which must be dot-separated valid tokens (e.g. `edge.v1`, `acme.edge`).
    pub fn new(prefix: &str) -> Result<Subjects, BusError> {
        if prefix.split('.').all(valid_token) {
            Ok(Subjects {
                prefix: prefix.to_string(),
            })
        } else {
            Err(BusError::Token(prefix.to_string()))
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where node `node` acknowledges config revisions: `<prefix>.ack.<node>`.
    pub fn ack(&self, node: &str) -> Result<String, BusError> {
        Ok(format!("{}.ack.{}", self.prefix, token(node)?))
    }

    /// Every node's acknowledgements: `<prefix>.ack.*`.
    pub fn ack_all(&self) -> String {
        format!("{}.ack.*", self.prefix)
    }

    /// Node `node`'s rate-limit usage reports: `<prefix>.rl.usage.<node>`.
    pub fn usage(&self, node: &str) -> Result<String, BusError> {
        Ok(format!("{}.rl.usage.{}", self.prefix, token(node)?))
    }

    /// Every node's rate-limit usage reports: `<prefix>.rl.usage.*`.
    pub fn usage_all(&self) -> String {
        format!("{}.rl.usage.*", self.prefix)
    }

    /// Heartbeats of one instance: `<prefix>.hb.<cluster>.<instance>`.
    pub fn heartbeat(&self, cluster: &str, instance: &str) -> Result<String, BusError> {
        Ok(format!(
            "{}.hb.{}.{}",
            self.prefix,
            token(cluster)?,
            token(instance)?
        ))
    }

    /// Heartbeats of every instance of a cluster: `<prefix>.hb.<cluster>.*`.
    pub fn heartbeats_of(&self, cluster: &str) -> Result<String, BusError> {
        Ok(format!("{}.hb.{}.*", self.prefix, token(cluster)?))
    }

    /// Scaling events of a cluster: `<prefix>.scale.<cluster>`.
    pub fn scale(&self, cluster: &str) -> Result<String, BusError> {
        Ok(format!("{}.scale.{}", self.prefix, token(cluster)?))
    }

    /// Every cluster's scaling events (the durable stream's subjects): `<prefix>.scale.*`.
    pub fn scale_all(&self) -> String {
        format!("{}.scale.*", self.prefix)
    }

    /// A node's periodic announcement: `<prefix>.node.<node>`.
    pub fn node(&self, node: &str) -> Result<String, BusError> {
        Ok(format!("{}.node.{}", self.prefix, token(node)?))
    }

    /// Every node's announcements: `<prefix>.node.*`.
    pub fn node_all(&self) -> String {
        format!("{}.node.*", self.prefix)
    }

    /// The status request every node answers: `<prefix>.status`.
    pub fn status(&self) -> String {
        format!("{}.status", self.prefix)
    }

    /// Autoscale recommendations for `cluster`: `<prefix>.autoscale.<cluster>`.
    pub fn autoscale(&self, cluster: &str) -> Result<String, BusError> {
        Ok(format!("{}.autoscale.{}", self.prefix, token(cluster)?))
    }

    /// Node `node`'s fleet events of kind `kind`: `<prefix>.event.<kind>.<node>`.
    pub fn event(&self, kind: &str, node: &str) -> Result<String, BusError> {
        Ok(format!(
            "{}.event.{}.{}",
            self.prefix,
            token(kind)?,
            token(node)?
        ))
    }

    /// Every event, the rollouts' included: `<prefix>.event.>`.
    pub fn events_all(&self) -> String {
        format!("{}.event.>", self.prefix)
    }

    /// Events of staged rollouts, published by their drivers: `<prefix>.event.rollout`.
    pub fn rollout_events(&self) -> String {
        format!("{}.event.rollout", self.prefix)
    }

    /// The dry-run request every node answers (validate a document, apply nothing):
    /// `<prefix>.validate`.
    pub fn validate(&self) -> String {
        format!("{}.validate", self.prefix)
    }

    /// Parses `<prefix>.hb.<cluster>.<instance>` back into its cluster and instance.
    pub fn parse_heartbeat<'a>(&self, subject: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".hb.")?;
        let (cluster, instance) = rest.split_once('.')?;
        (valid_token(cluster) && valid_token(instance)).then_some((cluster, instance))
    }

    /// Parses `<prefix>.scale.<cluster>` back into its cluster.
    pub fn parse_scale<'a>(&self, subject: &'a str) -> Option<&'a str> {
        let cluster = subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".scale.")?;
        valid_token(cluster).then_some(cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_subjects() {
        let s = Subjects::default();
        assert_eq!(s.ack("edge-1").unwrap(), "edge.v1.ack.edge-1");
        assert_eq!(s.heartbeat("api", "i-1").unwrap(), "edge.v1.hb.api.i-1");
        assert_eq!(s.heartbeats_of("api").unwrap(), "edge.v1.hb.api.*");
        assert_eq!(s.scale("api").unwrap(), "edge.v1.scale.api");
        assert_eq!(s.node("n1").unwrap(), "edge.v1.node.n1");
        assert_eq!(s.status(), "edge.v1.status");
        assert_eq!(
            s.parse_heartbeat("edge.v1.hb.api.i-1"),
            Some(("api", "i-1"))
        );
        assert_eq!(s.parse_heartbeat("edge.v1.hb.api.i.1"), None);
        assert_eq!(s.parse_heartbeat("other.hb.api.i-1"), None);
        assert_eq!(s.parse_scale("edge.v1.scale.api"), Some("api"));
    }

    #[test]
    fn rejects_tokens_that_would_change_the_subject() {
        let s = Subjects::new("acme.edge").unwrap();
        assert_eq!(s.scale("web").unwrap(), "acme.edge.scale.web");
        for bad in ["a.b", "*", ">", "", "a b"] {
            assert!(s.heartbeat("api", bad).is_err(), "{bad:?}");
        }
        assert!(Subjects::new("edge..v1").is_err());
        assert!(Subjects::new("edge.>").is_err());
    }
}
