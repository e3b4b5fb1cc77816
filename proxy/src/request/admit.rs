//! Admission of a request to its cluster: the circuit breaker's `max_requests`, and room for a
//! connection at its `max_connections`.

use crate::error::ProxyError;
use crate::tables::cluster::Cluster;
use crate::tables::endpoint::Endpoint;
use crate::upstream::InFlight;

/// Admits the request to the cluster (its `max_requests`) and counts it in flight on the endpoint;
/// at the cluster's connection limit, makes room for a connection to the endpoint.
#[inline(always)]
pub(crate) fn admit(cluster: &Cluster, endpoint: &Endpoint) -> Result<InFlight, ProxyError> {
    let admission = match cluster.limits.max_requests {
        Some(max) => Some(
            cluster
                .state
                .try_enter(max)
                .ok_or_else(|| ProxyError::CircuitOpen("max_requests"))?,
        ),
        None => None,
    };
    if cluster.limits.max_connections.is_some() {
        make_room(cluster, endpoint);
    }
    Ok(endpoint.upstream.start_request().holding(admission))
}

/// At the cluster's connection limit with no idle connection to this endpoint: closes the coldest
/// idle connection of another endpoint, so that its place goes to this request.
fn make_room(cluster: &Cluster, endpoint: &Endpoint) {
    let (Some(max), b) = (cluster.limits.max_connections, &cluster.state) else {
        return;
    };
    if b.connections() < max || endpoint.upstream.pool.idle_count() > 0 {
        return;
    }
    for e in &cluster.endpoints {
        if e.upstream.pool.evict_one() {
            return;
        }
    }
}
