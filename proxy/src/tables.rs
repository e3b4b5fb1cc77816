//! The routing tables: one immutable [`Snapshot`] behind one `ArcSwap`.
//!
//! Routes, clusters and endpoints that belong together live in one snapshot, so one `store` swaps them
//! all. A request does one `load` and works on what it got, whatever is stored meanwhile. Building a
//! snapshot reuses the [`Upstream`] of every endpoint whose identity (cluster name, address) is
//! unchanged, so in-flight counts, latency and idle connections survive reloads.

use crate::balancer::{self, Balancer};
use crate::pool::Pool;
use crate::router::{Router, RouterError};
use crate::telemetry::{RouteMetrics, Telemetry};
use crate::upstream::Upstream;
use arc_swap::ArcSwap;
use edgeplane_config::model::{Balancing, ClusterTimeouts, Routing};
use edgeplane_config::ContentHash;
use foldhash::{HashMap, HashMapExt};
use http::HeaderValue;
use std::net::SocketAddr;
use std::sync::Arc;

/// The proxy's routing state: the current snapshot, swapped whole.
#[derive(Debug)]
pub struct Tables {
    current: ArcSwap<Snapshot>,
}

impl Tables {
    /// Tables holding a first snapshot.
    pub fn new(first: Snapshot) -> Tables {
        Tables {
            current: ArcSwap::from_pointee(first),
        }
    }

    /// The current snapshot as an owned `Arc`, for holders that keep it a while.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The current snapshot, borrowed: no reference-count traffic on the shared snapshot, so worker
    /// threads do not contend on it. For the request path, which drops it before its first await.
    pub fn guard(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Builds a snapshot of `routing` on top of the current one and stores it, in one swap.
    pub fn apply(&self, routing: &Routing) -> Result<Arc<Snapshot>, RouterError> {
        let next = Arc::new(Snapshot::build(routing, Some(&self.load()))?);
        self.current.store(next.clone());
        Ok(next)
    }
}

/// Everything a request needs to be routed, immutable once built.
#[derive(Debug)]
pub struct Snapshot {
    /// Route lookup.
    pub router: Router,
    /// Clusters, indexed by [`crate::router::Route::cluster`].
    pub clusters: Vec<Cluster>,
    /// Content hash of the routing document this snapshot was built from.
    pub hash: ContentHash,
    /// Counts the snapshots built by this process, starting at 1.
    pub generation: u64,
    /// Request metrics of each route, by [`crate::router::Route::index`].
    pub route_metrics: Vec<Arc<RouteMetrics>>,
    /// Where the metrics are registered (`None`: not recorded, as in unit tests).
    pub telemetry: Option<Arc<Telemetry>>,
    /// The node's zone, for zone-aware clusters.
    pub zone: Option<Arc<str>>,
    /// The routing this snapshot was built from (for the admin API; never read on the request path).
    pub routing: Arc<Routing>,
}

/// A cluster in a snapshot.
#[derive(Debug)]
pub struct Cluster {
    /// Cluster name.
    pub name: Arc<str>,
    /// Balancing policy.
    pub policy: Balancing,
    /// All endpoints, sorted by priority (primaries first).
    pub endpoints: Vec<Endpoint>,
    /// How many of `endpoints` form the best priority level, the candidates of the balancer.
    pub candidates: usize,
    /// Picks among `endpoints[..candidates]`.
    pub balancer: Box<dyn Balancer>,
    /// Host header to send upstream instead of the client's.
    pub host_rewrite: Option<HeaderValue>,
    /// Upstream timeouts.
    pub timeouts: ClusterTimeouts,
    /// Endpoints whose health is below this get no new requests.
    pub health_threshold: u8,
    /// Passive outlier detection, if enabled.
    pub outlier: Option<edgeplane_config::model::Outlier>,
    /// What consistent hashing keys on.
    pub hash_on: edgeplane_config::model::HashOn,
    /// Requests in flight to the cluster at most (circuit breaker).
    pub max_requests: Option<u32>,
    /// The breaker's count and panic flag, shared by every snapshot in which the cluster keeps its
    /// name.
    pub breaker: Arc<crate::breaker::Breaker>,
    /// Panic mode below this percentage of usable endpoints (0 = off).
    pub panic_threshold: u8,
    /// Active health checks, if configured.
    pub health_check: Option<edgeplane_config::model::HealthCheck>,
    /// Zone-aware routing: the best priority's endpoints in the node's zone, if any.
    pub local: Option<LocalZone>,
}

/// A zone-aware cluster's local candidates, with their own balancer.
#[derive(Debug)]
pub struct LocalZone {
    /// The candidates in the node's zone.
    pub endpoints: Vec<Endpoint>,
    /// Picks among them.
    pub balancer: Box<dyn Balancer>,
    /// Spill over to every zone below this percentage of usable local endpoints.
    pub spill_below: u8,
}

impl Cluster {
    /// Picks a usable endpoint for a request (see [`Upstream::usable`]): the balancer's choice among
    /// the best priority level; if that one is unusable, the balancer's next choices (as many as there
    /// are candidates); if none is usable, the least loaded usable endpoint of the best priority level
    /// that has one (failover to backups). `None` when no endpoint is usable.
    pub fn pick(&self) -> Option<&Endpoint> {
        self.pick_for(None)
    }

