//! Cluster membership from heartbeats and scaling events: a pure state machine (no I/O; the clock is a
//! parameter), so expiry, drain deadlines and replays are tested directly.
//!
//! The routing document in place (the *base*) lists static endpoints. On top of it:
//! - heartbeats track instances. An instance at a listed address only brings live state (health, load,
//!   drain); an unknown one joins the cluster if the cluster allows self-registration. Missing
//!   heartbeats for the instance's ttl mark it down at once (health 0); a self-registered instance that
//!   stays down for the cluster's `remove_after` is removed.
//! - scaling events form an overlay kept across config pushes: add (or re-add), remove, drain (no new
//!   requests, removed once nothing is in flight or at the deadline), weight. An address removed or
//!   drained by a scaling event ignores heartbeats until it is added again.
//!
//! Static stability: silence on the bus is the bus's fault until the bus proves otherwise. Nothing
//! expires or is removed while the node's link to NATS is down, nor for a grace period after it comes
//! back ([`Membership::link`]); and an instance expires only when some heartbeat of its cluster
//! arrived after its deadline, so a cluster whose heartbeats all stop at once is *held* with its last
//! known state. A backend that really died is caught on the data path (connect failures, retries,
//! outlier detection, active checks).
//!
//! Events return what changed: a live update to write in place ([`LiveUpdate`]), or that the
//! membership changed and the tables must be rebuilt from [`Membership::compose`].

mod compose;
mod link;
mod scale;

pub use link::Frozen;
pub use scale::ScaleOutcome;
#[cfg(test)]
mod tests;

use edgeplane_bus::wire::Heartbeat;
use edgeplane_config::model::MemberPolicy;
use edgeplane_config::Routing;
// foldhash: a randomized hasher several times faster than SipHash on these small keys; rebuilds at
// 10,000 instances hash every address a few times.
use foldhash::{HashMap, HashSet, HashSetExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// Membership of every cluster the node knows of.
#[derive(Debug, Default)]
pub struct Membership {
    clusters: HashMap<String, Members>,
    /// Ids of the scaling events applied (idempotency).
    seen_events: HashSet<String>,
    /// The node's link to the bus: expiry and removal are suspended while it is down and for a grace
    /// period after it comes back.
    link: link::Link,
    /// Heartbeats missed by known instances, from gaps in their sequence numbers.
    missed: u64,
}

#[derive(Debug, Default)]
struct Members {
    /// `None` while the cluster is not in the routing in place.
    policy: Option<MemberPolicy>,
    /// Addresses listed in the routing in place.
    statics: HashSet<SocketAddr>,
    /// Instances by id.
    instances: HashMap<String, Instance>,
    /// The scaling overlay, by address.
    scaled: HashMap<SocketAddr, scale::Scaled>,
    /// When the last heartbeat of this cluster arrived: proof that the bus delivers its subject.
    last_heard: Option<Instant>,
    /// Instances overdue but held because the whole cluster went silent (last tick).
    held: usize,
}

#[derive(Debug)]
struct Instance {
    boot_id: String,
    seq: u64,
    address: SocketAddr,
    weight: u32,
    zone: Option<String>,
    health: u8,
    in_flight: u32,
    cpu: f32,
    latency_ms: f32,
    last_seen: Instant,
    ttl: Duration,
    phase: Phase,
    /// Joined by self-registration: it contributes an endpoint of its own.
    registered: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Up,
    Down { since: Instant },
    Draining { until: Instant },
}

/// Live state to write in place on one endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveUpdate {
    /// The endpoint.
    pub address: SocketAddr,
    /// Health score; 0 = down.
    pub health: u8,
    /// No new requests.
    pub draining: bool,
    /// Reported in-flight requests.
    pub in_flight: u32,
    /// Reported CPU use.
    pub cpu: f32,
    /// Reported latency.
    pub latency_ms: f32,
}

/// What a heartbeat did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeartbeatOutcome {
    /// A known endpoint: write this in place, no rebuild.
    Updated(LiveUpdate),
    /// Membership changed (a join, a new address or weight): rebuild, coalesced.
    Changed,
    /// An older or repeated sequence of the same boot: dropped.
    Stale,
    /// The cluster is not in the routing in place.
    UnknownCluster,
    /// An unknown instance at an unlisted address in a cluster without self-registration.
    NotRegistered,
    /// The address was removed or drained by a scaling event.
    Excluded,
    /// A draining heartbeat of an instance that is not a member: leaving instances never join.
    Leaving,
}

/// What a pass over the clocks did.
#[derive(Debug, Default, PartialEq)]
pub struct TickOutcome {
    /// Live state to write in place, by cluster.
    pub updates: Vec<(String, LiveUpdate)>,
    /// Endpoints were removed: rebuild.
    pub changed: bool,
    /// Clusters whose heartbeats all stopped, with the instances held (overdue, not expired).
    pub held: Vec<(String, usize)>,
}

