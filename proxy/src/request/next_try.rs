//! After a failed try: what the failure costs its endpoint (outlier detection judges it at once),
//! and where the request goes next. A request that reached an upstream is retried within the retry
//! budget, after a backoff; one that was never sent goes at once to an endpoint not tried yet, without
//! spending the budget.

use crate::error::ConnectCause;
use crate::request::retry;
use crate::request::shared::Shared;
use crate::tables::cluster::Cluster;
use crate::upstream::cluster_state::RetrySlot;
use crate::upstream::Upstream;
use http::HeaderValue;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where a request's cluster is, to find it again in a later snapshot.
pub(crate) struct Locator {
    /// The snapshot generation the request was routed in.
    pub(crate) generation: u64,
    /// The cluster's index in that snapshot.
    pub(crate) index: usize,
    /// Hash of the cluster's name.
    pub(crate) name_hash: u64,
}

impl Locator {
    /// The request's cluster in `snapshot`, if it still has it.
    pub(crate) fn find<'a>(&self, snapshot: &'a crate::tables::Snapshot) -> Option<&'a Cluster> {
        match snapshot.clusters.get(self.index) {
            Some(c) if snapshot.generation == self.generation => Some(c),
            _ => snapshot
                .clusters
                .iter()
                .find(|c| c.name_hash == self.name_hash),
        }
    }
}

/// Charges a failed try to its endpoint and lets outlier detection judge it at once (`connect`: the
/// cause and detail if connecting failed). A connect that failed for lack of this node's own
/// resources, or was not tried because the endpoint was already out, is not the endpoint's doing and
/// is not charged; nor is a refused connect to an endpoint already taken out for the same reason.
pub(crate) fn charge_failure(
    shared: &Shared,
    locator: &Locator,
    upstream: &Upstream,
    connect: Option<(ConnectCause, &str)>,
) {
    let snapshot = shared.tables.guard();
    let cluster = locator.find(&snapshot);
    match connect {
        Some((ConnectCause::Withdrawn, _)) => {}
        // Connects that were under way when another request's refused connect took the endpoint
        // out (requests in flight when it died): the evidence is already acted upon.
        Some((cause, _)) if cause.ejects() && upstream.ejected() => {}
        Some((ConnectCause::Local, detail)) => {
            let name = cluster.map_or("", |c| &*c.name);
            upstream
                .cluster
                .outliers
                .local_error(name, upstream.address, detail);
        }
        _ => {
            upstream.record_failure();
            if let Some(c) = cluster {
                crate::upstream::outlier::judge(c, upstream, connect.map(|(cause, _)| cause));
            }
        }
    }
}

/// Which retry is wanted: its number (1-based), and whether it spends the retry budget (a request
/// that reached an upstream) or not (nothing was sent: bounded by the endpoints not tried yet).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retrying {
    /// The retry's number, 1-based.
    pub(crate) tries: u32,
    /// Whether it spends the retry budget.
    pub(crate) budgeted: bool,
}

/// What a retry needs: its endpoint, its place in the retry budget, its backoff.
pub(crate) struct NextTry {
    /// The endpoint.
    pub(crate) upstream: Arc<Upstream>,
    /// Its place in the retry budget, if it spends it.
    pub(crate) slot: Option<RetrySlot>,
    /// The wait before it.
    pub(crate) backoff: std::time::Duration,
    /// The affinity header or cookie naming the new endpoint, if the cluster has affinity.
    pub(crate) affinity: Option<(http::HeaderName, HeaderValue)>,
}

/// Picks the endpoint for the retry from the current snapshot, avoiding those tried. A budgeted retry
/// needs a place in the retry budget and waits a backoff; one of a request never sent goes at once
/// to an endpoint not tried yet, if there is one.
pub(crate) fn next_try(
    shared: &Shared,
    locator: &Locator,
    key: Option<u64>,
    token: Option<u64>,
    tried: &[SocketAddr],
    policy: &edgeplane_config::model::Retry,
    next: Retrying,
) -> Option<NextTry> {
    let snapshot = shared.tables.guard();
    let cluster = locator.find(&snapshot)?;
    let slot = if next.budgeted {
        let in_flight: u64 = cluster
            .endpoints
            .iter()
            .map(|e| u64::from(e.upstream.in_flight()))
            .sum();
        let slot = cluster
            .state
            .try_retry(cluster.limits.max_retries, retry::budget(policy, in_flight));
        if slot.is_none() {
            tracing::debug!(cluster = %cluster.name, "retry budget spent");
            return None;
        }
        slot
    } else {
        None
    };
    let e = cluster.pick_avoiding(key, tried)?;
    if !next.budgeted && tried.contains(&e.upstream.address) {
        return None;
    }
    Some(NextTry {
        upstream: e.upstream.clone(),
        slot,
        backoff: if next.budgeted {
            retry::backoff(policy, next.tries, cluster.draw())
        } else {
            std::time::Duration::ZERO
        },
        affinity: cluster
            .affinity
            .as_ref()
            .and_then(|a| a.response_header(token, e.upstream.address)),
    })
}
