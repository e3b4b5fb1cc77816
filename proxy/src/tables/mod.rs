//! The routing tables: one immutable [`Snapshot`] behind one `ArcSwap`, written by one writer at a
//! time.
//!
//! Routes, clusters and endpoints that belong together live in one snapshot, so one `store` swaps them
//! all. A request does one `load` and works on what it got, whatever is stored meanwhile. Building a
//! snapshot reuses the [`Upstream`](crate::upstream::Upstream) of every endpoint whose identity (cluster name, address) is
//! unchanged, so in-flight counts, latency and idle connections survive reloads.
//!
//! What a snapshot holds: the compiled [`router`], the clusters ([`cluster`]) with their endpoints
//! ([`endpoint`]) by priority level ([`priority`]), each level's [`balancer`], session [`affinity`],
//! and the certificate table ([`certs`]).

pub(crate) mod affinity;
pub(crate) mod balancer;
pub(crate) mod certs;
pub(crate) mod cluster;
pub(crate) mod dns;
pub(crate) mod endpoint;
pub(crate) mod mirror;
pub(crate) mod priority;
pub mod router;
pub(crate) mod split;

pub use certs::CertTable;

use crate::tables::cluster::Carried;
pub(crate) use crate::tables::cluster::{Cluster, Endpoint};
use crate::tables::dns::DnsCache;
use crate::tables::mirror::MirrorState;
use crate::tables::router::{Router, RouterError};
use crate::telemetry::{RouteMetrics, Telemetry};
use arc_swap::ArcSwap;
use edgeplane_config::model::Routing;
use edgeplane_config::ContentHash;
use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

/// The proxy's routing state: the current snapshot, swapped whole.
#[derive(Debug)]
pub struct Tables {
    current: ArcSwap<Snapshot>,
    /// Held by a writer from the load of the snapshot it builds on to the store of the new one, so
    /// that two writers (a routing applied, a certificate file reloaded) never undo each other.
    writer: std::sync::Mutex<()>,
    /// What the names of endpoints named by DNS resolved to last.
    dns: DnsCache,
}

impl Tables {
    /// Tables holding a first snapshot.
    pub fn new(first: Snapshot) -> Tables {
        Tables {
            current: ArcSwap::from_pointee(first),
            writer: std::sync::Mutex::new(()),
            dns: DnsCache::default(),
        }
    }

    /// The resolutions of endpoints named by DNS.
    pub(crate) fn dns(&self) -> &DnsCache {
        &self.dns
    }

    /// Rebuilds the current snapshot with the names' latest resolutions.
    pub(crate) fn refresh_dns(&self) -> Result<Arc<Snapshot>, BuildError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.load();
        let next = Arc::new(self.expanded(&current.routing, &current, None)?);
        self.current.store(next.clone());
        Ok(next)
    }

    /// A snapshot of `declared` (the routing as written) with its names' resolutions as endpoints,
    /// on top of `current`; it keeps `declared` as its routing.
    fn expanded(
        &self,
        declared: &Routing,
        current: &Snapshot,
        certs: Option<Arc<CertTable>>,
    ) -> Result<Snapshot, BuildError> {
        let expanded = self.dns.expand(declared);
        let (telemetry, zone) = (current.telemetry.clone(), current.zone.clone());
        let mut next = Snapshot::build_inner(&expanded, Some(current), telemetry, zone, certs)?;
        if let std::borrow::Cow::Owned(_) = expanded {
            next.routing = Arc::new(declared.clone());
        }
        Ok(next)
    }

    /// The current snapshot as an owned `Arc`, for holders that keep it a while.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The current snapshot, borrowed: no reference-count traffic on the shared snapshot, so worker
    /// threads do not contend on it. For the request path, which drops it before its first await.
    pub(crate) fn guard(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Builds a snapshot of `routing` on top of the current one and stores it, in one swap.
    pub fn apply(&self, routing: &Routing) -> Result<Arc<Snapshot>, BuildError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let next = Arc::new(self.expanded(routing, &self.load(), None)?);
        self.current.store(next.clone());
        Ok(next)
    }

    /// Builds `routing` as [`Tables::apply`] would (routes, clusters, upstream TLS, certificates) and
    /// throws the result away: the dry run of a push. Nothing in place is touched: no endpoint state
    /// is shared with the throwaway build and no metric is registered for it.
    pub(crate) fn check(&self, routing: &Routing) -> Result<(), BuildError> {
        let current = self.load();
        let certs =
            (current.routing.certificates == routing.certificates).then(|| current.certs.clone());
        Snapshot::build_inner(routing, None, None, current.zone.clone(), certs).map(drop)
    }

    /// Rebuilds the current snapshot with its certificate files read again (they changed on disk).
    /// A bad certificate keeps the current snapshot.
    pub fn reload_certificates(&self) -> Result<Arc<Snapshot>, BuildError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.load();
        let certs =
            Arc::new(CertTable::load(&current.routing.certificates).map_err(BuildError::Tls)?);
        let next = Arc::new(self.expanded(&current.routing, &current, Some(certs))?);
        self.current.store(next.clone());
        Ok(next)
    }
}

