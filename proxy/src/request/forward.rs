//! The request path: route, pick, rewrite, the attempt sequence, respond.
//!
//! One `load()` of the snapshot per request; no lock except the endpoint pool's short push/pop; no
//! allocation for routing. Nothing here panics: every failure becomes a [`ProxyError`] response.

use crate::downstream::body::ClientBody;
use crate::downstream::lifecycle::ConnHold;
use crate::error::ProxyError;
use crate::request::access_log::AccessEntry;
use crate::request::added_headers::AddedHeaders;
use crate::request::admit::admit;
use crate::request::answer::answer;
use crate::request::attempts::{Attempts, Prepared, Routed};
use crate::request::body::ProxyBody;
use crate::request::compress::{self, Compress};
use crate::request::ending::{finish, Served};
use crate::request::headers;
use crate::request::location::LocationRewrite;
use crate::request::mirror::{self, MirrorPlan};
use crate::request::next_try::Locator;
use crate::request::respond::respond;
use crate::request::rewrite::rewrite_request;
use crate::request::shared::{ConnInfo, Shared};
use crate::request::{retry, send};
use crate::tables::cluster::Cluster;
use crate::tables::endpoint::Endpoint;
use crate::tables::router::{normalize_host, HeaderOps, Route, MAX_HOST};
use crate::tables::split::Placement;
use crate::tables::Snapshot;
use crate::upstream::tls::TlsClient;
use crate::upstream::InFlight;
use edgeplane_config::model::{CircuitBreaker, ClusterTimeouts};
use http::{HeaderValue, Request, Response};
use http_body::Body as _;
use hyper::upgrade::OnUpgrade;
use std::sync::Arc;
use std::time::Instant;

/// Proxies one request; errors become the proxy's own responses.
pub(crate) async fn handle(
    shared: &Shared,
    conn: &ConnInfo,
    req: Request<ClientBody>,
) -> Response<ProxyBody> {
    let received = Instant::now();
    let n = shared
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Boxed: only a logging node pays for the entry, and the request's future stays small.
    let access = shared
        .access_log
        .as_ref()
        .map(|_| Box::new(AccessEntry::of(&req, shared, conn, n)));
    // gRPC runs over HTTP/2 only: an HTTP/1 request is never looked at.
    let grpc = req.version() == http::Version::HTTP_2 && crate::grpc::is_call(req.headers());
    let mut served = Served::new(received);
    let result = forward(shared, conn, req, n, &mut served).await;
    let elapsed = served.answered.map_or_else(
        || received.elapsed(),
        |at| at.saturating_duration_since(received),
    );
    finish(shared, served, result, access, grpc, elapsed)
}

/// Routes and proxies request number `n`, trying again as its cluster's retry policy allows;
/// `served` is told the matched route's metrics and each endpoint tried. The tries run here, not in a function of their
/// own: each `async fn` layer keeps its by-value arguments twice in the request's future, which hyper
/// copies whole for every request (BENCHMARKS.md, instructions per request).
async fn forward(
    shared: &Shared,
    conn: &ConnInfo,
    mut req: Request<ClientBody>,
    n: u64,
    served: &mut Served,
) -> Result<Response<ProxyBody>, ProxyError> {
    let Dispatch {
        mut attempts,
        mut in_flight,
        mut added,
        upgrade,
        downstream_upgrade,
        response_headers,
        location,
        timeouts,
        limits,
        tls,
        h2c,
        mirror,
        compress,
    } = match dispatch(shared, conn, &mut req, n, served)? {
        Dispatched::Upstream(d) => d,
        Dispatched::Answered(resp) => return Ok(resp),
    };
    let settings = send::Settings {
        timeouts: &timeouts,
        limits: &limits,
        tls: tls.as_deref(),
        h2c,
        upgrade: upgrade.is_some(),
    };
    let metrics = served.metrics.as_deref();
    // The clock is read as few times as it can be (each reading costs about as much as routing a
    // request): the first try starts when the head arrived, unless its body was read first.
    let mut sent = tokio::time::Instant::from_std(served.received);
    // Awaited here rather than in a helper, for the same reason as the tries.
    let mut req = match attempts.prepare(req, upgrade.is_some(), mirror.is_some()) {
        Prepared::Ready(req) => req,
        Prepared::ToBuffer(whole) => {
            let keep = attempts.replayable();
            let (req, replay) = retry::buffer(whole, attempts.read_timeout(), keep).await?;
            attempts.replay_with(replay);
            sent = tokio::time::Instant::now();
            req
        }
    };
    if let Some(plan) = mirror {
        // By value, not by reference: a borrow of `req` here would keep it in a slot of its own in
        // the request's future (+300 bytes, for every request).
        req = mirror::spawn(plan, req, &added, &shared.tables);
    }
    loop {
        let upstream = in_flight.upstream();
        served.upstream = Some(upstream.address);
        let deadline = attempts.try_deadline(sent);
        let outcome = send::send(
            upstream,
            &settings,
            (sent, deadline),
            req,
            &mut added,
            metrics,
        )
        .await;
        let (again, next) = match outcome {
            Ok(answer) => {
                // One reading for the endpoint's latency and the request's duration.
                let answered = tokio::time::Instant::now();
                served.answered = Some(answered.into_std());
                let latency = answered.saturating_duration_since(sent);
                match attempts.after_answer(&answer, upstream, latency, &mut added) {
                    Some(retry) => retry,
                    None => {
                        let settled = attempts.settle(answer, in_flight);
                        let (ops, location) = (response_headers.as_deref(), location.as_deref());
                        let up = upgrade.as_ref().zip(downstream_upgrade);
                        return respond(settled, ops, location, up, compress.as_deref());
                    }
                }
            }
            Err(failure) => attempts.after_failure(failure, upstream, &mut added)?,
        };
        attempts.wait(&next, metrics).await?;
        in_flight = attempts.advance(in_flight, next);
        req = again;
        sent = tokio::time::Instant::now();
        // A retried answer is not the request's end: its duration runs on.
        served.answered = None;
    }
}

