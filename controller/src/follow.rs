//! What a node knows of the config bucket, and which document it should serve: the `current` key,
//! or during a staged rollout that selects it, the `candidate` key. Pure: the follower feeds it the
//! entries it reads and asks for the target.

use edgeplane_bus::jetstream::CONFIG_KEY;
use edgeplane_bus::rollout::{RolloutRecord, CANDIDATE_KEY, ROLLOUT_KEY};
use std::sync::Arc;

/// One revision of a document key.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    /// KV revision.
    pub revision: u64,
    /// The document.
    pub text: Arc<str>,
    /// When it was written to the bucket (Unix nanoseconds, server clock).
    pub written: i128,
}

/// The keys of the bucket a node follows, each at the newest revision seen.
#[derive(Debug, Default)]
pub struct Bucket {
    current: Option<Doc>,
    candidate: Option<Doc>,
    rollout: Option<(u64, RolloutRecord)>,
}

/// One entry read from the bucket.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Its key.
    pub key: &'a str,
    /// Its KV revision.
    pub revision: u64,
    /// `None` for a delete or purge.
    pub value: Option<&'a [u8]>,
    /// When it was written (Unix nanoseconds).
    pub written: i128,
}

/// What taking in an entry did.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// Newer than what was known: the target may have changed.
    Changed,
    /// Not newer, or a key the node does not follow.
    Same,
    /// The rollout record did not decode: kept the previous one.
    Malformed(String),
}

impl Bucket {
    /// Takes in `entry`. An entry at or below the revision known for its key is ignored, unless
    /// `fresh` (the first entry of that key from a new watch, which is always the newest: a lower
    /// revision then means the bucket was deleted and created again).
    pub fn take(&mut self, entry: &Entry<'_>, fresh: bool) -> Taken {
        let newer = |known: Option<u64>| fresh || known.is_none_or(|k| entry.revision > k);
        let doc = || {
            entry.value.map(|v| Doc {
                revision: entry.revision,
                text: Arc::from(String::from_utf8_lossy(v).as_ref()),
                written: entry.written,
            })
        };
        match entry.key {
            CONFIG_KEY => {
                if !newer(self.current.as_ref().map(|d| d.revision)) {
                    return Taken::Same;
                }
                // A deleted `current` key leaves the node on what it serves: nothing to go to.
                if let Some(d) = doc() {
                    self.current = Some(d);
                }
            }
            CANDIDATE_KEY => {
                if !newer(self.candidate.as_ref().map(|d| d.revision)) {
                    return Taken::Same;
                }
                self.candidate = doc();
            }
            ROLLOUT_KEY => {
                if !newer(self.rollout.as_ref().map(|(r, _)| *r)) {
                    return Taken::Same;
                }
                match entry.value {
                    None => self.rollout = None,
                    Some(v) => match edgeplane_bus::decode::<RolloutRecord>(v) {
                        Ok(r) => self.rollout = Some((entry.revision, r)),
                        Err(e) => return Taken::Malformed(e.to_string()),
                    },
                }
            }
            _ => return Taken::Same,
        }
        Taken::Changed
    }

    /// The document node `node` in `zone` should serve at Unix time `now_ms`: the candidate while an
    /// active, unexpired rollout selects the node and the candidate is newer than `current` (a push
    /// forced during a rollout wins), else `current`. `None` before anything was read.
    pub fn target(&self, node: &str, zone: Option<&str>, now_ms: u64) -> Option<&Doc> {
        if let (Some((_, r)), Some(c)) = (&self.rollout, &self.candidate) {
            let newer = self
                .current
                .as_ref()
                .is_none_or(|cur| c.revision > cur.revision);
            if c.revision == r.candidate && newer && r.serves_candidate(node, zone, now_ms) {
                return Some(c);
            }
        }
        self.current.as_ref()
    }

    /// The rollout record, if any.
    pub fn rollout(&self) -> Option<&RolloutRecord> {
        self.rollout.as_ref().map(|(_, r)| r)
    }

    /// The revision known for `key` (0: none).
    pub fn revision(&self, key: &str) -> u64 {
        match key {
            CONFIG_KEY => self.current.as_ref().map_or(0, |d| d.revision),
            CANDIDATE_KEY => self.candidate.as_ref().map_or(0, |d| d.revision),
            ROLLOUT_KEY => self.rollout.as_ref().map_or(0, |(r, _)| *r),
            _ => 0,
        }
    }

    /// Whether the rollout names a candidate revision the node has not read (the follower then
    /// reads the candidate key directly).
    pub fn missing_candidate(&self) -> bool {
        self.rollout.as_ref().is_some_and(|(_, r)| {
            r.phase.active()
                && r.candidate > 0
                && self.candidate.as_ref().map(|c| c.revision) != Some(r.candidate)
        })
    }
}

/// What a node knows of the staged rollout, for its metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutView {
    /// Rollout id ("" when none was ever seen).
    pub id: String,
    /// Its phase, as the record says.
    pub phase: Option<edgeplane_bus::rollout::Phase>,
    /// Whether it is active and its lease has not run out.
    pub active: bool,
    /// The wave in progress (1-based; 0 before the first).
    pub wave: usize,
    /// Waves in the plan.
    pub waves: usize,
    /// Candidate revision.
    pub candidate: u64,
    /// Whether this node serves the candidate.
    pub serving_candidate: bool,
    /// Gates failing in the current wave's last verdict.
    pub gates_failing: usize,
}