impl Instance {
    fn live(&self) -> LiveUpdate {
        LiveUpdate {
            address: self.address,
            health: match self.phase {
                Phase::Down { .. } => 0,
                _ => self.health,
            },
            draining: matches!(self.phase, Phase::Draining { .. }),
            in_flight: self.in_flight,
            cpu: self.cpu,
            latency_ms: self.latency_ms,
        }
    }

    fn record(&mut self, hb: &Heartbeat, now: Instant) {
        if self.boot_id != hb.boot_id {
            hb.boot_id.clone_into(&mut self.boot_id);
        }
        self.seq = hb.seq;
        self.health = hb.health;
        self.in_flight = hb.in_flight;
        self.cpu = hb.cpu;
        self.latency_ms = hb.latency_ms;
        self.last_seen = now;
        self.ttl = Duration::from_millis(hb.ttl_ms);
        self.phase = match (hb.draining, self.phase) {
            (true, Phase::Draining { until }) => Phase::Draining { until },
            (true, _) => Phase::Draining {
                until: now + self.ttl,
            },
            (false, _) => Phase::Up,
        };
    }
}

impl Membership {
    /// Takes the routing now in place: cluster policies and listed addresses. Instances of clusters
    /// that left the routing are forgotten; self-registered ones of clusters that no longer allow it
    /// are dropped. The scaling overlay is kept.
    pub fn set_base(&mut self, routing: &Routing) {
        let mut present = HashSet::new();
        for c in &routing.clusters {
            present.insert(c.name.as_str());
            let m = self.clusters.entry(c.name.clone()).or_default();
            m.policy = Some(c.membership);
            m.statics = c.endpoints.iter().map(|e| e.address).collect();
            let statics = &m.statics;
            let allow = c.membership.self_registration;
            m.instances.retain(|_, i| {
                i.registered = !statics.contains(&i.address);
                !i.registered || allow
            });
        }
        for (name, m) in &mut self.clusters {
            if !present.contains(name.as_str()) {
                m.policy = None;
                m.statics.clear();
                m.instances.clear();
            }
        }
    }

    /// Applies one heartbeat of `cluster` (already decoded and validated; `address` is its parsed
    /// address).
    pub fn heartbeat(
        &mut self,
        cluster: &str,
        hb: &Heartbeat,
        address: SocketAddr,
        now: Instant,
    ) -> HeartbeatOutcome {
        let Some(m) = self.clusters.get_mut(cluster) else {
            return HeartbeatOutcome::UnknownCluster;
        };
        let Some(policy) = m.policy else {
            return HeartbeatOutcome::UnknownCluster;
        };
        // Any message on the cluster's subject proves the bus delivers it.
        m.last_heard = Some(now);
        if m.scaled.get(&address).is_some_and(scale::Scaled::excludes) {
            return HeartbeatOutcome::Excluded;
        }
        let listed =
            m.statics.contains(&address) || m.scaled.get(&address).is_some_and(scale::Scaled::adds);
        if let Some(i) = m.instances.get_mut(hb.instance.as_str()) {
            if i.boot_id == hb.boot_id {
                if hb.seq <= i.seq {
                    return HeartbeatOutcome::Stale;
                }
                self.missed += hb.seq - i.seq - 1;
            }
            let moved = i.address != address;
            let reshaped = i.registered && (i.weight != hb.weight || i.zone != hb.zone);
            if moved && !listed && !policy.self_registration {
                m.instances.remove(hb.instance.as_str());
                return HeartbeatOutcome::NotRegistered;
            }
            let was_registered = i.registered;
            i.record(hb, now);
            i.address = address;
            i.weight = hb.weight;
            i.zone.clone_from(&hb.zone);
            i.registered = !listed;
            let live = i.live();
            if moved {
                release_address(m, &hb.instance, address);
            }
            return if moved || reshaped || was_registered == listed {
                HeartbeatOutcome::Changed
            } else {
                HeartbeatOutcome::Updated(live)
            };
        }
        if !listed && !policy.self_registration {
            return HeartbeatOutcome::NotRegistered;
        }
        if !listed && hb.draining {
            return HeartbeatOutcome::Leaving;
        }
        let mut i = Instance {
            boot_id: hb.boot_id.clone(),
            seq: hb.seq,
            address,
            weight: hb.weight,
            zone: hb.zone.clone(),
            health: hb.health,
            in_flight: 0,
            cpu: 0.0,
            latency_ms: 0.0,
            last_seen: now,
            ttl: Duration::ZERO,
            phase: Phase::Up,
            registered: !listed,
        };
        i.record(hb, now);
        let live = i.live();
        m.instances.insert(hb.instance.clone(), i);
        // The newest claim on an address wins: an instance that restarted under a new id replaces the
        // old record instead of sharing (and later removing) its endpoint.
        release_address(m, &hb.instance, address);
        if listed {
            HeartbeatOutcome::Updated(live)
        } else {
            HeartbeatOutcome::Changed
        }
    }

