//! The request path: route, pick, rewrite, the attempt sequence, respond.
//!
//! One `load()` of the snapshot per request; no lock except the endpoint pool's short push/pop; no
//! allocation for routing. Nothing here panics: every failure becomes a [`ProxyError`] response.

use crate::error::ProxyError;
use crate::request::access_log::AccessEntry;
use crate::request::attempts::{Attempts, Routed};
use crate::request::body::ProxyBody;
use crate::request::headers;
use crate::request::next_try::Locator;
use crate::request::respond::respond;
use crate::request::rewrite::rewrite_request;
use crate::request::send;
use crate::request::shared::{ConnInfo, Shared};
use crate::tables::cluster::Cluster;
use crate::tables::endpoint::Endpoint;
use crate::tables::router::{normalize_host, Route, MAX_HOST};
use crate::tables::Snapshot;
use crate::telemetry::RouteMetrics;
use crate::upstream::InFlight;
use http::{Request, Response};
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Instant;

/// Proxies one request; errors become the proxy's own responses.
pub(crate) async fn handle(
    shared: &Shared,
    conn: &ConnInfo,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let received = Instant::now();
    let n = shared
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let access = shared
        .access_log
        .then(|| AccessEntry::of(&req, shared.id_seed, n));
    let mut metrics = None;
    let result = forward(shared, conn, req, n, &mut metrics).await;
    let metrics = metrics.as_deref().unwrap_or(&shared.unrouted);
    let resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(error = %e, status = e.status().as_u16(), "request failed at the proxy");
            metrics.error(e.code_index());
            crate::request::body::error_response(e)
        }
    };
    let elapsed = received.elapsed();
    metrics.answered(resp.status().as_u16(), elapsed);
    if let Some(a) = access {
        a.log(conn, metrics, resp.status(), elapsed);
    }
    resp
}

/// Routes and proxies request number `n`; `metrics` is set to the matched route's metrics.
async fn forward(
    shared: &Shared,
    conn: &ConnInfo,
    mut req: Request<Incoming>,
    n: u64,
    metrics: &mut Option<Arc<RouteMetrics>>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let snapshot = shared.tables.guard();
    let route = find_route(&snapshot, &req)?;
    *metrics = snapshot.route_metrics.get(route.index()).cloned();
    let cluster = snapshot
        .clusters
        .get(route.cluster)
        .ok_or(ProxyError::NoRoute)?;
    let locator = Locator {
        generation: snapshot.generation,
        index: route.cluster,
        name_hash: cluster.name_hash,
    };
    let (endpoint, routed) = pick(cluster, &req, conn, locator)?;
    tracing::trace!(route = %route.name, cluster = %cluster.name, upstream = %endpoint.upstream.address, "routed");
    let host_rewrite = cluster.host_rewrite.as_ref();
    let (mut added, upgrade) = rewrite_request(shared, conn, &mut req, n, route, host_rewrite)?;
    let downstream_upgrade = upgrade
        .is_some()
        .then(|| (hyper::upgrade::on(&mut req), conn.hold.clone()));
    let in_flight = admit(cluster, endpoint)?;
    let (timeouts, policy, limits) = (cluster.timeouts, cluster.retry, cluster.limits);
    let tls = cluster.tls.clone();
    // The snapshot is not needed past this point: release it before the first await.
    drop(snapshot);

    let settings = send::Settings {
        timeouts: &timeouts,
        limits: &limits,
        tls: tls.as_deref(),
    };
    let upgrading = upgrade.is_some();
    let (attempts, req) =
        Attempts::prepare(shared, routed, policy, &timeouts, req, upgrading).await?;
    let settled = attempts
        .run(req, in_flight, &settings, &mut added, metrics.as_deref())
        .await?;
    respond(settled, upgrade.as_ref().zip(downstream_upgrade))
}

/// The route matching the request's host, path, method and headers.
fn find_route<'s>(
    snapshot: &'s Snapshot,
    req: &Request<Incoming>,
) -> Result<&'s Route, ProxyError> {
    let raw_host = headers::request_host(req.uri(), req.headers(), req.version())
        .map_err(ProxyError::BadRequest)?;
    let mut buf = [0u8; MAX_HOST];
    let host = normalize_host(raw_host, &mut buf);
    snapshot
        .router
        .find(host, req.uri().path(), req.method(), req.headers())
        .ok_or(ProxyError::NoRoute)
}

/// The cluster's endpoint for the request (by its hash key and affinity token, if the cluster uses
/// them), and what retries need to know of the routing.
fn pick<'s>(
    cluster: &'s Cluster,
    req: &Request<Incoming>,
    conn: &ConnInfo,
    locator: Locator,
) -> Result<(&'s Endpoint, Routed), ProxyError> {
    let key = if cluster.keyed() {
        crate::tables::balancer::hashing::request_key(
            &cluster.hash_on,
            req.headers(),
            req.uri().path(),
            conn.client_ip.as_bytes(),
        )
    } else {
        None
    };
    let affinity = cluster.affinity.as_ref();
    let token = affinity.and_then(|a| a.requested(req.headers()));
    let endpoint = cluster
        .pick_affine(token, key)
        .ok_or_else(|| ProxyError::NoEndpoint(cluster.name.clone()))?;
    let routed = Routed {
        locator,
        key,
        token,
        affinity: affinity.and_then(|a| a.response_header(token, endpoint.upstream.address)),
        has_affinity: affinity.is_some(),
    };
    Ok((endpoint, routed))
}

/// Admits the request to the cluster (its `max_requests`) and counts it in flight on the endpoint;
/// at the cluster's connection limit, makes room for a connection to the endpoint.
fn admit(cluster: &Cluster, endpoint: &Endpoint) -> Result<InFlight, ProxyError> {
    let admission = match cluster.limits.max_requests {
        Some(max) => Some(
            cluster
                .state
                .try_enter(max)
                .ok_or(ProxyError::CircuitOpen("max_requests"))?,
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
