//! The request path: route, pick, rewrite, send upstream, stream the response back.
//!
//! One `load()` of the snapshot per request; no lock except the endpoint pool's short push/pop; no
//! allocation for routing. Nothing here panics: every failure becomes a [`ProxyError`] response.

use crate::body::{ProxyBody, UpstreamBody};
use crate::breaker::RetrySlot;
use crate::error::ProxyError;
use crate::forwarding::{self, Forwarding};
use crate::h1::OwnBody;
use crate::headers;
use crate::next_try::{charge_failure, next_try, Locator, Retrying};
use crate::request_body::{RequestBody, Upload, UploadState};
use crate::router::{normalize_host, MAX_HOST};
use crate::send::Answer;
use crate::shared::Shared;
use crate::telemetry::RouteMetrics;
use crate::{retry, send};
use edgeplane_config::model::RetryOn;
use http::uri::{PathAndQuery, Uri};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// What every request of one downstream connection shares.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    /// The client's IP as a header value, made once per connection.
    pub(crate) client_ip: HeaderValue,
    /// `http` or `https`.
    pub(crate) proto: HeaderValue,
    /// Keeps the connection counted; an upgraded tunnel takes a share of it.
    pub(crate) hold: Arc<crate::lifecycle::ConnHold>,
}

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
            crate::body::error_response(e)
        }
    };
    let elapsed = received.elapsed();
    metrics.answered(resp.status().as_u16(), elapsed);
    if let Some(a) = access {
        a.log(conn, metrics, resp.status(), elapsed);
    }
    resp
}

/// What the access log needs of a request, taken before the request is sent on.
struct AccessEntry {
    method: http::Method,
    uri: Uri,
    host: Option<HeaderValue>,
    request_id: HeaderValue,
}

impl AccessEntry {
    fn of(req: &Request<Incoming>, id_seed: u64, n: u64) -> AccessEntry {
        AccessEntry {
            method: req.method().clone(),
            uri: req.uri().clone(),
            host: req.headers().get(header::HOST).cloned(),
            request_id: forwarding::request_id(req.headers(), id_seed, n),
        }
    }

    fn log(
        self,
        conn: &ConnInfo,
        m: &RouteMetrics,
        status: StatusCode,
        elapsed: std::time::Duration,
    ) {
        let text = |v: &Option<HeaderValue>| {
            v.as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string()
        };
        tracing::info!(
            target: "edgeplane::access",
            client = conn.client_ip.to_str().unwrap_or("-"),
            method = %self.method,
            host = %text(&self.host),
            path = %self.uri.path(),
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1e3,
            route = %m.route,
            cluster = %m.cluster,
            request_id = self.request_id.to_str().unwrap_or("-"),
        );
    }
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
    let route = {
        let raw_host = headers::request_host(req.uri(), req.headers(), req.version())
            .map_err(ProxyError::BadRequest)?;
        let mut buf = [0u8; MAX_HOST];
        let host = normalize_host(raw_host, &mut buf);
        snapshot
            .router
            .find(host, req.uri().path(), req.method(), req.headers())
            .ok_or(ProxyError::NoRoute)?
    };
    *metrics = snapshot.route_metrics.get(route.index()).cloned();
    let cluster = snapshot
        .clusters
        .get(route.cluster)
        .ok_or(ProxyError::NoRoute)?;
    let key = if cluster.keyed() {
        crate::balancer::hashing::request_key(
            &cluster.hash_on,
            req.headers(),
            req.uri().path(),
            conn.client_ip.as_bytes(),
        )
    } else {
        None
    };
    let token = cluster
        .affinity
        .as_ref()
        .and_then(|a| a.requested(req.headers()));
    let endpoint = cluster
        .pick_affine(token, key)
        .ok_or_else(|| ProxyError::NoEndpoint(cluster.name.clone()))?;
    tracing::trace!(route = %route.name, cluster = %cluster.name, upstream = %endpoint.upstream.address, "routed");
    let cluster_has_affinity = cluster.affinity.is_some();
    let mut affinity = cluster
        .affinity
        .as_ref()
        .and_then(|a| a.response_header(token, endpoint.upstream.address));

