//! A cluster in a snapshot: its endpoints by priority level, their balancers, and the pick that
//! applies health, priority failover, panic mode, zone awareness, slow start and affinity.

use crate::tables::balancer::rng::Rng;
use crate::tables::balancer::{self, Balancer};
pub(crate) use crate::tables::endpoint::Endpoint;
use crate::upstream::cluster_state::ClusterState;
use crate::upstream::pool::Pool;
use crate::upstream::Upstream;
use edgeplane_config::model::{Balancing, CircuitBreaker, ClusterTimeouts, Retry};
use foldhash::HashMap;
use http::HeaderValue;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

mod pick;

/// A cluster in a snapshot.
#[derive(Debug)]
pub struct Cluster {
    /// Cluster name.
    pub(crate) name: Arc<str>,
    /// Hash of the name, to find the cluster again in a later snapshot (retries).
    pub(crate) name_hash: u64,
    /// Balancing policy.
    pub(crate) policy: Balancing,
    /// All endpoints, sorted by priority (primaries first).
    pub endpoints: Vec<Endpoint>,
    /// How many of `endpoints` form the best priority level.
    pub(crate) candidates: usize,
    /// Picks among `endpoints[..candidates]`.
    pub(crate) balancer: Arc<dyn Balancer>,
    /// The other priority levels, best first.
    pub(crate) backups: Vec<Level>,
    /// Host header to send upstream instead of the client's.
    pub(crate) host_rewrite: Option<HeaderValue>,
    /// Upstream timeouts.
    pub(crate) timeouts: ClusterTimeouts,
    /// Endpoints whose health is below this get no new requests.
    pub(crate) health_threshold: u8,
    /// Passive outlier detection, if enabled.
    pub(crate) outlier: Option<edgeplane_config::model::Outlier>,
    /// What consistent hashing keys on.
    pub(crate) hash_on: edgeplane_config::model::HashOn,
    /// Circuit-breaker limits.
    pub(crate) limits: CircuitBreaker,
    /// Retry policy.
    pub(crate) retry: Retry,
    /// Slow-start window, if any.
    pub(crate) slow_start: Option<Duration>,
    /// Session affinity, if configured.
    pub affinity: Option<crate::tables::affinity::Affinity>,
    /// A level below this percentage of usable endpoints hands traffic to the next one.
    pub(crate) failover_below: u8,
    /// Live state shared by every snapshot in which the cluster keeps its name.
    pub state: Arc<ClusterState>,
    /// Panic mode below this percentage of usable endpoints (0 = off).
    pub(crate) panic_threshold: u8,
    /// Active health checks, if configured.
    pub(crate) health_check: Option<edgeplane_config::model::HealthCheck>,
    /// Zone-aware routing: the best priority's endpoints in the node's zone, if any.
    pub(crate) local: Option<LocalZone>,
    /// TLS to the endpoints, if configured.
    pub(crate) tls: Option<Arc<crate::upstream::tls::TlsClient>>,
    /// Cleartext HTTP/2 with prior knowledge to the endpoints.
    pub(crate) h2c: bool,
    /// Random draws for level choice and slow start.
    rng: Rng,
}

/// A priority level other than the best: a range of the cluster's endpoints and its balancer.
#[derive(Debug)]
pub(crate) struct Level {
    /// First endpoint of the level.
    pub(crate) start: usize,
    /// One past the last.
    pub(crate) end: usize,
    /// Picks among `endpoints[start..end]`.
    pub(crate) balancer: Arc<dyn Balancer>,
}

/// A zone-aware cluster's local candidates, with their own balancer.
#[derive(Debug)]
pub(crate) struct LocalZone {
    /// The candidates in the node's zone.
    pub(crate) endpoints: Vec<Endpoint>,
    /// Picks among them.
    pub(crate) balancer: Arc<dyn Balancer>,
    /// Spill over to every zone below this percentage of usable local endpoints.
    pub(crate) spill_below: u8,
}

/// What a cluster carries over from the previous snapshot.
#[derive(Debug, Default)]
pub(crate) struct Carried<'a> {
    /// Endpoint state by (cluster name, address).
    pub(crate) upstreams: HashMap<(&'a str, SocketAddr), &'a Arc<Upstream>>,
    /// The previous snapshot's clusters by name.
    pub(crate) clusters: HashMap<&'a str, &'a Cluster>,
}

