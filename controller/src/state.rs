//! The config-push state machine: given a revision of the routing document, decide what to do. Pure:
//! no I/O, no clock, so it is tested directly and can replay a history.

use edgeplane_config::{ConfigError, ContentHash, Routing};

/// How many rejected revisions a node remembers (so that it never applies them again).
const REMEMBERED: usize = 8;

/// What the node has applied, and which revisions it handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigState {
    /// KV revision in place (applied); 0 before any push was applied. A rejected revision never
    /// changes it: this is what status replies, metrics and the admin API report.
    pub revision: u64,
    /// Content hash in place, if known.
    pub hash: Option<ContentHash>,
    /// The newest revision handled, applied or rejected.
    pub handled: u64,
    /// The last rejected revisions (0: empty slot).
    rejected: [u64; REMEMBERED],
}

/// The decision for one revision.
#[derive(Debug)]
pub enum Decision {
    /// In place already, or rejected before: nothing to do, no ack.
    Ignore,
    /// Valid: apply it, then ack `applied`.
    Apply(Box<Routing>),
    /// Invalid: keep the current tables, ack `rejected` with every error.
    Reject(Vec<String>),
}

impl ConfigState {
    /// Decides what to do with revision `revision` whose document is `text`, the document the node
    /// should serve now (see [`crate::follow::Bucket::target`]). Revisions usually grow, but a rollback
    /// of a staged rollout goes back to the revision the other nodes serve.
    pub fn decide(&self, revision: u64, text: &str) -> Decision {
        if revision == self.revision || self.was_rejected(revision) {
            return Decision::Ignore;
        }
        match edgeplane_config::document_from_text(text) {
            Ok(routing) => Decision::Apply(Box::new(routing)),
            Err(e) => Decision::Reject(errors(&e)),
        }
    }

    /// Records that `revision` with `hash` is in place.
    pub fn applied(&mut self, revision: u64, hash: ContentHash) {
        self.revision = revision;
        self.hash = Some(hash);
        self.handled = self.handled.max(revision);
    }

    /// Records that `revision` was rejected: it is not tried again. The revision in place does not
    /// change.
    pub fn rejected(&mut self, revision: u64) {
        self.handled = self.handled.max(revision);
        if !self.was_rejected(revision) {
            self.rejected.rotate_right(1);
            self.rejected[0] = revision;
        }
    }

    /// Whether `revision` was rejected (among the last few).
    pub fn was_rejected(&self, revision: u64) -> bool {
        revision != 0 && self.rejected.contains(&revision)
    }
}

fn errors(e: &ConfigError) -> Vec<String> {
    e.lines()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[[clusters.c.endpoints]]\naddress = \"127.0.0.1:1\"\n";

    #[test]
    fn applies_new_revisions_once_and_ignores_older_ones() {
        let mut s = ConfigState::default();
        let Decision::Apply(r) = s.decide(3, DOC) else {
            panic!("new revision applies")
        };
        s.applied(3, r.hash);
        assert!(
            matches!(s.decide(3, DOC), Decision::Ignore),
            "same revision again"
        );
        assert!(matches!(s.decide(4, DOC), Decision::Apply(_)));
        assert!(
            matches!(s.decide(2, DOC), Decision::Apply(_)),
            "going back (a rollout's rollback) applies"
        );
    }

    #[test]
    fn rejects_with_every_error_and_moves_past_it() {
        let mut s = ConfigState::default();
        let bad = "[[routes]]\ncluster = \"nope\"\n[clusters.c]\n[[clusters.c.endpoints]]\naddress = \"1.2.3:4\"\n";
        let Decision::Reject(errors) = s.decide(5, bad) else {
            panic!("invalid document rejected")
        };
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("routes[0].cluster: unknown cluster")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("clusters.c.endpoints[0].address")),
            "{errors:?}"
        );
        s.rejected(5);
        assert!(matches!(s.decide(5, bad), Decision::Ignore));
        assert_eq!(s.hash, None, "a rejection changes nothing in place");
        assert_eq!(
            s.revision, 0,
            "the revision in place is still the applied one"
        );
        assert_eq!(s.handled, 5);
    }

    #[test]
    fn after_a_rejection_the_applied_revision_is_reported() {
        let mut s = ConfigState::default();
        let Decision::Apply(r) = s.decide(50, DOC) else {
            panic!("applies")
        };
        s.applied(50, r.hash);
        s.rejected(54);
        assert_eq!((s.revision, s.handled, s.hash), (50, 54, Some(r.hash)));
        assert!(matches!(s.decide(54, DOC), Decision::Ignore), "rejected");
        assert!(matches!(s.decide(55, DOC), Decision::Apply(_)));
        for r in 60..70 {
            s.rejected(r);
        }
        assert!(
            s.was_rejected(69) && !s.was_rejected(54),
            "the last few are kept"
        );
    }

    #[test]
    fn node_settings_cannot_be_pushed() {
        let s = ConfigState::default();
        let doc = format!("[node]\nid = \"x\"\n{DOC}");
        let Decision::Reject(errors) = s.decide(1, &doc) else {
            panic!("rejected")
        };
        assert!(errors[0].contains("node"), "{errors:?}");
    }

    #[test]
    fn json_documents_too() {
        let s = ConfigState::default();
        let json = r#"{"routes":[{"cluster":"c"}],"clusters":{"c":{"endpoints":[{"address":"127.0.0.1:1"}]}}}"#;
        assert!(matches!(s.decide(1, json), Decision::Apply(_)));
    }
}
