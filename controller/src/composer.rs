//! The composer sits between the controller's inputs and the proxy's tables. It holds the routing
//! document in place and the [`Membership`] laid over it; it is itself a [`RoutingSink`], so config
//! pushes go through it unchanged. Heartbeats for known endpoints are written in place on the live
//! endpoint (atomics, no rebuild); joins, removals and scaling events mark the tables dirty, and one
//! rebuild takes them in after the [`Debounce`] period. The clocks (expiry, removal, drains) advance in
//! [`Composer::run`], which wakes every [`TICK`] and at each debounce deadline, and which also reads
//! the node's link to NATS: while it is down, and for a grace period after, nothing expires.

use crate::debounce::Debounce;
use crate::membership::{Frozen, HeartbeatOutcome, LiveUpdate, Membership, ScaleOutcome};
use crate::{LiveEndpoint, RoutingSink};
use edgeplane_bus::wire::{Heartbeat, ScaleEvent};
use edgeplane_config::{ContentHash, Routing};
use foldhash::{HashMap, HashMapExt, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// How often the clocks advance: an instance is marked down at most this long after its ttl.
pub const TICK: Duration = Duration::from_millis(100);

/// How long expiry stays suspended after the node reconnects to NATS, unless configured
/// (`[node.nats] membership_grace`).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// Counters of the membership inputs.
#[derive(Debug, Default)]
pub struct MembershipStats {
    /// Heartbeats taken in (decoded and valid).
    pub heartbeats: AtomicU64,
    /// Heartbeats written in place on a known endpoint.
    pub heartbeats_in_place: AtomicU64,
    /// Heartbeats dropped as stale (older or repeated sequence).
    pub heartbeats_stale: AtomicU64,
    /// Heartbeats ignored: unknown cluster, unregistered instance, or an address scaled out.
    pub heartbeats_ignored: AtomicU64,
    /// Heartbeats that changed the membership (joins, moves, new weights).
    pub joins: AtomicU64,
    /// Endpoints marked down because their heartbeats stopped.
    pub expired: AtomicU64,
    /// Times a cluster's heartbeats all stopped at once and its instances were held (a bus fault
    /// assumed, not a mass death).
    pub silent_clusters: AtomicU64,
    /// Scaling events applied.
    pub scale_events: AtomicU64,
    /// Scaling events ignored because their id was seen before.
    pub scale_duplicates: AtomicU64,
    /// Rebuilds for membership changes (config pushes not counted).
    pub rebuilds: AtomicU64,
    /// Rebuilds that failed (the previous tables kept serving).
    pub rebuild_failures: AtomicU64,
}

/// Live endpoints of the tables in place, by cluster.
type LiveMap = HashMap<Arc<str>, ClusterLive>;

/// One cluster's live endpoints, in table order, with an index by address.
struct ClusterLive {
    endpoints: Vec<Arc<dyn LiveEndpoint>>,
    index: HashMap<SocketAddr, usize>,
}

impl ClusterLive {
    fn new(list: Vec<(SocketAddr, Arc<dyn LiveEndpoint>)>) -> ClusterLive {
        let mut index = HashMap::with_capacity(list.len());
        let mut endpoints = Vec::with_capacity(list.len());
        for (i, (address, endpoint)) in list.into_iter().enumerate() {
            index.insert(address, i);
            endpoints.push(endpoint);
        }
        ClusterLive { endpoints, index }
    }

    fn get(&self, address: &SocketAddr) -> Option<&Arc<dyn LiveEndpoint>> {
        self.index.get(address).and_then(|&i| self.endpoints.get(i))
    }
}

struct Inner {
    base: Routing,
    members: Membership,
    debounce: Debounce,
    live: LiveMap,
    /// Clusters whose instances are held at the last tick (to log each change once).
    holding: HashSet<String>,
}

/// Routing document plus membership, kept in the proxy's tables.
pub struct Composer {
    sink: Arc<dyn RoutingSink>,
    inner: Mutex<Inner>,
    wake: Notify,
    routed: watch::Sender<Vec<String>>,
    grace: Duration,
    /// Counters.
    pub stats: MembershipStats,
}

impl std::fmt::Debug for Composer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Composer").finish_non_exhaustive()
    }
}

impl Composer {
    /// A composer over `sink`, whose tables currently serve `base`; expiry stays suspended for
    /// `grace` after the node reconnects to NATS.
    pub fn new(sink: Arc<dyn RoutingSink>, base: Routing, grace: Duration) -> Arc<Composer> {
        let mut members = Membership::default();
        members.set_base(&base);
        let (routed, _) = watch::channel(routed_clusters(&base));
        let composer = Arc::new(Composer {
            inner: Mutex::new(Inner {
                base,
                members,
                debounce: Debounce::default(),
                live: HashMap::new(),
                holding: HashSet::default(),
            }),
            sink,
            wake: Notify::new(),
            routed,
            grace,
            stats: MembershipStats::default(),
        });
        composer.refresh(&mut composer.lock());
        composer
    }

    /// Instances tracked from heartbeats.
    pub fn instances(&self) -> usize {
        self.lock().members.instances()
    }