    /// Advances the clocks: expired instances go down, long-down self-registered ones and finished
    /// drains are removed. `in_flight(cluster, address)` tells the requests in flight to an endpoint.
    ///
    /// While [`Membership::frozen`], nothing expires and nothing is removed for missing heartbeats
    /// (drains still finish: they follow this node's own in-flight count). An overdue instance expires
    /// only if a heartbeat of its cluster arrived after its deadline; otherwise the whole cluster went
    /// silent and its instances are held.
    pub fn tick(
        &mut self,
        now: Instant,
        in_flight: &dyn Fn(&str, SocketAddr) -> u32,
    ) -> TickOutcome {
        let mut out = TickOutcome::default();
        let frozen = self.link.frozen(now).is_some();
        for (name, m) in &mut self.clusters {
            let Some(policy) = m.policy else { continue };
            let mut removed = false;
            let heard = m.last_heard;
            let mut held = 0;
            m.instances.retain(|_, i| {
                match i.phase {
                    Phase::Up if now >= i.last_seen + i.ttl => {
                        if frozen || heard.is_none_or(|h| now >= h + i.ttl) {
                            // Frozen, or nothing of the cluster heard for a whole ttl: held.
                            held += 1;
                        } else if heard.is_some_and(|h| h <= i.last_seen + i.ttl) {
                            // Others heard recently, but none since the deadline yet: the next
                            // heartbeat of the cluster decides.
                        } else {
                            i.phase = Phase::Down { since: now };
                            out.updates.push((name.clone(), i.live()));
                        }
                    }
                    Phase::Down { since }
                        if i.registered && !frozen && now >= since + policy.remove_after =>
                    {
                        removed = true;
                        return false;
                    }
                    Phase::Draining { until }
                        if i.registered && (now >= until || in_flight(name, i.address) == 0) =>
                    {
                        removed = true;
                        return false;
                    }
                    _ => {}
                }
                true
            });
            m.held = held;
            if held > 0 {
                out.held.push((name.clone(), held));
            }
            removed |= scale::finish_drains(&mut m.scaled, name, now, in_flight);
            out.changed |= removed;
        }
        out
    }

    /// Tells the state of the node's link to the bus. When it comes back up, expiry and removal stay
    /// suspended for `grace`, so that publishers, which lost the bus too, can resume (no grace when no
    /// instance is tracked, as at the first connection). Returns whether the link's state changed.
    pub fn link(&mut self, up: bool, now: Instant, grace: Duration) -> bool {
        let grace = if self.instances() > 0 {
            grace
        } else {
            Duration::ZERO
        };
        self.link.set(up, now, grace)
    }

    /// Why expiry and removal are suspended now, if they are.
    pub fn frozen(&self, now: Instant) -> Option<Frozen> {
        self.link.frozen(now)
    }

    /// Instances held (overdue while their whole cluster is silent, or while frozen) at the last tick.
    pub fn held(&self) -> usize {
        self.clusters.values().map(|m| m.held).sum()
    }

    /// Heartbeats missed by known instances, from gaps in their sequence numbers: lost between the
    /// publisher and this node (on the network, in NATS, or dropped as a slow consumer).
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// The live state every tracked endpoint should have, as (cluster, update). Endpoints not listed
    /// here should be healthy (100) and not draining.
    pub fn live_states(&self) -> impl Iterator<Item = (&str, LiveUpdate)> + '_ {
        self.clusters.iter().flat_map(|(name, m)| {
            let instances = m.instances.values().map(|i| i.live());
            let drains = m
                .scaled
                .iter()
                .filter(|(_, s)| s.draining())
                .map(|(a, _)| LiveUpdate {
                    address: *a,
                    health: 100,
                    draining: true,
                    in_flight: 0,
                    cpu: 0.0,
                    latency_ms: 0.0,
                });
            instances.chain(drains).map(move |u| (name.as_str(), u))
        })
    }

    /// Number of instances tracked from heartbeats, over every cluster.
    pub fn instances(&self) -> usize {
        self.clusters.values().map(|m| m.instances.len()).sum()
    }
}

/// Forgets every instance other than `keep` that claims `address`.
fn release_address(m: &mut Members, keep: &str, address: SocketAddr) {
    m.instances
        .retain(|id, i| id == keep || i.address != address);
}
