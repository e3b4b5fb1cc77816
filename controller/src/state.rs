//! The config-push state machine: given a revision of the routing document, decide what to do. Pure:
//! no I/O, no clock, so it is tested directly and can replay a history.

use edgeplane_config::{ConfigError, ContentHash, Routing};

/// What the node has applied, and how far it has handled the bucket's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigState {
    /// KV revision in place (applied); 0 before any push was applied. A rejected revision never
    /// changes it: this is what status replies, metrics and the admin API report.
    pub revision: u64,
    /// Content hash in place, if known.
    pub hash: Option<ContentHash>,
    /// The newest revision handled, applied or rejected: revisions at or below it are ignored.
    pub handled: u64,
}

/// The decision for one revision.
#[derive(Debug)]
pub enum Decision {
    /// Already applied, or older than what is applied: nothing to do, no ack.
    Ignore,
    /// Valid and new: apply it, then ack `applied`.
    Apply(Box<Routing>),
    /// Invalid: keep the current tables, ack `rejected` with every error.
    Reject(Vec<String>),
}

impl ConfigState {
    /// Decides what to do with revision `revision` whose document is `text`.
    pub fn decide(&self, revision: u64, text: &str) -> Decision {
        if revision <= self.handled {
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

    /// Called with the first revision seen after (re)starting to watch: if it is below the revision
    /// handled, the bucket's history restarted, so the handled revision is forgotten (the tables stay)
    /// and the new history is followed. Returns whether it rebased.
    pub fn rebase(&mut self, first_seen: u64) -> bool {
        if first_seen < self.handled {
            self.handled = 0;
            true
        } else {
            false
        }
    }

    /// Records that `revision` was rejected: it is not retried, and older ones stay ignored. The
    /// revision in place does not change.
    pub fn rejected(&mut self, revision: u64) {
        self.handled = self.handled.max(revision);
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
        assert!(
            matches!(s.decide(2, DOC), Decision::Ignore),
            "older revision"
        );
        assert!(matches!(s.decide(4, DOC), Decision::Apply(_)));
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
        assert!(
            matches!(s.decide(53, DOC), Decision::Ignore),
            "older than handled"
        );
        assert!(matches!(s.decide(55, DOC), Decision::Apply(_)));
    }

    #[test]
    fn a_recreated_bucket_is_followed() {
        let mut s = ConfigState::default();
        let Decision::Apply(r) = s.decide(40, DOC) else {
            panic!()
        };
        s.applied(40, r.hash);
        assert!(!s.rebase(40), "same revision: the bucket is the same");
        assert!(!s.rebase(41));
        assert!(s.rebase(2), "revisions went backwards: a new bucket");
        assert!(matches!(s.decide(2, DOC), Decision::Apply(_)));
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