    /// Why expiry and removal are suspended now (the node is disconnected from NATS, or reconnected
    /// within the grace period), if they are.
    pub fn frozen(&self) -> Option<Frozen> {
        self.lock().members.frozen(Instant::now())
    }

    /// Instances held with their last state because their cluster's heartbeats all stopped, or
    /// because membership is frozen.
    pub fn held(&self) -> usize {
        self.lock().members.held()
    }

    /// Heartbeats known instances missed (gaps in their sequence numbers).
    pub fn missed_heartbeats(&self) -> u64 {
        self.lock().members.missed()
    }

    /// Tells the state of the node's link to NATS (idempotent; changes are logged).
    pub fn link(&self, up: bool) {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.members.link(up, now, self.grace) {
            if up {
                tracing::info!(
                    grace = ?self.grace,
                    "NATS link up; heartbeat expiry resumes after the grace period"
                );
            } else {
                tracing::warn!(
                    "NATS link down; membership frozen (nothing expires, nothing is removed)"
                );
            }
            self.wake.notify_one();
        }
    }

    /// The clusters the routes use (those whose heartbeats matter), updated on every config change.
    pub fn routed(&self) -> watch::Receiver<Vec<String>> {
        self.routed.subscribe()
    }

    /// Takes in one heartbeat of `cluster`.
    pub fn heartbeat(&self, cluster: &str, hb: &Heartbeat) {
        let Ok(address) = hb.address.parse::<SocketAddr>() else {
            self.stats.heartbeats_ignored.fetch_add(1, Relaxed);
            return;
        };
        self.stats.heartbeats.fetch_add(1, Relaxed);
        let now = Instant::now();
        let mut inner = self.lock();
        let counter = match inner.members.heartbeat(cluster, hb, address, now) {
            HeartbeatOutcome::Updated(u) => {
                write(&inner.live, cluster, &u);
                &self.stats.heartbeats_in_place
            }
            HeartbeatOutcome::Changed => {
                inner.debounce.touch(now);
                self.wake.notify_one();
                &self.stats.joins
            }
            HeartbeatOutcome::Stale => &self.stats.heartbeats_stale,
            HeartbeatOutcome::UnknownCluster
            | HeartbeatOutcome::NotRegistered
            | HeartbeatOutcome::Excluded
            | HeartbeatOutcome::Leaving => &self.stats.heartbeats_ignored,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Takes in one scaling event of `cluster`, published `age` ago.
    pub fn scale(&self, cluster: &str, event: &ScaleEvent, age: Duration) {
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.members.scale(cluster, event, age, now) {
            ScaleOutcome::Applied => {
                self.stats.scale_events.fetch_add(1, Relaxed);
                tracing::info!(%cluster, id = %event.id, action = ?event.action, "scaling event");
                inner.debounce.touch(now);
                self.wake.notify_one();
            }
            ScaleOutcome::Duplicate => {
                self.stats.scale_duplicates.fetch_add(1, Relaxed);
            }
        }
    }

    /// Advances the clocks and rebuilds if a rebuild is due. Returns when to call again.
    pub fn tick(&self) -> Instant {
        let now = Instant::now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let live = &inner.live;
        let in_flight = |cluster: &str, address: SocketAddr| {
            live.get(cluster)
                .and_then(|l| l.get(&address))
                .map_or(0, |e| e.in_flight())
        };
        let outcome = inner.members.tick(now, &in_flight);
        self.stats
            .expired
            .fetch_add(outcome.updates.len() as u64, Relaxed);
        for (cluster, u) in &outcome.updates {
            tracing::warn!(%cluster, address = %u.address, "heartbeats stopped; endpoint down");
            write(&inner.live, cluster, u);
        }
        self.log_holds(&mut inner.holding, &outcome.held, inner.members.frozen(now));
        if outcome.changed {
            inner.debounce.touch(now);
        }
        if inner.debounce.due(now) {
            self.rebuild(inner);
        }
        let next = now + TICK;
        inner.debounce.deadline().map_or(next, |d| d.min(next))
    }

    /// Logs (once per change) the clusters whose instances are held, and counts those newly held by
    /// their own silence (not by a frozen link).
    fn log_holds(
        &self,
        holding: &mut HashSet<String>,
        held: &[(String, usize)],
        frozen: Option<Frozen>,
    ) {
        holding.retain(|c| {
            let keep = held.iter().any(|(h, _)| h == c);
            if !keep {
                tracing::info!(cluster = %c, "heartbeats flowing again; no instance held");
            }
            keep
        });
        for (cluster, n) in held {
            if holding.insert(cluster.clone()) {
                match frozen {
                    Some(f) => {
                        tracing::warn!(%cluster, held = n, reason = f.reason(), "heartbeats overdue while membership is frozen; keeping the instances")
                    }
                    None => {
                        self.stats.silent_clusters.fetch_add(1, Relaxed);
                        tracing::warn!(%cluster, held = n, "every heartbeat of the cluster stopped at once; a bus fault is assumed, keeping the instances with their last state");
                    }
                }
            }
        }
    }

    /// Runs the clocks until the task is dropped; `link_up` tells whether the node is connected to
    /// NATS now (read at every tick).
    pub async fn run(self: Arc<Self>, link_up: impl Fn() -> bool + Send + 'static) {
        loop {
            self.link(link_up());
            let at = self.tick();
            tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    fn rebuild(&self, inner: &mut Inner) {
        inner.debounce.clear();
        let merged = inner.members.compose(&inner.base);
        match self.sink.apply(&merged) {
            Ok(_) => {
                self.stats.rebuilds.fetch_add(1, Relaxed);
                self.refresh(inner);
                // One line per coalesced rebuild (not per join), with each cluster's size.
                let sizes: Vec<String> = inner
                    .live
                    .iter()
                    .map(|(c, l)| format!("{c}={}", l.endpoints.len()))
                    .collect();
                tracing::info!(
                    instances = inner.members.instances(),
                    endpoints = %sizes.join(","),
                    "membership change applied"
                );
            }
            Err(e) => {
                self.stats.rebuild_failures.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "membership change could not be applied; keeping the current tables");
            }
        }
    }

    /// After a rebuild: learns the live endpoints and writes every endpoint's live state (what the
    /// membership says, else healthy and not draining: an endpoint carried over a rebuild may hold the
    /// state of a drain that an `add` has since ended).
    fn refresh(&self, inner: &mut Inner) {
        let live: LiveMap = self
            .sink
            .endpoints()
            .into_iter()
            .map(|(cluster, endpoints)| (cluster, ClusterLive::new(endpoints)))
            .collect();
        let mut done: HashMap<&str, Vec<bool>> = live
            .iter()
            .map(|(c, l)| (&**c, vec![false; l.endpoints.len()]))
            .collect();
        for (cluster, u) in inner.members.live_states() {
            let (Some(l), Some(flags)) = (live.get(cluster), done.get_mut(cluster)) else {
                continue;
            };
            let Some(&i) = l.index.get(&u.address) else {
                continue;
            };
            let (endpoint, flag) = (&l.endpoints[i], &mut flags[i]);
            if *flag {
                // Two sources for one address (an instance and a scaling drain): draining wins.
                if u.draining {
                    endpoint.set_draining(true);
                }
            } else {
                *flag = true;
                apply(endpoint.as_ref(), &u);
            }
        }
        for (cluster, flags) in &done {
            let Some(l) = live.get(*cluster) else {
                continue;
            };
            for (endpoint, _) in l.endpoints.iter().zip(flags).filter(|(_, d)| !**d) {
                endpoint.set_health(100);
                endpoint.set_draining(false);
            }
        }
        drop(done);
        inner.live = live;
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; should it ever, keep following the fleet with the
        // state as it is rather than stop.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RoutingSink for Composer {
    fn apply(&self, routing: &Routing) -> Result<ContentHash, crate::Rejection> {
        let mut inner = self.lock();
        inner.members.set_base(routing);
        let merged = inner.members.compose(routing);
        match self.sink.apply(&merged) {
            Ok(hash) => {
                inner.base = routing.clone();
                inner.debounce.clear();
                self.refresh(&mut inner);
                let routed = routed_clusters(routing);
                self.routed.send_if_modified(|r| {
                    let changed = *r != routed;
                    *r = routed;
                    changed
                });
                Ok(hash)
            }
            Err(e) => {
                let base = inner.base.clone();
                inner.members.set_base(&base);
                Err(e)
            }
        }
    }

    fn current_hash(&self) -> ContentHash {
        self.sink.current_hash()
    }

    fn connections(&self) -> u64 {
        self.sink.connections()
    }

    fn requests(&self) -> u64 {
        self.sink.requests()
    }

    fn traffic(&self) -> crate::TrafficCounts {
        self.sink.traffic()
    }

    fn check(&self, routing: &Routing) -> Result<(), crate::Rejection> {
        // Membership only adds endpoints whose addresses were checked when they joined, so the
        // document alone decides.
        self.sink.check(routing)
    }

    fn endpoints(&self) -> Vec<crate::ClusterEndpoints> {
        self.sink.endpoints()
    }
}

fn write(live: &LiveMap, cluster: &str, u: &LiveUpdate) {
    if let Some(e) = live.get(cluster).and_then(|l| l.get(&u.address)) {
        apply(e.as_ref(), u);
    }
}

fn apply(endpoint: &dyn LiveEndpoint, u: &LiveUpdate) {
    endpoint.set_health(u.health);
    endpoint.set_draining(u.draining);
    endpoint.set_reported(u.in_flight, u.cpu, u.latency_ms);
}

/// Names of the clusters some route sends to (mirrors included), sorted.
pub fn routed_clusters(routing: &Routing) -> Vec<String> {
    let mut names: Vec<String> = routing
        .routes
        .iter()
        .flat_map(|r| r.clusters().chain(r.mirror.map(|m| m.cluster)))
        .filter_map(|i| routing.clusters.get(i))
        .map(|c| c.name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests;
