//! The proxy's side of the controller's narrow interface (`RoutingSink`): routings applied to and
//! checked against the tables, with this node's own constraints, and the counters status replies
//! carry.

use crate::request::shared::Shared;
use crate::tables::Tables;
use edgeplane_controller::Rejection;
use std::sync::Arc;

/// The proxy's side of the controller's narrow interface.
pub(super) struct Sink {
    pub(super) tables: Arc<Tables>,
    pub(super) shared: Arc<Shared>,
    pub(super) open: Arc<std::sync::atomic::AtomicUsize>,
    /// The node's listeners (a routing must bring certificates for TLS ones).
    pub(super) listeners: Vec<edgeplane_config::model::Listener>,
    pub(super) traffic: Arc<crate::telemetry::traffic::TrafficTotals>,
}

impl Sink {
    /// What this node requires of any routing beyond its validation.
    fn local_constraints(&self, routing: &edgeplane_config::Routing) -> Result<(), Rejection> {
        let problems = routing.listener_problems(&self.listeners);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Rejection(
                problems.iter().map(ToString::to_string).collect(),
            ))
        }
    }
}

impl edgeplane_controller::RoutingSink for Sink {
    fn apply(
        &self,
        routing: &edgeplane_config::Routing,
    ) -> Result<edgeplane_config::ContentHash, Rejection> {
        self.local_constraints(routing)?;
        self.tables
            .apply(routing)
            .map(|s| s.hash)
            .map_err(|e| Rejection(e.lines()))
    }

    fn check(&self, routing: &edgeplane_config::Routing) -> Result<(), Rejection> {
        self.local_constraints(routing)?;
        self.tables.check(routing).map_err(|e| Rejection(e.lines()))
    }

    fn traffic(&self) -> edgeplane_controller::TrafficCounts {
        self.traffic.counts()
    }

    fn current_hash(&self) -> edgeplane_config::ContentHash {
        self.tables.guard().hash
    }

    fn connections(&self) -> u64 {
        self.open.load(std::sync::atomic::Ordering::Relaxed) as u64
    }

    fn requests(&self) -> u64 {
        self.shared
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn endpoints(&self) -> Vec<edgeplane_controller::ClusterEndpoints> {
        let snap = self.tables.guard();
        snap.clusters
            .iter()
            .map(|c| {
                let endpoints = c
                    .endpoints
                    .iter()
                    .map(|e| {
                        let live: Arc<dyn edgeplane_controller::LiveEndpoint> = e.upstream.clone();
                        (e.upstream.address, live)
                    })
                    .collect();
                (c.name.clone(), endpoints)
            })
            .collect()
    }
}
