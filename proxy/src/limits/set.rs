//! The limiters of one snapshot: each route's and each cluster's, built from the routing and
//! carrying the previous snapshot's buckets for the limits that stay.

use super::{Limiter, Owner};
use crate::telemetry::Telemetry;
use edgeplane_config::model::Routing;
use foldhash::{HashMap, HashMapExt};

/// Every limiter of a snapshot.
#[derive(Debug, Default)]
pub(crate) struct LimitSet {
    /// By route index; empty for a route without limits.
    routes: Vec<Box<[Limiter]>>,
    /// By cluster index.
    clusters: Vec<Box<[Limiter]>>,
}

impl LimitSet {
    /// The limiters of `routing`, keeping `previous`'s buckets where a limit stays the same.
    pub(crate) fn build(
        routing: &Routing,
        previous: Option<&LimitSet>,
        telemetry: Option<&Telemetry>,
    ) -> LimitSet {
        let mut kept: HashMap<(Owner, &str, &str), &Limiter> = HashMap::new();
        for l in previous.into_iter().flat_map(LimitSet::all) {
            kept.insert((l.owner, &l.owner_name, &l.spec.name), l);
        }
        let build = |owner: Owner, name: &str, specs: &[edgeplane_config::model::RateLimit]| {
            specs
                .iter()
                .map(|s| {
                    let before = kept.get(&(owner, name, s.name.as_str())).copied();
                    Limiter::new(s, owner, name, before, telemetry)
                })
                .collect::<Box<[Limiter]>>()
        };
        LimitSet {
            routes: routing
                .routes
                .iter()
                .map(|r| build(Owner::Route, &r.name, &r.rate_limits))
                .collect(),
            clusters: routing
                .clusters
                .iter()
                .map(|c| build(Owner::Cluster, &c.name, &c.rate_limits))
                .collect(),
        }
    }

    /// The limiters of route `index`.
    #[inline]
    pub(crate) fn route(&self, index: usize) -> &[Limiter] {
        self.routes.get(index).map_or(&[], |l| l)
    }

    /// The limiters of cluster `index`.
    #[inline]
    pub(crate) fn cluster(&self, index: usize) -> &[Limiter] {
        self.clusters.get(index).map_or(&[], |l| l)
    }

    /// Every limiter, routes' first.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Limiter> {
        self.routes
            .iter()
            .chain(&self.clusters)
            .flat_map(|l| l.iter())
    }

    /// The limiter `limit` of the route or cluster `name`.
    pub(crate) fn find(&self, owner: Owner, name: &str, limit: &str) -> Option<&Limiter> {
        self.all()
            .find(|l| l.owner == owner && &*l.owner_name == name && l.spec.name == limit)
    }
}
