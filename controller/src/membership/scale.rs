//! The scaling overlay: what add, remove, drain and weight events leave on an address.

use super::Membership;
use edgeplane_bus::wire::{ScaleAction, ScaleEvent};
use foldhash::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// What scaling events say about one address.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Scaled {
    pub(super) presence: Presence,
    /// While draining: when the drain ends at the latest.
    pub(super) drain_until: Option<Instant>,
    /// Weight set by `add` or `weight`, overriding the listed one.
    pub(super) weight: Option<u32>,
    /// Zone set by `add`.
    pub(super) zone: Option<String>,
}

/// Whether scaling events put the address in the cluster or took it out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Presence {
    /// Only a weight was set: the address serves if listed or registered.
    #[default]
    Unchanged,
    /// Added: it serves.
    Added,
    /// Removed: it does not serve, whatever lists it.
    Removed,
}

impl Scaled {
    /// Heartbeats from the address are ignored.
    pub(super) fn excludes(&self) -> bool {
        self.presence == Presence::Removed || self.drain_until.is_some()
    }

    /// The address serves by a scaling event.
    pub(super) fn adds(&self) -> bool {
        self.presence == Presence::Added
    }

    /// The address is draining.
    pub(super) fn draining(&self) -> bool {
        self.drain_until.is_some()
    }
}

/// What a scaling event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleOutcome {
    /// Applied: rebuild (coalesced).
    Applied,
    /// An event id seen before: ignored.
    Duplicate,
}

impl Membership {
    /// Applies one scaling event of `cluster` (already decoded and validated). `age` is how long ago
    /// it was published, so that a drain replayed by a node that starts later ends at the same
    /// deadline as on its peers.
    pub fn scale(
        &mut self,
        cluster: &str,
        event: &ScaleEvent,
        age: Duration,
        now: Instant,
    ) -> ScaleOutcome {
        if !self.seen_events.insert(event.id.clone()) {
            return ScaleOutcome::Duplicate;
        }
        let m = self.clusters.entry(cluster.to_string()).or_default();
        let parse = |a: &str| a.parse::<SocketAddr>().ok();
        match &event.action {
            ScaleAction::Add {
                address,
                weight,
                zone,
            } => {
                if let Some(a) = parse(address) {
                    let s = m.scaled.entry(a).or_default();
                    s.presence = Presence::Added;
                    s.drain_until = None;
                    s.weight = Some(*weight);
                    s.zone.clone_from(zone);
                }
            }
            ScaleAction::Remove { address } => {
                if let Some(a) = parse(address) {
                    let s = m.scaled.entry(a).or_default();
                    s.presence = Presence::Removed;
                    s.drain_until = None;
                }
            }
            ScaleAction::Drain {
                address,
                deadline_ms,
            } => {
                if let Some(a) = parse(address) {
                    let left = Duration::from_millis(*deadline_ms).saturating_sub(age);
                    let s = m.scaled.entry(a).or_default();
                    if left.is_zero() {
                        s.presence = Presence::Removed;
                        s.drain_until = None;
                    } else if s.presence != Presence::Removed {
                        // A drain keeps an earlier deadline if one is running.
                        let until = now + left;
                        s.drain_until = Some(s.drain_until.map_or(until, |u| u.min(until)));
                    }
                }
            }
            ScaleAction::Weight { address, weight } => {
                if let Some(a) = parse(address) {
                    m.scaled.entry(a).or_default().weight = Some(*weight);
                }
            }
        }
        ScaleOutcome::Applied
    }
}

/// Ends the drains that are idle or past their deadline. Returns whether any ended.
pub(super) fn finish_drains(
    scaled: &mut HashMap<SocketAddr, Scaled>,
    cluster: &str,
    now: Instant,
    in_flight: &dyn Fn(&str, SocketAddr) -> u32,
) -> bool {
    let mut ended = false;
    for (a, s) in scaled.iter_mut() {
        if let Some(until) = s.drain_until {
            if now >= until || in_flight(cluster, *a) == 0 {
                s.presence = Presence::Removed;
                s.drain_until = None;
                ended = true;
            }
        }
    }
    ended
}