    let hop_by_hop = headers::HopByHop::find(req.headers());
    // An upgrade the route does not allow is not forwarded: the request goes on as a plain one
    // (`Upgrade` is hop-by-hop), as a client offering `h2c` on the side expects.
    let upgrade = if req.version() == Version::HTTP_11 {
        hop_by_hop
            .upgrade(req.headers())
            .filter(|p| route.allows_upgrade(p))
    } else {
        None
    };
    let mut forwarding = rewrite_request(
        shared,
        conn,
        &mut req,
        n,
        &hop_by_hop,
        cluster.host_rewrite.as_ref(),
        upgrade.as_ref(),
    )?;
    let downstream_upgrade = upgrade
        .is_some()
        .then(|| (hyper::upgrade::on(&mut req), conn.hold.clone()));

    let admission = match cluster.limits.max_requests {
        Some(max) => Some(
            cluster
                .breaker
                .try_enter(max)
                .ok_or(ProxyError::CircuitOpen("max_requests"))?,
        ),
        None => None,
    };
    if cluster.limits.max_connections.is_some() {
        make_room(cluster, endpoint);
    }
    let mut in_flight = endpoint.upstream.start_request().holding(admission);
    let (timeouts, policy, limits) = (cluster.timeouts, cluster.retry, cluster.limits);
    let tls = cluster.tls.clone();
    let settings = send::Settings {
        timeouts: &timeouts,
        limits: &limits,
        tls: tls.as_deref(),
    };
    let locator = Locator {
        generation: snapshot.generation,
        index: route.cluster,
        name_hash: cluster.name_hash,
    };
    // The snapshot is not needed past this point: release it before the first await.
    drop(snapshot);

    let deadline = timeouts.total.map(|t| tokio::time::Instant::now() + t);
    let mut upload = None;
    let (mut req, replay) = if retry::replayable(&req, &policy, upgrade.is_some()) {
        retry::buffer(req, timeouts.response_header).await?
    } else if req.body().is_end_stream() {
        // No body: nothing a client could break mid-upload, so no upload watch (and no allocation).
        (req.map(|_| RequestBody::Buffered(None)), None)
    } else {
        let state = Arc::new(UploadState::default());
        upload = Some(state.clone());
        (
            req.map(|b| RequestBody::Streamed(Upload::new(b, state))),
            None,
        )
    };
    let route_metrics = metrics.as_deref();
    let mut tries = 0u32;
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut _retry_slot: Option<RetrySlot> = None;
    loop {
        let upstream = in_flight.upstream();
        let sent = tokio::time::Instant::now();
        let try_deadline = match deadline {
            Some(d) => d.min(sent + timeouts.response_header),
            None => sent + timeouts.response_header,
        };
        let retry = |tried: &mut Vec<SocketAddr>, tries: u32, budgeted: bool| {
            tried.push(upstream.address);
            let next = Retrying {
                tries: tries + 1,
                budgeted,
            };
            next_try(shared, &locator, key, token, tried, &policy, next)
        };
        let (next_req, next) = match send::send(
            upstream,
            &settings,
            try_deadline,
            req,
            &mut forwarding,
            route_metrics,
        )
        .await
        {
            Ok(answer) => {
                // A 5xx or 429 is a failure for balancing and outlier detection: an endpoint that
                // answers errors fast must not look like a fast endpoint.
                let status = answer.status();
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                    charge_failure(shared, &locator, upstream, None);
                } else {
                    upstream.record_success(sent.elapsed());
                    if upstream.on_trial() {
                        crate::outlier::trial_passed(upstream);
                    }
                }
                let next = match &replay {
                    Some(r) if policy.on.status(status.as_u16()) && tries < policy.attempts => {
                        retry(&mut tried, tries, true).map(|next| {
                            forwarding.reset();
                            (r.request(), next)
                        })
                    }
                    _ => None,
                };
                match next {
                    Some(next) => {
                        tracing::debug!(upstream = %upstream.address, status = status.as_u16(), "retrying a failed answer");
                        next
                    }
                    None => {
                        let asked = upgrade.as_ref().zip(downstream_upgrade);
                        return respond(answer, in_flight, asked, affinity);
                    }
                }
            }
            Err(send::Failure { error, unsent }) => {
                // A broken upload, or one the client had not finished when the try's time was
                // up, is the client's doing: answered as such, never charged to the endpoint.
                if let Some(client) = client_fault(upload.as_deref(), &error) {
                    tracing::debug!(upstream = %upstream.address, error = %error, "the client's upload failed the try");
                    return Err(client);
                }
                let connect = match &error {
                    ProxyError::Connect(cause, detail) => Some((*cause, detail.as_str())),
                    _ => None,
                };
                charge_failure(shared, &locator, upstream, connect);
                // Nothing reached an upstream: the retry does not spend the budget.
                let never_sent = connect.is_some() && unsent.is_some();
                let condition = match error {
                    ProxyError::Connect(..) => RetryOn::CONNECT_FAILURE,
                    ProxyError::Timeout => RetryOn::TIMEOUT,
                    ProxyError::Upstream(_) => RetryOn::RESET,
                    _ => RetryOn::default(),
                };
                let retryable =
                    condition.0 != 0 && policy.on.contains(condition) && tries < policy.attempts;
                // A request handed back unsent keeps what was done to its headers; a copy from the
                // replay is fresh.
                let again = unsent.map(|r| *r).or_else(|| {
                    replay.as_ref().map(|r| {
                        forwarding.reset();
                        r.request()
                    })
                });
                match again.filter(|_| retryable) {
                    Some(again) => match retry(&mut tried, tries, !never_sent) {
                        Some(next) => {
                            tracing::debug!(upstream = %upstream.address, error = %error, "retrying a failed try");
                            (again, next)
                        }
                        None => return Err(error),
                    },
                    None => return Err(error),
                }
            }
        };
        tries += 1;
        if let Some(d) = deadline {
            if tokio::time::Instant::now() + next.backoff >= d {
                return Err(ProxyError::Timeout);
            }
        }
        if !next.backoff.is_zero() {
            tokio::time::sleep(next.backoff).await;
        }
        if let Some(m) = route_metrics {
            m.retried();
        }
        let admission = in_flight.take_admission();
        in_flight = next.upstream.start_request().holding(admission);
        if cluster_has_affinity {
            affinity = next.affinity;
        }
        _retry_slot = next.slot;
        req = next_req;
    }
}