/// What routing decided: the request goes upstream, or its route answered it.
// The large variant is the common one: boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Dispatched<'a> {
    /// Ready for its tries.
    Upstream(Dispatch<'a>),
    /// The route's own answer (a redirect, a fixed response).
    Answered(Response<ProxyBody>),
}

/// What routing decided for a request, ready for its tries.
struct Dispatch<'a> {
    attempts: Attempts<'a>,
    /// The request counted on the picked endpoint.
    in_flight: InFlight,
    added: AddedHeaders<'a>,
    /// The protocol of an upgrade the route allows, and the client connection's side of it.
    upgrade: Option<HeaderValue>,
    downstream_upgrade: Option<(OnUpgrade, Arc<ConnHold>)>,
    /// The route's header operations on the response.
    response_headers: Option<Arc<HeaderOps>>,
    /// The route's rewriting of the upstream's `Location` headers.
    location: Option<Box<LocationRewrite>>,
    /// The cluster's settings the tries need (copied: the snapshot is released before the first
    /// await).
    timeouts: ClusterTimeouts,
    limits: CircuitBreaker,
    tls: Option<Arc<TlsClient>>,
    h2c: bool,
    /// A copy of the request goes to the route's shadow cluster.
    mirror: Option<Box<MirrorPlan>>,
    /// The response is compressed, if it qualifies.
    compress: Option<Box<Compress>>,
}

