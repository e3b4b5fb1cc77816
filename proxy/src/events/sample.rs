//! What the node's state says at one instant, as far as fleet events care, and the changes between
//! two such samples. Pure: the publisher ([`super::publish`]) takes a sample every
//! [`super::SAMPLE_EVERY`], so a state that flips and flips back between two samples makes no event.

use crate::tables::Snapshot;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// An endpoint's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct EndpointState {
    /// Health under the cluster's threshold (heartbeats report it low, or stopped).
    pub(crate) down: bool,
    /// Kept out by outlier detection.
    pub(crate) ejected: bool,
    /// Kept out by active health checks.
    pub(crate) check_failed: bool,
}

/// A cluster's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ClusterState {
    /// In panic mode (too few usable endpoints: all are used).
    pub(crate) panic: bool,
    /// Part of its traffic goes to a lower priority level.
    pub(crate) failover: bool,
    /// Share of the first level, per mille.
    pub(crate) first_share: u16,
    /// Requests refused by its circuit-breaker limits since start.
    pub(crate) overflow: u64,
}

/// The config in place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ConfigSeen {
    /// Revision applied.
    pub(crate) revision: u64,
    /// Newest revision handled, applied or rejected.
    pub(crate) handled: u64,
    /// Content hash in place.
    pub(crate) hash: Option<String>,
}

/// One sample.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    pub(crate) endpoints: BTreeMap<(String, SocketAddr), EndpointState>,
    pub(crate) clusters: BTreeMap<String, ClusterState>,
    pub(crate) config: Option<ConfigSeen>,
    /// Membership frozen (the bus is down, or just back): the reason.
    pub(crate) frozen: Option<&'static str>,
}

impl Sample {
    /// The tables' part of a sample.
    pub(crate) fn of(snapshot: &Snapshot) -> Sample {
        let mut s = Sample::default();
        for c in &snapshot.clusters {
            for e in &c.endpoints {
                let u = &e.upstream;
                s.endpoints.insert(
                    (c.name.to_string(), u.address),
                    EndpointState {
                        down: u.health() < c.health_threshold,
                        ejected: u.ejected(),
                        check_failed: u.check_failed(),
                    },
                );
            }
            let shares = c.state.level_shares();
            let levels = c.levels().count();
            s.clusters.insert(
                c.name.to_string(),
                ClusterState {
                    panic: c.state.panic(),
                    failover: levels > 1 && shares[0] < 1000,
                    first_share: shares[0],
                    overflow: c.state.rejected(),
                },
            );
        }
        s
    }
}

/// One change between two samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// The event kind (`docs/bus.md`).
    pub(crate) kind: &'static str,
    pub(crate) cluster: Option<String>,
    pub(crate) endpoint: Option<SocketAddr>,
    pub(crate) details: Vec<(&'static str, String)>,
}

impl Change {
    fn new(kind: &'static str, cluster: Option<&str>, endpoint: Option<SocketAddr>) -> Change {
        Change {
            kind,
            cluster: cluster.map(str::to_string),
            endpoint,
            details: Vec::new(),
        }
    }

    fn with(mut self, key: &'static str, value: impl ToString) -> Change {
        self.details.push((key, value.to_string()));
        self
    }
}

/// The changes from `before` to `after`: endpoints and clusters present in both, the config, the
/// membership. `hash_before_last` is the content hash in place before the last applied change (an
/// apply that brings it back is a roll-back).
pub(crate) fn changes(
    before: &Sample,
    after: &Sample,
    hash_before_last: Option<&str>,
) -> Vec<Change> {
    let mut out = Vec::new();
    for ((cluster, addr), now) in &after.endpoints {
        let Some(was) = before.endpoints.get(&(cluster.clone(), *addr)) else {
            continue;
        };
        let c = Some(cluster.as_str());
        let flip = |was: bool, now: bool, on: &'static str, off: &'static str| match (was, now) {
            (false, true) => Some(Change::new(on, c, Some(*addr))),
            (true, false) => Some(Change::new(off, c, Some(*addr))),
            _ => None,
        };
        out.extend(flip(was.down, now.down, "endpoint_down", "endpoint_up"));
        out.extend(flip(
            was.ejected,
            now.ejected,
            "endpoint_ejected",
            "endpoint_restored",
        ));
        out.extend(flip(
            was.check_failed,
            now.check_failed,
            "health_check_failed",
            "health_check_passed",
        ));
    }
    for (name, now) in &after.clusters {
        let Some(was) = before.clusters.get(name) else {
            continue;
        };
        let c = Some(name.as_str());
        match (was.panic, now.panic) {
            (false, true) => out.push(Change::new("cluster_panic_entered", c, None)),
            (true, false) => out.push(Change::new("cluster_panic_left", c, None)),
            _ => {}
        }
        match (was.failover, now.failover) {
            (false, true) => out.push(Change::new("cluster_failover", c, None).with(
                "first_level_share",
                format!("{:.1}", f64::from(now.first_share) / 10.0),
            )),
            (true, false) => out.push(Change::new("cluster_failback", c, None)),
            _ => {}
        }
    }
    if let (Some(was), Some(now)) = (&before.config, &after.config) {
        if now.handled > was.handled && now.revision == was.revision {
            out.push(Change::new("config_rejected", None, None).with("revision", now.handled));
        } else if now.revision != was.revision {
            let back = now.revision < was.revision
                || (now.hash.is_some() && now.hash.as_deref() == hash_before_last);
            let kind = if back {
                "config_rolled_back"
            } else {
                "config_applied"
            };
            let mut c = Change::new(kind, None, None).with("revision", now.revision);
            if let Some(h) = &now.hash {
                c = c.with("hash", h);
            }
            out.push(c);
        }
    }
    match (before.frozen, after.frozen) {
        (None, Some(reason)) => {
            out.push(Change::new("membership_frozen", None, None).with("reason", reason))
        }
        (Some(_), None) => out.push(Change::new("membership_thawed", None, None)),
        _ => {}
    }
    out
}