impl Cluster {
    /// Builds the cluster of `c`, reusing live state from `carried`; `zone` is the node's zone. Fails
    /// when its TLS settings cannot be loaded (the error names the setting's path).
    pub(crate) fn build(
        c: &edgeplane_config::model::Cluster,
        carried: &Carried<'_>,
        zone: Option<&str>,
    ) -> Result<Self, crate::error::SettingError> {
        let existing = carried.clusters.get(c.name.as_str()).copied();
        let tls = match &c.tls {
            None => None,
            Some(settings) => match existing.and_then(|p| p.tls.as_ref()) {
                Some(kept) if kept.settings == *settings => Some(kept.clone()),
                _ => Some(Arc::new(crate::upstream::tls::TlsClient::build(
                    settings,
                    &format!("clusters.{}.tls", c.name),
                )?)),
            },
        };
        let state: Arc<ClusterState> = existing.map_or_else(Default::default, |p| p.state.clone());
        let mut endpoints: Vec<Endpoint> = c
            .endpoints
            .iter()
            .map(|e| {
                let upstream = match carried.upstreams.get(&(c.name.as_str(), e.address)) {
                    Some(&kept) => {
                        kept.pool.configure(c.pool);
                        kept.clone()
                    }
                    None => {
                        let fresh = Upstream::new(e.address, Pool::new(c.pool), state.clone());
                        // Joining a cluster that already serves: ramp up (slow start, if set).
                        if existing.is_some() {
                            fresh.start_warming();
                        }
                        Arc::new(fresh)
                    }
                };
                Endpoint {
                    upstream,
                    weight: e.weight,
                    zone: e.zone.as_deref().map(Arc::from),
                    priority: e.priority,
                }
            })
            .collect();
        if !endpoints.is_sorted_by_key(|e| e.priority) {
            endpoints.sort_by_key(|e| e.priority);
        }
        let mut levels = level_ranges(&endpoints).into_iter();
        let candidates = levels.next().map_or(0, |(_, end)| end);
        let balancer = reuse_or_build(c.balancing, &endpoints[..candidates], existing);
        let backups = levels
            .map(|(start, end)| Level {
                start,
                end,
                balancer: reuse_or_build(c.balancing, &endpoints[start..end], existing),
            })
            .collect();
        let local = local_zone(c, &endpoints[..candidates], zone, existing);
        let addresses: Vec<SocketAddr> = endpoints.iter().map(|e| e.upstream.address).collect();
        Ok(Cluster {
            name: c.name.as_str().into(),
            name_hash: crate::tables::balancer::hashing::stable_hash(c.name.as_bytes()),
            policy: c.balancing,
            candidates,
            balancer,
            backups,
            endpoints,
            // Validation rejected host names with bytes a header value cannot hold.
            host_rewrite: c
                .host_rewrite
                .as_deref()
                .and_then(|h| HeaderValue::from_str(h).ok()),
            timeouts: c.timeouts,
            health_threshold: c.membership.health_threshold,
            outlier: c.outlier,
            hash_on: c.hash_on.clone(),
            limits: c.circuit_breaker,
            retry: c.retry,
            slow_start: c.slow_start,
            affinity: c
                .affinity
                .as_ref()
                .map(|a| crate::tables::affinity::Affinity::new(a, &addresses)),
            failover_below: c.failover_below,
            panic_threshold: c.panic_threshold,
            health_check: c.health_check.clone(),
            local,
            state,
            tls,
            h2c: c.h2c,
            rng: Rng::from_entropy(),
        })
    }

    /// A uniform random number (retry backoff jitter).
    pub(crate) fn draw(&self) -> u64 {
        self.rng.next_u64()
    }

    /// Whether the policy hashes a request key.
    pub(crate) fn keyed(&self) -> bool {
        self.balancer.keyed()
    }

    /// The endpoints of each priority level, best first.
    pub(crate) fn levels(&self) -> impl Iterator<Item = &[Endpoint]> {
        std::iter::once(&self.endpoints[..self.candidates])
            .chain(self.backups.iter().map(|l| &self.endpoints[l.start..l.end]))
    }
}