/// Routes request number `n`, picks its endpoint, rewrites it for the upstream and admits it to the
/// cluster: everything up to the first try, on one `load()` of the snapshot. Inlined into its one
/// caller: as a call, its large result is copied out twice per request (callgrind, BENCHMARKS.md).
#[inline(always)]
fn dispatch<'a>(
    shared: &'a Shared,
    conn: &'a ConnInfo,
    req: &mut Request<ClientBody>,
    n: u64,
    served: &mut Served,
) -> Result<Dispatched<'a>, ProxyError> {
    let snapshot = shared.tables.guard();
    let (route, host_header) = find_route(&snapshot, req)?;
    let sets = snapshot.route_metrics.get(route.index());
    served.metrics = sets.and_then(|m| m.first()).cloned();
    limit(
        snapshot.limits.route(route.index()),
        shared,
        conn,
        req,
        served,
    )?;
    if let Some(own) = &route.answer {
        return answer(own, route, req, conn).map(Dispatched::Answered);
    }
    let index = match &route.split {
        None => route.cluster.ok_or_else(|| ProxyError::NoRoute)?,
        Some(split) => {
            let placement = Placement {
                headers: req.headers(),
                path: req.uri().path(),
                client_ip: conn.client_ip.as_bytes(),
            };
            let (slot, index) = split
                .choose(&snapshot.clusters, &placement)
                .ok_or_else(|| ProxyError::NoRoute)?;
            served.metrics = sets.and_then(|m| m.get(slot)).cloned();
            index
        }
    };
    let cluster = snapshot
        .clusters
        .get(index)
        .ok_or_else(|| ProxyError::NoRoute)?;
    limit(snapshot.limits.cluster(index), shared, conn, req, served)?;
    let locator = Locator {
        generation: snapshot.generation,
        index,
        name_hash: cluster.name_hash,
    };
    if let Some(max) = route.max_request_body {
        // A declared length over the limit is answered before anything is read or sent.
        if req.body().size_hint().lower() > max {
            return Err(ProxyError::PayloadTooLarge);
        }
    }
    let (endpoint, routed) = pick(cluster, req, conn, locator)?;
    tracing::trace!(route = %route.name, cluster = %cluster.name, upstream = %endpoint.upstream.address, "routed");
    let host_rewrite = cluster.host_rewrite.as_ref();
    let location = LocationRewrite::of(route, req, &conn.proto, host_rewrite);
    let (added, upgrade) = rewrite_request(shared, conn, req, n, route, host_header, host_rewrite)?;
    let mirror = mirror::plan(&snapshot, route, req, upgrade.is_some());
    let compress = route
        .compression
        .as_ref()
        .filter(|_| upgrade.is_none())
        .and_then(|c| compress::choose(c, req));
    let downstream_upgrade = upgrade
        .is_some()
        .then(|| (hyper::upgrade::on(&mut *req), conn.hold.clone()));
    let timeouts = route.timeouts.over(cluster.timeouts);
    let max_body = route.max_request_body;
    Ok(Dispatched::Upstream(Dispatch {
        attempts: Attempts::new(shared, routed, cluster.retry, &timeouts, max_body),
        in_flight: admit(cluster, endpoint)?,
        added,
        upgrade,
        downstream_upgrade,
        response_headers: route.response_headers.clone(),
        location,
        timeouts,
        limits: cluster.limits,
        tls: cluster.tls.clone(),
        h2c: cluster.h2c,
        mirror,
        compress,
    }))
}

/// Checks the request against a route's or cluster's rate limits (none: one branch).
#[inline(always)]
fn limit(
    limits: &[crate::limits::Limiter],
    shared: &Shared,
    conn: &ConnInfo,
    req: &Request<ClientBody>,
    served: &mut Served,
) -> Result<(), ProxyError> {
    if limits.is_empty() {
        return Ok(());
    }
    let source = crate::limits::key::KeySource {
        headers: req.headers(),
        peer: conn.client_ip.as_bytes(),
        trusted: &shared.trusted_proxies,
    };
    crate::limits::check(limits, &source, served.received, &mut served.granted)
}

/// The request's target as routes match it: the path, with the query if there is one.
fn target(uri: &http::Uri) -> &str {
    uri.path_and_query()
        .map_or_else(|| uri.path(), |pq| pq.as_str())
}

/// The route matching the request's host, path, query, method, headers and cookies, and the
/// request's `Host` header (for `X-Forwarded-Host`; found here, it is not looked up twice).
fn find_route<'s>(
    snapshot: &'s Snapshot,
    req: &Request<ClientBody>,
) -> Result<(&'s Route, Option<HeaderValue>), ProxyError> {
    let (raw_host, header) = headers::host_and_header(req.uri(), req.headers(), req.version())
        .map_err(ProxyError::BadRequest)?;
    let mut buf = [0u8; MAX_HOST];
    let host = normalize_host(raw_host, &mut buf);
    let route = snapshot
        .router
        .find(host, target(req.uri()), req.method(), req.headers())
        .ok_or_else(|| ProxyError::NoRoute)?;
    Ok((route, header.cloned()))
}

/// The cluster's endpoint for the request (by its hash key and affinity token, if the cluster uses
/// them), and what retries need to know of the routing.
fn pick<'s>(
    cluster: &'s Cluster,
    req: &Request<ClientBody>,
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

#[cfg(test)]
mod tests {
    use crate::downstream::body::ClientBody;
    use crate::request::shared::{ConnInfo, Shared};
    use http::Request;

    fn output_size<A, B, C, Fut, F: FnOnce(A, B, C) -> Fut>(_: &F) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// hyper moves every request's future into place whole, so its size is paid per request (about
    /// one instruction per byte under callgrind): an `async fn` layer around the tries, which keeps its
    /// by-value arguments twice, once cost 850 bytes and 5 % more instructions per request.
    #[test]
    fn a_request_is_a_small_future() {
        let handle = |s: &'static Shared, c: &'static ConnInfo, r: Request<ClientBody>| {
            super::handle(s, c, r)
        };
        let size = output_size(&handle);
        assert!(size <= 3400, "a request's future is {size} bytes");
    }
}