/// Circuit-breaker changes: a cluster's circuit is open from the sample where its refusals grow
/// until [`CIRCUIT_QUIET`] passes without one. `open` keeps, per open cluster, when its refusals last
/// grew.
pub(crate) fn circuits(
    before: &Sample,
    after: &Sample,
    open: &mut BTreeMap<String, std::time::Instant>,
    now: std::time::Instant,
) -> Vec<Change> {
    let mut out = Vec::new();
    for (name, c) in &after.clusters {
        let grew = before
            .clusters
            .get(name)
            .is_some_and(|was| c.overflow > was.overflow);
        if grew && open.insert(name.clone(), now).is_none() {
            out.push(Change::new("circuit_open", Some(name), None));
        }
    }
    open.retain(|name, last| {
        let gone = !after.clusters.contains_key(name);
        let quiet = now.saturating_duration_since(*last) >= CIRCUIT_QUIET;
        if quiet && !gone {
            out.push(Change::new("circuit_closed", Some(name), None));
        }
        !(quiet || gone)
    });
    out
}

/// How long a cluster refuses nothing before its circuit counts as closed again.
pub(crate) const CIRCUIT_QUIET: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "10.0.0.1:80".parse().unwrap()
    }

    #[test]
    fn flips_become_one_event_each() {
        let mut a = Sample::default();
        a.endpoints
            .insert(("api".into(), addr()), EndpointState::default());
        a.clusters.insert(
            "api".into(),
            ClusterState {
                first_share: 1000,
                ..Default::default()
            },
        );
        a.config = Some(ConfigSeen {
            revision: 3,
            handled: 3,
            hash: Some("h3".into()),
        });
        let mut b = a.clone();
        b.endpoints.insert(
            ("api".into(), addr()),
            EndpointState {
                ejected: true,
                ..Default::default()
            },
        );
        b.clusters.insert(
            "api".into(),
            ClusterState {
                failover: true,
                first_share: 700,
                ..Default::default()
            },
        );
        b.config = Some(ConfigSeen {
            revision: 3,
            handled: 4,
            hash: Some("h3".into()),
        });
        let kinds: Vec<_> = changes(&a, &b, None).iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            ["endpoint_ejected", "cluster_failover", "config_rejected"]
        );
        assert!(changes(&b, &b, None).is_empty(), "no change, no event");
        let kinds: Vec<_> = changes(&b, &a, None).iter().map(|c| c.kind).collect();
        assert_eq!(kinds, ["endpoint_restored", "cluster_failback"]);
    }

    #[test]
    fn a_circuit_opens_once_and_closes_after_a_quiet_spell() {
        let t0 = std::time::Instant::now();
        let mut a = Sample::default();
        a.clusters.insert("api".into(), ClusterState::default());
        let mut b = a.clone();
        b.clusters.insert(
            "api".into(),
            ClusterState {
                overflow: 5,
                ..Default::default()
            },
        );
        let mut c = b.clone();
        c.clusters.insert(
            "api".into(),
            ClusterState {
                overflow: 9,
                ..Default::default()
            },
        );
        let mut open = BTreeMap::new();
        assert_eq!(circuits(&a, &b, &mut open, t0)[0].kind, "circuit_open");
        assert!(circuits(&b, &c, &mut open, t0 + CIRCUIT_QUIET / 2).is_empty());
        assert!(circuits(&c, &c, &mut open, t0 + CIRCUIT_QUIET).is_empty());
        let closed = circuits(&c, &c, &mut open, t0 + CIRCUIT_QUIET * 2);
        assert_eq!(closed[0].kind, "circuit_closed");
        assert!(open.is_empty());
    }

    #[test]
    fn an_apply_that_brings_back_the_previous_document_is_a_roll_back() {
        let a = Sample {
            config: Some(ConfigSeen {
                revision: 5,
                handled: 5,
                hash: Some("new".into()),
            }),
            ..Sample::default()
        };
        let mut b = a.clone();
        b.config = Some(ConfigSeen {
            revision: 6,
            handled: 6,
            hash: Some("old".into()),
        });
        assert_eq!(changes(&a, &b, Some("old"))[0].kind, "config_rolled_back");
        assert_eq!(changes(&a, &b, Some("other"))[0].kind, "config_applied");
    }
}