/// The previous snapshot's balancer for the same policy over the same endpoints (addresses and
/// weights, in order), if there is one, else a new one. Reuse keeps a rebuild that leaves a cluster's
/// endpoints alone from recomputing its schedules and hash tables (milliseconds at 10,000 endpoints),
/// and keeps the balancer's state (round-robin position).
fn reuse_or_build(
    policy: Balancing,
    endpoints: &[Endpoint],
    previous: Option<&Cluster>,
) -> Arc<dyn Balancer> {
    let same = |old: &[Endpoint]| {
        old.len() == endpoints.len()
            && old
                .iter()
                .zip(endpoints)
                .all(|(a, b)| a.upstream.address == b.upstream.address && a.weight == b.weight)
    };
    if let Some(p) = previous.filter(|p| p.policy == policy) {
        let mut levels = std::iter::once((&p.endpoints[..p.candidates], &p.balancer))
            .chain(
                p.backups
                    .iter()
                    .map(|l| (&p.endpoints[l.start..l.end], &l.balancer)),
            )
            .chain(p.local.iter().map(|l| (&l.endpoints[..], &l.balancer)));
        if let Some((_, b)) = levels.find(|(old, _)| same(old)) {
            return b.clone();
        }
    }
    Arc::from(balancer::build(policy, endpoints))
}

/// The `(start, end)` of each run of equal priority in `endpoints` (sorted by priority).
fn level_ranges(endpoints: &[Endpoint]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (i, e) in endpoints.iter().enumerate() {
        match out.last_mut() {
            Some((start, end)) if endpoints[*start].priority == e.priority => *end = i + 1,
            _ => out.push((i, i + 1)),
        }
    }
    out
}

/// The local-zone candidates of a zone-aware cluster, when the node has a zone and some candidates are
/// in it.
fn local_zone(
    c: &edgeplane_config::model::Cluster,
    candidates: &[Endpoint],
    zone: Option<&str>,
    previous: Option<&Cluster>,
) -> Option<LocalZone> {
    let spill_below = c.zone_spill_below?;
    let zone = zone?;
    let endpoints: Vec<Endpoint> = candidates
        .iter()
        .filter(|e| e.zone.as_deref() == Some(zone))
        .cloned()
        .collect();
    if endpoints.is_empty() {
        return None;
    }
    Some(LocalZone {
        balancer: reuse_or_build(c.balancing, &endpoints, previous),
        endpoints,
        spill_below,
    })
}

#[cfg(test)]
mod tests {
    use crate::tables::Tables;

    fn routing(ports: &[u16]) -> edgeplane_config::Routing {
        let eps: String = ports
            .iter()
            .map(|p| format!("[[clusters.c.endpoints]]\naddress = \"127.0.0.1:{p}\"\n"))
            .collect();
        let text = format!(
            "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n\
             [clusters.c]\nslow_start = \"300ms\"\n{eps}"
        );
        edgeplane_config::from_toml(&text).unwrap().routing
    }

    fn share_of(tables: &Tables, port: u16, picks: usize) -> f64 {
        let s = tables.load();
        let hits = (0..picks)
            .filter(|_| s.clusters[0].pick().unwrap().upstream.address.port() == port)
            .count();
        hits as f64 / picks as f64
    }

    #[test]
    fn a_joining_endpoint_ramps_up_from_a_tenth() {
        let first = crate::tables::Snapshot::build(&routing(&[1, 2]), None).unwrap();
        assert!(
            first.clusters[0]
                .endpoints
                .iter()
                .all(|e| !e.upstream.warming()),
            "a new cluster starts warm: no one to ramp against"
        );
        let tables = Tables::new(first);
        tables.apply(&routing(&[1, 2, 3])).unwrap();
        let joined = tables.load().clusters[0].endpoints[2].upstream.clone();
        assert!(joined.warming());
        // Round robin would give it a third; at the start of the ramp it gets about a tenth of that.
        let early = share_of(&tables, 3, 6_000);
        assert!(early < 0.15, "{early}");
        // Once the window has passed, the first pick ends the ramp and it gets its full share.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while joined.warming() {
            assert!(std::time::Instant::now() < deadline, "the ramp never ended");
            share_of(&tables, 3, 10);
            std::thread::yield_now();
        }
        let later = share_of(&tables, 3, 6_000);
        assert!((0.30..=0.37).contains(&later), "{later}");
    }
}