    /// [`Cluster::pick`] for a request with consistent-hashing key `key`. When the key's endpoint is
    /// unusable, the next tries rehash the key, so every node moves that key to the same endpoint.
    pub fn pick_for(&self, key: Option<u64>) -> Option<&Endpoint> {
        if let Some(local) = &self.local {
            if self.breaker.local_ok() {
                if let Some(e) = self.try_pick(&local.endpoints, local.balancer.as_ref(), key) {
                    return Some(e);
                }
            }
        }
        self.try_pick(
            &self.endpoints[..self.candidates],
            self.balancer.as_ref(),
            key,
        )
        .or_else(|| self.fallback())
    }

    /// The balancer's choices among `candidates` (as many tries as there are candidates) until one
    /// is usable.
    fn try_pick<'a>(
        &self,
        candidates: &'a [Endpoint],
        balancer: &dyn Balancer,
        key: Option<u64>,
    ) -> Option<&'a Endpoint> {
        for attempt in 0..candidates.len() as u64 {
            let i = match key {
                Some(k) if attempt == 0 => balancer.pick_keyed(candidates, k),
                Some(k) => balancer.pick_keyed(
                    candidates,
                    crate::balancer::hashing::mix(k.wrapping_add(attempt)),
                ),
                None => balancer.pick(candidates),
            };
            let e = candidates.get(i?)?;
            // In panic mode too few endpoints are usable: spread over all rather than crush the few.
            if e.upstream.usable(self.health_threshold) || self.breaker.panic() {
                return Some(e);
            }
        }
        None
    }

    /// Whether the policy hashes a request key.
    pub fn keyed(&self) -> bool {
        self.balancer.keyed()
    }

    #[cold]
    fn fallback(&self) -> Option<&Endpoint> {
        let mut best: Option<&Endpoint> = None;
        for e in &self.endpoints {
            if best.is_some_and(|b| b.priority < e.priority) {
                break;
            }
            if e.upstream.usable(self.health_threshold) && best.is_none_or(|b| less_loaded(e, b)) {
                best = Some(e);
            }
        }
        best
    }
}

/// The local-zone candidates of a zone-aware cluster, when the node has a zone and some candidates are
/// in it.
fn local_zone(
    c: &edgeplane_config::model::Cluster,
    candidates: &[Endpoint],
    zone: Option<&str>,
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
        balancer: balancer::build(c.balancing, &endpoints),
        endpoints,
        spill_below,
    })
}

/// Whether `a` has fewer requests in flight than `b` relative to their weights (without division).
fn less_loaded(a: &Endpoint, b: &Endpoint) -> bool {
    u64::from(a.upstream.in_flight()) * u64::from(b.weight.max(1))
        < u64::from(b.upstream.in_flight()) * u64::from(a.weight.max(1))
}

/// An endpoint in a snapshot: this version's settings plus the long-lived [`Upstream`].
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Live state, shared with the previous and next snapshots.
    pub upstream: Arc<Upstream>,
    /// Relative weight.
    pub weight: u32,
    /// Zone, if known.
    pub zone: Option<Arc<str>>,
    /// Priority (0 = primary).
    pub priority: u8,
}

