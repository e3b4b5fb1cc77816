//! The routing tables: one immutable [`Snapshot`] behind one `ArcSwap`, written by one writer at a
//! time.
//!
//! Routes, clusters and endpoints that belong together live in one snapshot, so one `store` swaps them
//! all. A request does one `load` and works on what it got, whatever is stored meanwhile. Building a
//! snapshot reuses the [`Upstream`] of every endpoint whose identity (cluster name, address) is
//! unchanged, so in-flight counts, latency and idle connections survive reloads.

use crate::certs::CertTable;
use crate::cluster::Carried;
pub(crate) use crate::cluster::{Cluster, Endpoint};
use crate::router::{Router, RouterError};
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
}

impl Tables {
    /// Tables holding a first snapshot.
    pub fn new(first: Snapshot) -> Tables {
        Tables {
            current: ArcSwap::from_pointee(first),
            writer: std::sync::Mutex::new(()),
        }
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
        let next = Arc::new(Snapshot::build(routing, Some(&self.load()))?);
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
        let next = Arc::new(Snapshot::build_inner(
            &current.routing,
            Some(&current),
            current.telemetry.clone(),
            current.zone.clone(),
            Some(certs),
        )?);
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
    /// Clusters, indexed by [`crate::router::Route::cluster`].
    pub clusters: Vec<Cluster>,
    /// Content hash of the routing document this snapshot was built from.
    pub hash: ContentHash,
    /// Counts the snapshots built by this process, starting at 1.
    pub generation: u64,
    /// Request metrics of each route, by [`crate::router::Route::index`].
    pub(crate) route_metrics: Vec<Arc<RouteMetrics>>,
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
            certs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_reload_never_undoes_an_applied_routing() {
        let tables = Arc::new(Tables::new(
            Snapshot::build(&routing(&["127.0.0.1:1"], "round_robin"), None).unwrap(),
        ));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reloader = {
            let (tables, done) = (tables.clone(), done.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    tables.reload_certificates().unwrap();
                    n += 1;
                }
                n
            })
        };
        for port in 2..300u16 {
            let applied = tables
                .apply(&routing(&[&format!("127.0.0.1:{port}")], "round_robin"))
                .unwrap();
            // A reload that loaded the snapshot before this apply and stored after it would show
            // the previous routing here.
            for _ in 0..100 {
                assert_eq!(tables.load().hash, applied.hash, "routing {port} undone");
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reloader.join().unwrap() > 0);
    }

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
    fn balancers_are_reused_while_their_endpoints_stay_the_same() {
        let tables = Tables::new(
            Snapshot::build(&routing(&["127.0.0.1:1", "127.0.0.1:2"], "maglev"), None).unwrap(),
        );
        let first = tables.load();
        let same = tables
            .apply(&routing(&["127.0.0.1:1", "127.0.0.1:2"], "maglev"))
            .unwrap();
        assert!(Arc::ptr_eq(
            &first.clusters[0].balancer,
            &same.clusters[0].balancer
        ));
        let other_policy = tables
            .apply(&routing(&["127.0.0.1:1", "127.0.0.1:2"], "ring_hash"))
            .unwrap();
        assert!(!Arc::ptr_eq(
            &same.clusters[0].balancer,
            &other_policy.clusters[0].balancer
        ));
        let changed = tables
            .apply(&routing(&["127.0.0.1:1", "127.0.0.1:3"], "ring_hash"))
            .unwrap();
        assert!(!Arc::ptr_eq(
            &other_policy.clusters[0].balancer,
            &changed.clusters[0].balancer
        ));
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