impl RolloutView {
    /// The view of `record` from a node that serves revision `serving` at `now_ms`.
    pub fn of(record: Option<&RolloutRecord>, serving: u64, now_ms: u64) -> RolloutView {
        let Some(r) = record else {
            return RolloutView::default();
        };
        let active = r.phase.active() && !r.expired(now_ms);
        RolloutView {
            id: r.id.clone(),
            phase: Some(r.phase),
            active,
            wave: if r.waves.is_empty() {
                0
            } else {
                (r.wave + 1).min(r.plan.waves.len())
            },
            waves: r.plan.waves.len(),
            candidate: r.candidate,
            serving_candidate: active && serving == r.candidate,
            gates_failing: r.waves.get(r.wave).map_or(0, |w| {
                w.gates.iter().filter(|g| g.starts_with("FAIL")).count()
            }),
        }
    }
}

/// Unix time now in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeplane_bus::rollout::{Phase, PlanRecord, Selector};

    fn put<'a>(key: &'a str, revision: u64, value: &'a [u8]) -> Entry<'a> {
        Entry {
            key,
            revision,
            value: Some(value),
            written: 0,
        }
    }

    fn record(phase: Phase, candidate: u64, nodes: &[&str]) -> Vec<u8> {
        let r = RolloutRecord {
            phase,
            candidate,
            selector: Selector {
                nodes: nodes.iter().map(|n| n.to_string()).collect(),
                ..Selector::default()
            },
            ..RolloutRecord::starting("r1".into(), 1, PlanRecord::default(), "d".into(), 0)
        };
        edgeplane_bus::encode(&r).to_vec()
    }

    fn target(b: &Bucket, node: &str) -> u64 {
        b.target(node, None, 0).map_or(0, |d| d.revision)
    }

    #[test]
    fn selected_nodes_serve_the_candidate_the_others_current() {
        let mut b = Bucket::default();
        assert_eq!(b.target("a", None, 0), None);
        assert_eq!(b.take(&put("current", 1, b"c1"), true), Taken::Changed);
        assert_eq!(b.take(&put("candidate", 2, b"c2"), true), Taken::Changed);
        assert_eq!(target(&b, "a"), 1, "no rollout record: current");
        b.take(&put("rollout", 3, &record(Phase::Running, 2, &["a"])), true);
        assert_eq!((target(&b, "a"), target(&b, "b")), (2, 1));
        assert!(!b.missing_candidate());
        // Rolled back: everyone on current again.
        b.take(
            &put("rollout", 4, &record(Phase::RolledBack, 2, &[])),
            false,
        );
        assert_eq!((target(&b, "a"), target(&b, "b")), (1, 1));
    }

    #[test]
    fn a_push_newer_than_the_candidate_wins() {
        let mut b = Bucket::default();
        b.take(&put("current", 1, b"c1"), true);
        b.take(&put("candidate", 2, b"c2"), true);
        b.take(&put("rollout", 3, &record(Phase::Running, 2, &["a"])), true);
        b.take(&put("current", 5, b"forced"), false);
        assert_eq!(target(&b, "a"), 5);
    }

    #[test]
    fn the_candidate_must_be_the_one_the_record_names() {
        let mut b = Bucket::default();
        b.take(&put("current", 1, b"c1"), true);
        b.take(&put("rollout", 3, &record(Phase::Running, 2, &["a"])), true);
        assert!(b.missing_candidate());
        assert_eq!(
            target(&b, "a"),
            1,
            "candidate not read yet: stay on current"
        );
        b.take(&put("candidate", 2, b"c2"), false);
        assert_eq!(target(&b, "a"), 2);
    }

    #[test]
    fn older_entries_are_ignored_unless_fresh() {
        let mut b = Bucket::default();
        b.take(&put("current", 5, b"c5"), true);
        assert_eq!(b.take(&put("current", 4, b"c4"), false), Taken::Same);
        assert_eq!(b.take(&put("current", 5, b"c5"), false), Taken::Same);
        assert_eq!(b.take(&put("current", 2, b"new"), true), Taken::Changed);
        assert_eq!(target(&b, "a"), 2, "a recreated bucket is followed");
        assert_eq!(b.take(&put("other", 9, b"x"), false), Taken::Same);
    }

    #[test]
    fn a_malformed_record_keeps_the_last_good_one() {
        let mut b = Bucket::default();
        b.take(&put("current", 1, b"c1"), true);
        b.take(&put("candidate", 2, b"c2"), true);
        b.take(&put("rollout", 3, &record(Phase::Running, 2, &["a"])), true);
        assert!(matches!(
            b.take(&put("rollout", 4, b"{not json"), false),
            Taken::Malformed(_)
        ));
        assert_eq!(target(&b, "a"), 2);
        // A deleted record ends the rollout for the nodes.
        let deleted = Entry {
            key: "rollout",
            revision: 5,
            value: None,
            written: 0,
        };
        assert_eq!(b.take(&deleted, false), Taken::Changed);
        assert_eq!(target(&b, "a"), 1);
    }
}