/// Why a routing could not become a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The routes cannot be compiled.
    #[error(transparent)]
    Router(#[from] RouterError),
    /// Certificates or TLS settings that cannot be used, each with its path.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Tls(Vec<crate::error::SettingError>),
}

impl BuildError {
    /// One line per problem.
    pub fn lines(&self) -> Vec<String> {
        match self {
            BuildError::Router(e) => vec![e.to_string()],
            BuildError::Tls(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }
}

/// Everything a request needs to be routed, immutable once built.
#[derive(Debug)]
pub struct Snapshot {
    /// Route lookup.
    pub router: Router,
    /// Clusters, indexed by [`crate::tables::router::Route::cluster`].
    pub clusters: Vec<Cluster>,
    /// Content hash of the routing document this snapshot was built from.
    pub hash: ContentHash,
    /// Counts the snapshots built by this process, starting at 1.
    pub generation: u64,
    /// Request metrics of each route, by [`crate::tables::router::Route::index`]: one set per
    /// cluster the route sends to (in the order of its weighted clusters), one for a route that
    /// answers itself.
    pub(crate) route_metrics: Vec<Box<[Arc<RouteMetrics>]>>,
    /// Request mirroring of each route that has it, by [`crate::tables::router::Route::index`].
    pub(crate) mirrors: Vec<Option<MirrorState>>,
    /// Rate limits of the routes and clusters, with their buckets.
    pub(crate) limits: crate::limits::set::LimitSet,
    /// Where the metrics are registered (`None`: not recorded, as in unit tests).
    pub(crate) telemetry: Option<Arc<Telemetry>>,
    /// The node's zone, for zone-aware clusters.
    pub(crate) zone: Option<Arc<str>>,
    /// The routing this snapshot was built from (for the admin API; never read on the request path).
    pub(crate) routing: Arc<Routing>,
    /// Server certificates by SNI, for TLS listeners.
    pub(crate) certs: Arc<CertTable>,
}

impl Snapshot {
    /// Builds a snapshot of `routing`, carrying over endpoint state (and the metrics registry) from
    /// `previous`.
    pub fn build(routing: &Routing, previous: Option<&Snapshot>) -> Result<Snapshot, BuildError> {
        let telemetry = previous.and_then(|p| p.telemetry.clone());
        let zone = previous.and_then(|p| p.zone.clone());
        Snapshot::build_with(routing, previous, telemetry, zone)
    }

    /// [`Snapshot::build`] recording request metrics into `telemetry`.
    pub(crate) fn build_with(
        routing: &Routing,
        previous: Option<&Snapshot>,
        telemetry: Option<Arc<Telemetry>>,
        zone: Option<Arc<str>>,
    ) -> Result<Snapshot, BuildError> {
        Snapshot::build_inner(routing, previous, telemetry, zone, None)
    }

    /// The build; `certs` is a freshly loaded certificate table, else the previous snapshot's is kept
    /// when the routing names the same certificates, or they are loaded.
    fn build_inner(
        routing: &Routing,
        previous: Option<&Snapshot>,
        telemetry: Option<Arc<Telemetry>>,
        zone: Option<Arc<str>>,
        certs: Option<Arc<CertTable>>,
    ) -> Result<Snapshot, BuildError> {
        let certs = match (certs, previous) {
            (Some(fresh), _) => fresh,
            (None, Some(p)) if p.routing.certificates == routing.certificates => p.certs.clone(),
            (None, _) => Arc::new(CertTable::load(&routing.certificates).map_err(BuildError::Tls)?),
        };
        let mut carried = Carried::default();
        if let Some(prev) = previous {
            for c in &prev.clusters {
                carried.clusters.insert(&c.name, c);
                for e in &c.endpoints {
                    carried
                        .upstreams
                        .insert((&c.name, e.upstream.address), &e.upstream);
                }
            }
        }
        let mut clusters = Vec::with_capacity(routing.clusters.len());
        let mut errors = Vec::new();
        for c in &routing.clusters {
            match Cluster::build(c, &carried, zone.as_deref()) {
                Ok(c) => clusters.push(c),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(BuildError::Tls(errors));
        }
        let mut kept_metrics: HashMap<(&str, &str), &Arc<RouteMetrics>> = HashMap::new();
        if let Some(prev) = previous {
            for (r, sets) in prev.routing.routes.iter().zip(&prev.route_metrics) {
                for (m, cluster) in sets.iter().zip(cluster_names(r, &prev.routing)) {
                    kept_metrics.insert((&r.name, cluster), m);
                }
            }
        }
        let route_metrics = routing
            .routes
            .iter()
            .map(|r| {
                cluster_names(r, routing)
                    .map(
                        |cluster| match kept_metrics.get(&(r.name.as_str(), cluster)) {
                            Some(&m) => m.clone(),
                            None => {
                                Arc::new(RouteMetrics::new(telemetry.as_ref(), &r.name, cluster))
                            }
                        },
                    )
                    .collect()
            })
            .collect();
        let mirrors = carry_mirrors(routing, previous, telemetry.as_deref());
        let limits = crate::limits::set::LimitSet::build(
            routing,
            previous.map(|p| &p.limits),
            telemetry.as_deref(),
        );
        Ok(Snapshot {
            router: Router::new(&routing.routes)?,
            clusters,
            hash: routing.hash,
            generation: previous.map_or(1, |p| p.generation + 1),
            route_metrics,
            mirrors,
            limits,
            telemetry,
            zone,
            routing: Arc::new(routing.clone()),
            certs,
        })
    }
}

/// Each route's mirroring state: the previous snapshot's when the route keeps the same mirror (so
/// that the copies in flight stay counted against `max_concurrent`), else new.
fn carry_mirrors(
    routing: &Routing,
    previous: Option<&Snapshot>,
    telemetry: Option<&Telemetry>,
) -> Vec<Option<MirrorState>> {
    let mut kept: HashMap<(&str, &str), &MirrorState> = HashMap::new();
    if let Some(prev) = previous {
        for (r, m) in prev.routing.routes.iter().zip(&prev.mirrors) {
            if let Some(m) = m {
                kept.insert((&r.name, &m.cluster), m);
            }
        }
    }
    routing
        .routes
        .iter()
        .map(|r| {
            let mirror = r.mirror?;
            let cluster = routing.clusters.get(mirror.cluster)?;
            Some(match kept.get(&(r.name.as_str(), cluster.name.as_str())) {
                Some(&m) => MirrorState::carried(m, mirror),
                None => MirrorState::new(mirror, &r.name, &cluster.name, telemetry),
            })
        })
        .collect()
}

/// The names of the clusters `route` sends to, in its order; `""` for a route that answers itself.
fn cluster_names<'r>(
    route: &'r edgeplane_config::model::Route,
    routing: &'r Routing,
) -> impl Iterator<Item = &'r str> {
    let names = route
        .clusters()
        .map(|i| routing.clusters.get(i).map_or("", |c| c.name.as_str()));
    let own = route.answer.is_some().then_some("");
    names.chain(own)
}

#[cfg(test)]
mod tests;