/// The error to answer when a failed try was the client's doing: its streamed body broke (malformed,
/// or the client went away mid-upload), or the try timed out waiting for the client's body.
fn client_fault(upload: Option<&UploadState>, error: &ProxyError) -> Option<ProxyError> {
    let upload = upload?;
    if upload.failed() {
        return Some(ProxyError::BadRequest(
            "request body could not be read (malformed, or cut short by the client)",
        ));
    }
    (matches!(error, ProxyError::Timeout) && upload.waiting_on_client())
        .then_some(ProxyError::ClientTimeout)
}

/// At the cluster's connection limit with no idle connection to this endpoint: closes the coldest
/// idle connection of another endpoint, so that its place goes to this request.
fn make_room(cluster: &crate::tables::Cluster, endpoint: &crate::tables::Endpoint) {
    let (Some(max), b) = (cluster.limits.max_connections, &cluster.breaker) else {
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

/// The response to send downstream: an upgraded tunnel, or the upstream's response streamed.
fn respond(
    answer: Answer,
    in_flight: crate::upstream::InFlight,
    downstream_upgrade: Option<(
        &HeaderValue,
        (hyper::upgrade::OnUpgrade, Arc<crate::lifecycle::ConnHold>),
    )>,
    affinity: Option<(http::HeaderName, HeaderValue)>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (mut resp, sender) = match answer {
        Answer::Hyper(resp, sender) => (resp, sender),
        Answer::Own(head, sender) => {
            // A 101 never gets here: the own client refuses one (it only takes non-upgrade requests).
            // The own client keeps hop-by-hop headers out of the map as it parses.
            let mut resp = head.response;
            if let Some((name, value)) = affinity {
                resp.headers_mut().append(name, value);
            }
            let body = OwnBody::new(sender, in_flight, head.framing, head.keep_alive);
            return Ok(resp.map(|()| ProxyBody::Own(body)));
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some((asked, (downstream, hold))) = downstream_upgrade else {
            return Err(ProxyError::Upstream(
                "101 Switching Protocols to a request that asked no upgrade".into(),
            ));
        };
        // The tunnel opens only to the protocol asked for (and allowed by the route): a 101 to
        // another one would smuggle it past the route's conditions.
        if !same_protocol(asked, resp.headers().get(header::UPGRADE)) {
            return Err(ProxyError::Upstream(
                "101 Switching Protocols to another protocol than the one asked".into(),
            ));
        }
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(crate::tunnel::run(
            downstream,
            upstream_upgrade,
            in_flight,
            hold,
        ));
        return Ok(resp.map(|_| ProxyBody::empty()));
    }
    response_headers(resp.headers_mut(), affinity);
    Ok(resp.map(|body| ProxyBody::Upstream(UpstreamBody::new(body, sender, in_flight))))
}

/// Whether a 101's `Upgrade` names one of the protocols the request asked for (names compared without
/// case; a version, if the request gave one, must match too).
fn same_protocol(asked: &HeaderValue, answered: Option<&HeaderValue>) -> bool {
    let (Ok(asked), Some(Ok(answered))) = (asked.to_str(), answered.map(|a| a.to_str())) else {
        return false;
    };
    let answered = answered.trim();
    asked.split(',').any(|a| {
        let a = a.trim();
        a.eq_ignore_ascii_case(answered)
            || (!a.contains('/')
                && answered
                    .split('/')
                    .next()
                    .is_some_and(|name| name.trim().eq_ignore_ascii_case(a)))
    })
}

/// The upstream's response headers made fit for the client: no hop-by-hop headers, plus the affinity
/// cookie or header if one is set. A response framed by `Transfer-Encoding` loses any
/// `Content-Length` too (RFC 9112 section 6.3: the encoding wins), as on the own client's path: the
/// body is re-framed for the client, and a stale length would cut it.
fn response_headers(h: &mut HeaderMap, affinity: Option<(http::HeaderName, HeaderValue)>) {
    if h.contains_key(header::TRANSFER_ENCODING) {
        h.remove(header::CONTENT_LENGTH);
    }
    headers::strip_hop_by_hop(h);
    if let Some((name, value)) = affinity {
        h.append(name, value);
    }
}

/// Turns the client's request (number `n`) into the upstream's: origin-form target, HTTP/1.1, no
/// hop-by-hop headers, Host kept or rewritten; returns the forwarding headers to add when it is sent.
fn rewrite_request<'a>(
    shared: &'a Shared,
    conn: &'a ConnInfo,
    req: &mut Request<Incoming>,
    n: u64,
    hop_by_hop: &headers::HopByHop,
    host_rewrite: Option<&HeaderValue>,
    upgrade: Option<&HeaderValue>,
) -> Result<Forwarding<'a>, ProxyError> {
    let via = if req.version() == Version::HTTP_2 {
        &shared.via_h2
    } else {
        &shared.via_h1
    };
    let authority = req.uri().authority().cloned();
    if req.uri().scheme().is_some() || authority.is_some() {
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(pq);
    }
    *req.version_mut() = Version::HTTP_11;

    let h = req.headers_mut();
    // `Expect` goes too: hyper answers `100-continue` to the client when the body is read.
    hop_by_hop.strip(h);
    let host = match &authority {
        Some(a) => {
            let value = HeaderValue::from_str(a.as_str())
                .map_err(|_| ProxyError::BadRequest("invalid authority"))?;
            h.insert(header::HOST, value.clone());
            Some(value)
        }
        None => h.get(header::HOST).cloned(),
    };
    if let Some(rewrite) = host_rewrite {
        h.insert(header::HOST, rewrite.clone());
    }
    if let Some(protocol) = upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, protocol.clone());
    }
    Ok(Forwarding::new(
        &conn.client_ip,
        &conn.proto,
        via,
        host,
        shared.id_seed,
        n,
    ))
}
