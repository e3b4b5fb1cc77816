//! How many events a node sends: per subject (a cluster, or one of its endpoints) a burst of
//! [`SUBJECT_BURST`] then one every [`SUBJECT_EVERY`]; for the node, a burst of [`NODE_BURST`] then
//! [`NODE_PER_SEC`] per second. An event over budget is held back: its subject's latest state goes
//! out when the budget allows, if it differs from the last one sent, with the number of events it
//! stands for (`suppressed`). A flapping endpoint thus costs a few events a minute, and its last
//! state always reaches the bus.

use super::sample::Change;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Events at once per subject.
pub(crate) const SUBJECT_BURST: f64 = 6.0;
/// Then one per subject every this long.
pub(crate) const SUBJECT_EVERY: Duration = Duration::from_secs(10);
/// Events at once per node.
pub(crate) const NODE_BURST: f64 = 100.0;
/// Then this many per second per node.
pub(crate) const NODE_PER_SEC: f64 = 20.0;

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, at: Instant) -> Bucket {
        Bucket { tokens: burst, at }
    }

    fn refill(&mut self, now: Instant, per_sec: f64, burst: f64) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * per_sec).min(burst);
        self.at = now;
    }
}

/// A subject's state: its budget, the last kind sent, and what waits.
#[derive(Debug)]
struct Subject {
    bucket: Bucket,
    last_sent: Option<&'static str>,
    held: Option<Change>,
    suppressed: u64,
}

/// The budgets of one node's events.
#[derive(Debug)]
pub(crate) struct Budget {
    node: Bucket,
    subjects: BTreeMap<(Option<String>, Option<std::net::SocketAddr>, &'static str), Subject>,
}

/// The family of a kind: a kind and its opposite share a budget and a held state.
fn family(kind: &'static str) -> &'static str {
    match kind {
        "endpoint_down" | "endpoint_up" => "endpoint_health",
        "endpoint_ejected" | "endpoint_restored" => "outlier",
        "health_check_failed" | "health_check_passed" => "health_check",
        "cluster_panic_entered" | "cluster_panic_left" => "panic",
        "cluster_failover" | "cluster_failback" => "failover",
        "circuit_open" | "circuit_closed" => "circuit",
        "membership_frozen" | "membership_thawed" => "membership",
        _ => "config",
    }
}

impl Budget {
    /// A full budget at `now`.
    pub(crate) fn new(now: Instant) -> Budget {
        Budget {
            node: Bucket::full(NODE_BURST, now),
            subjects: BTreeMap::new(),
        }
    }

    /// Of `changes` seen at `now`, those to send, each with the count it stands for; plus held
    /// states whose budget came back.
    pub(crate) fn admit(&mut self, changes: Vec<Change>, now: Instant) -> Vec<(Change, u64)> {
        let per_subject = 1.0 / SUBJECT_EVERY.as_secs_f64();
        self.node.refill(now, NODE_PER_SEC, NODE_BURST);
        for c in changes {
            let key = (c.cluster.clone(), c.endpoint, family(c.kind));
            let s = self.subjects.entry(key).or_insert_with(|| Subject {
                bucket: Bucket::full(SUBJECT_BURST, now),
                last_sent: None,
                held: None,
                suppressed: 0,
            });
            if s.held.is_some() {
                s.suppressed += 1;
            }
            s.held = Some(c);
        }
        let mut out = Vec::new();
        for s in self.subjects.values_mut() {
            s.bucket.refill(now, per_subject, SUBJECT_BURST);
            let Some(held) = s.held.take() else { continue };
            if s.bucket.tokens < 1.0 || self.node.tokens < 1.0 {
                s.held = Some(held);
                continue;
            }
            // A state that went and came back while held says nothing new; the changes stay
            // counted for the next event sent.
            if s.suppressed > 0 && s.last_sent == Some(held.kind) {
                s.suppressed += 1;
                continue;
            }
            s.bucket.tokens -= 1.0;
            self.node.tokens -= 1.0;
            s.last_sent = Some(held.kind);
            out.push((held, std::mem::take(&mut s.suppressed)));
        }
        // Forget quiet subjects with a full budget: their state is what was last sent.
        self.subjects
            .retain(|_, s| s.held.is_some() || s.bucket.tokens < SUBJECT_BURST);
        out
    }

    /// Subjects with a held event (metrics).
    #[cfg(test)]
    fn holding(&self) -> usize {
        self.subjects.values().filter(|s| s.held.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: &'static str) -> Change {
        Change {
            kind,
            cluster: Some("api".into()),
            endpoint: Some("10.0.0.1:80".parse().unwrap()),
            details: Vec::new(),
        }
    }

    #[test]
    fn a_flapping_endpoint_costs_a_few_events_and_its_last_state_gets_out() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0);
        let mut sent = Vec::new();
        // Ejected and restored every sample (250 ms) for a minute.
        for i in 0..240u32 {
            let kind = if i % 2 == 0 {
                "endpoint_ejected"
            } else {
                "endpoint_restored"
            };
            let now = t0 + Duration::from_millis(250 * u64::from(i));
            sent.extend(b.admit(vec![change(kind)], now));
        }
        // The burst, then about one every 10 s.
        assert!((6..=13).contains(&sent.len()), "{}", sent.len());
        // The last change was `restored`: it goes out once the budget allows.
        let mut later = Vec::new();
        for i in 0..8u64 {
            later.extend(b.admit(Vec::new(), t0 + Duration::from_secs(60 + 10 * i)));
        }
        let last = later.last().or(sent.last()).unwrap();
        assert_eq!(last.0.kind, "endpoint_restored");
        assert_eq!(b.holding(), 0);
        // Every change is an event sent or counted in one.
        let all: Vec<_> = sent.iter().chain(&later).collect();
        let counted: u64 = all.iter().map(|s| 1 + s.1).sum();
        assert_eq!(counted, 240);
    }

    #[test]
    fn separate_subjects_have_separate_budgets() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0);
        let mut other = change("endpoint_ejected");
        other.endpoint = Some("10.0.0.2:80".parse().unwrap());
        let out = b.admit(vec![change("endpoint_ejected"), other], t0);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|(_, n)| *n == 0));
    }
}