impl Snapshot {
    /// Builds a snapshot of `routing`, carrying over endpoint state (and the metrics registry) from
    /// `previous`.
    pub fn build(routing: &Routing, previous: Option<&Snapshot>) -> Result<Snapshot, RouterError> {
        let telemetry = previous.and_then(|p| p.telemetry.clone());
        let zone = previous.and_then(|p| p.zone.clone());
        Snapshot::build_with(routing, previous, telemetry, zone)
    }

    /// [`Snapshot::build`] recording request metrics into `telemetry`.
    pub fn build_with(
        routing: &Routing,
        previous: Option<&Snapshot>,
        telemetry: Option<Arc<Telemetry>>,
        zone: Option<Arc<str>>,
    ) -> Result<Snapshot, RouterError> {
        let mut carried: HashMap<(&str, SocketAddr), &Arc<Upstream>> = HashMap::new();
        if let Some(prev) = previous {
            for c in &prev.clusters {
                for e in &c.endpoints {
                    carried.insert((&c.name, e.upstream.address), &e.upstream);
                }
            }
        }
        let breakers: HashMap<&str, &Arc<crate::breaker::Breaker>> = previous
            .map(|p| p.clusters.iter().map(|c| (&*c.name, &c.breaker)).collect())
            .unwrap_or_default();
        let clusters = routing
            .clusters
            .iter()
            .map(|c| {
                let mut endpoints: Vec<Endpoint> = c
                    .endpoints
                    .iter()
                    .map(|e| {
                        let upstream = match carried.get(&(c.name.as_str(), e.address)) {
                            Some(&existing) => {
                                existing.pool.configure(c.pool);
                                existing.clone()
                            }
                            None => Arc::new(Upstream::new(e.address, Pool::new(c.pool))),
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
                let best = endpoints.first().map(|e| e.priority);
                let candidates = endpoints
                    .iter()
                    .take_while(|e| Some(e.priority) == best)
                    .count();
                let balancer = balancer::build(c.balancing, &endpoints[..candidates]);
                let local = local_zone(c, &endpoints[..candidates], zone.as_deref());
                Cluster {
                    name: c.name.as_str().into(),
                    policy: c.balancing,
                    candidates,
                    balancer,
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
                    max_requests: c.max_requests,
                    panic_threshold: c.panic_threshold,
                    health_check: c.health_check.clone(),
                    local,
                    breaker: breakers
                        .get(c.name.as_str())
                        .map_or_else(Default::default, |&b| b.clone()),
                }
            })
            .collect();
        let mut kept_metrics: HashMap<(&str, &str), &Arc<RouteMetrics>> = HashMap::new();
        if let Some(prev) = previous {
            for r in prev.router.routes() {
                let cluster = prev.clusters.get(r.cluster).map_or("", |c| &*c.name);
                if let Some(m) = prev.route_metrics.get(r.index()) {
                    kept_metrics.insert((&r.name, cluster), m);
                }
            }
        }
        let route_metrics = routing
            .routes
            .iter()
            .map(|r| {
                let cluster = routing.clusters.get(r.cluster).map_or("", |c| &c.name);
                match kept_metrics.get(&(r.name.as_str(), cluster)) {
                    Some(&m) => m.clone(),
                    None => Arc::new(RouteMetrics::new(telemetry.as_deref(), &r.name, cluster)),
                }
            })
            .collect();
        Ok(Snapshot {
            router: Router::new(&routing.routes)?,
            clusters,
            hash: routing.hash,
            generation: previous.map_or(1, |p| p.generation + 1),
            route_metrics,
            telemetry,
            zone,
            routing: Arc::new(routing.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(endpoints: &[&str], policy: &str) -> Routing {
        let eps: String = endpoints
            .iter()
            .map(|a| format!("[[clusters.c.endpoints]]\naddress = \"{a}\"\n"))
            .collect();
        let text = format!(
            "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n\
             [clusters.c]\nbalancing = \"{policy}\"\n{eps}"
        );
        edgeplane_config::from_toml(&text).unwrap().routing
    }

    #[test]
    fn endpoint_state_survives_rebuilds_when_identity_is_kept() {
        let tables = Tables::new(
            Snapshot::build(
                &routing(&["127.0.0.1:1", "127.0.0.1:2"], "round_robin"),
                None,
            )
            .unwrap(),
        );
        let first = tables.load();
        let kept = first.clusters[0].endpoints[0].upstream.clone();
        let _in_flight = kept.start_request();
        kept.record_success(std::time::Duration::from_millis(5));

        // A new version: other policy, one endpoint removed, one added.
        let next = tables
            .apply(&routing(
                &["127.0.0.1:1", "127.0.0.1:3"],
                "least_connections",
            ))
            .unwrap();
        assert_eq!(next.generation, 2);
        let ep = &next.clusters[0].endpoints[0];
        assert!(
            Arc::ptr_eq(&ep.upstream, &kept),
            "same identity, same live state"
        );
        assert_eq!(ep.upstream.in_flight(), 1);
        assert!(ep.upstream.ewma_latency().is_some());
        let added = &next.clusters[0].endpoints[1];
        assert_eq!(added.upstream.address, "127.0.0.1:3".parse().unwrap());
        assert_eq!(added.upstream.in_flight(), 0);
        // The old snapshot is untouched for requests that still hold it.
        assert_eq!(
            first.clusters[0].endpoints[1].upstream.address,
            "127.0.0.1:2".parse().unwrap()
        );
    }

    #[test]
    fn only_the_best_priority_is_a_candidate() {
        let text = "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n\
            [[clusters.c.endpoints]]\naddress = \"127.0.0.1:1\"\npriority = 1\n\
            [[clusters.c.endpoints]]\naddress = \"127.0.0.1:2\"\n";
        let routing = edgeplane_config::from_toml(text).unwrap().routing;
        let snap = Snapshot::build(&routing, None).unwrap();
        let c = &snap.clusters[0];
        assert_eq!(c.candidates, 1);
        for _ in 0..4 {
            assert_eq!(c.pick().unwrap().upstream.address.port(), 2);
        }
    }

    #[test]
    fn picks_skip_unusable_endpoints_then_fail_over_to_backups() {
        use edgeplane_controller::LiveEndpoint;
        let text = "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n\
            balancing = \"weighted_round_robin\"\nhealth_threshold = 50\n\
            [[clusters.c.endpoints]]\naddress = \"127.0.0.1:1\"\nweight = 100\n\
            [[clusters.c.endpoints]]\naddress = \"127.0.0.1:2\"\n\
            [[clusters.c.endpoints]]\naddress = \"127.0.0.1:3\"\npriority = 1\n";
        let routing = edgeplane_config::from_toml(text).unwrap().routing;
        let snap = Snapshot::build(&routing, None).unwrap();
        let c = &snap.clusters[0];
        let port = || c.pick().map(|e| e.upstream.address.port());
        let up = |i: usize| &c.endpoints[i].upstream;
        // The heavy endpoint below the threshold: every pick goes to the other primary.
        up(0).set_health(49);
        assert!((0..50).all(|_| port() == Some(2)));
        // The other one draining too: the backup serves.
        up(1).set_draining(true);
        assert!((0..5).all(|_| port() == Some(3)));
        // The backup down as well: nothing is usable.
        up(2).set_health(0);
        assert_eq!(port(), None);
        up(0).set_health(50);
        assert_eq!(port(), Some(1), "at the threshold is usable");
    }

    #[test]
    fn a_hashed_key_moves_the_same_way_on_every_node_when_its_endpoint_is_out() {
        use edgeplane_controller::LiveEndpoint;
        let eps: String = (1..=5)
            .map(|p| format!("[[clusters.c.endpoints]]\naddress = \"127.0.0.1:{p}\"\n"))
            .collect();
        let text = format!(
            "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n\
             balancing = \"maglev\"\n{eps}"
        );
        let routing = edgeplane_config::from_toml(&text).unwrap().routing;
        let (a, b) = (
            Snapshot::build(&routing, None).unwrap(),
            Snapshot::build(&routing, None).unwrap(),
        );
        let port = |s: &Snapshot, key| {
            s.clusters[0]
                .pick_for(Some(key))
                .map(|e| e.upstream.address.port())
        };
        let key = crate::balancer::hashing::stable_hash(b"user-7");
        let owner = port(&a, key).unwrap();
        assert_eq!(port(&b, key), Some(owner));
        for s in [&a, &b] {
            let e = s.clusters[0]
                .endpoints
                .iter()
                .find(|e| e.upstream.address.port() == owner)
                .unwrap();
            e.upstream.set_health(0);
        }
        let moved = port(&a, key).unwrap();
        assert_ne!(moved, owner);
        assert_eq!(
            port(&b, key),
            Some(moved),
            "both nodes move the key to the same endpoint"
        );
    }
}
