//! One try of a request on one endpoint: a pooled connection or a new one (within the cluster's
//! connection limit, waiting as a pending request if need be), then the request, until response
//! headers or the try's deadline.

use crate::error::{ConnectCause, ProxyError};
use crate::request::added_headers::AddedHeaders;
use crate::request::request_body::RequestBody;
use crate::request::retry::idempotent;
use crate::telemetry::RouteMetrics;
use crate::upstream::cluster_state::ConnSlot;
use crate::upstream::conn::{self, Protocol, Sender};
use crate::upstream::h1;
use crate::upstream::tls::TlsClient;
use crate::upstream::Upstream;
use edgeplane_config::model::{CircuitBreaker, ClusterTimeouts, RetryOn};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::time::Instant;

/// How many pooled connections a try uses before it opens a fresh one.
const POOLED_ATTEMPTS: usize = 3;

/// A failed try: why, the retry condition it meets, and the request if it was never sent (so it may
/// go elsewhere as is). The condition is set where the failure happens, as Pingora's errors carry their
/// retry type, so that no one re-derives it later from the error's variant.
#[derive(Debug)]
pub(crate) struct Failure {
    /// What went wrong.
    pub(crate) error: ProxyError,
    /// The `retry_on` condition this failure meets; empty for one that is never retried.
    pub(crate) retry_on: RetryOn,
    /// The request, when nothing of it reached the upstream (boxed: failures are rare, and a small
    /// result keeps every successful try from copying a request-sized hole).
    pub(crate) unsent: Option<Box<Request<RequestBody>>>,
}

impl Failure {
    /// No connection to send on (refused, timed out, handshake failed, closed before the request
    /// went out): nothing reached the upstream.
    fn connect(error: ProxyError) -> Failure {
        Failure {
            error,
            retry_on: RetryOn::CONNECT_FAILURE,
            unsent: None,
        }
    }

    /// No response headers before the try's deadline.
    fn timeout() -> Failure {
        Failure {
            error: ProxyError::Timeout,
            retry_on: RetryOn::TIMEOUT,
            unsent: None,
        }
    }

    /// The connection failed after the request went out, or the answer was garbage.
    fn reset(detail: String) -> Failure {
        Failure {
            error: ProxyError::Upstream(detail),
            retry_on: RetryOn::RESET,
            unsent: None,
        }
    }

    /// A cluster limit turned the try away: never retried (another try would meet the same limit).
    fn limited(error: ProxyError) -> Failure {
        Failure {
            error,
            retry_on: RetryOn::default(),
            unsent: None,
        }
    }

    /// The same failure, with the request handed back unsent.
    fn unsent(self, req: Request<RequestBody>) -> Failure {
        Failure {
            unsent: Some(Box::new(req)),
            ..self
        }
    }
}

/// What a try needs of its cluster.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings<'a> {
    /// Connect and response-header timeouts.
    pub(crate) timeouts: &'a ClusterTimeouts,
    /// Connection and pending-request limits.
    pub(crate) limits: &'a CircuitBreaker,
    /// TLS to the upstream, if the cluster uses it.
    pub(crate) tls: Option<&'a TlsClient>,
    /// Cleartext HTTP/2 with prior knowledge.
    pub(crate) h2c: bool,
    /// The request switches protocols (the route let its `Upgrade` through).
    pub(crate) upgrade: bool,
}

/// A response head and the connection it came on.
#[derive(Debug)]
pub(crate) enum Answer {
    /// From hyper's client; the body streams from the `Incoming`.
    Hyper(Response<Incoming>, Sender),
    /// From edgeplane's h1_client HTTP/1.1 client; the body is read from the connection.
    H1Client(h1::Head, Sender),
}

impl Answer {
    /// The `grpc-status` of a gRPC answer without a body (trailers-only), if this is one.
    pub(crate) fn trailers_only_grpc(&self) -> Option<u32> {
        match self {
            Answer::Hyper(resp, _) if http_body::Body::is_end_stream(resp.body()) => {
                crate::grpc::status(resp.headers())
            }
            _ => None,
        }
    }

    /// The response status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Answer::Hyper(resp, _) => resp.status(),
            Answer::H1Client(head, _) => head.response.status(),
        }
    }
}

/// Sends `req`, with its `added` headers, to `upstream` and waits for the response headers until
/// `deadline` (the try started at `sent`, the clock its pooled connections' idleness is read by). A
/// pooled connection that turns out dead before the request went out is replaced transparently
/// (hyper hands the unsent request back; the h1_client client keeps it until a response comes, and
/// an idempotent request that got nothing back on a pooled connection goes again on another).
pub(crate) async fn send(
    upstream: &Upstream,
    settings: &Settings<'_>,
    (sent, deadline): (Instant, Instant),
    mut req: Request<RequestBody>,
    added: &mut AddedHeaders<'_>,
    metrics: Option<&RouteMetrics>,
) -> Result<Answer, Failure> {
    let h1_client = h1::eligible(&req, settings.upgrade);
    let mut pooled_taken = 0;
    loop {
        let connection = connection(
            upstream,
            settings,
            (sent, deadline),
            h1_client,
            &mut pooled_taken,
        )
        .await;
        let (mut sender, pooled) = match connection {
            Ok(Some(ready)) => ready,
            Ok(None) => continue,
            Err(failure) => return Err(failure.unsent(req)),
        };
        // Awaited per protocol, without a wrapper future, so the request moves as few times as it can.
        let sent = match sender.protocol() {
            Protocol::H1Client(c) => match h1::send_until(c, &req, added, deadline).await {
                None => return Err(Failure::timeout()),
                Some(Ok(head)) => return Ok(Answer::H1Client(head, sender)),
                Some(Err(h1::TryError::Unanswered(e))) if pooled && idempotent(req.method()) => {
                    resending(upstream, &e, metrics, "closed without an answer");
                    continue;
                }
                Some(Err(h1::TryError::Unanswered(e) | h1::TryError::Failed(e))) => {
                    return Err(Failure::reset(e))
                }
            },
            Protocol::H1(s) => {
                added.apply(req.headers_mut());
                tokio::time::timeout_at(deadline, s.try_send_request(req)).await
            }
            Protocol::H2(s) => {
                added.apply(req.headers_mut());
                if added.te_trailers {
                    let te = http::HeaderValue::from_static("trailers");
                    req.headers_mut().insert(http::header::TE, te);
                }
                tokio::time::timeout_at(
                    deadline,
                    s.try_send_request(conn::to_h2(req, settings.tls.is_some())),
                )
                .await
            }
        };
        match sent {
            Err(_) => return Err(Failure::timeout()),
            Ok(Ok(resp)) => return Ok(Answer::Hyper(resp, sender)),
            Ok(Err(mut e)) => match e.take_message() {
                Some(back) if pooled => {
                    resending(upstream, e.error(), metrics, "failed before sending");
                    req = back;
                }
                Some(back) => {
                    let detail = e.into_error().to_string();
                    let error = ProxyError::Connect(ConnectCause::Other, detail);
                    return Err(Failure::connect(error).unsent(back));
                }
                None => return Err(Failure::reset(e.into_error().to_string())),
            },
        }
    }
}

/// Logs and counts a request sent again on another connection after a pooled one failed it.
fn resending(
    upstream: &Upstream,
    error: &dyn std::fmt::Display,
    metrics: Option<&RouteMetrics>,
    what: &str,
) {
    tracing::debug!(upstream = %upstream.address, error = %error, "pooled connection {what}; retrying on another");
    if let Some(m) = metrics {
        m.retried();
    }
}

/// A connection to `upstream` ready to take the request, and whether it came straight from the pool
/// (at most [`POOLED_ATTEMPTS`] of those per try, counted in `pooled_taken`). `None`: a pooled
/// connection turned out dead; take another.
async fn connection(
    upstream: &Upstream,
    settings: &Settings<'_>,
    (sent, deadline): (Instant, Instant),
    h1_client: bool,
    pooled_taken: &mut usize,
) -> Result<Option<(Sender, bool)>, Failure> {
    let pooled = if *pooled_taken < POOLED_ATTEMPTS {
        upstream.pool.take(h1_client, sent.into_std())
    } else {
        None
    };
    let is_pooled = pooled.is_some();
    let mut sender = match pooled {
        Some(s) => {
            *pooled_taken += 1;
            s
        }
        // Boxed, as is the conversion below: both are rare next to a pooled connection, and a try's
        // future, which every request holds, stays small without them.
        None => Box::pin(open(upstream, settings, deadline, h1_client, pooled_taken)).await?,
    };
    if sender.h1_client().is_some() && !h1_client {
        sender = match Box::pin(sender.into_hyper(upstream.address)).await {
            Ok(s) => s,
            Err(_) if is_pooled => return Ok(None),
            Err(error) => return Err(Failure::connect(error)),
        };
    }
    if sender.ready().await.is_err() {
        if is_pooled {
            return Ok(None);
        }
        let error = ProxyError::Connect(
            ConnectCause::Other,
            "connection closed before the request was sent".into(),
        );
        return Err(Failure::connect(error));
    }
    Ok(Some((sender, is_pooled)))
}

/// A new connection within the cluster's limits, or a pooled one that went idle while this try
/// waited for a place.
///
/// A connect that fails for lack of this node's own resources (out of file descriptors or ports:
/// many clients each with a request in flight) does not fail the request: the try waits, as a
/// pending request does at `max_connections`, for a connection of the cluster to come back or close,
/// then takes it from the pool or connects again, until its deadline.
async fn open(
    upstream: &Upstream,
    settings: &Settings<'_>,
    deadline: Instant,
    h1_client: bool,
    pooled_taken: &mut usize,
) -> Result<Sender, Failure> {
    // Taken out since the pick (its pooled connections were found dead, or another request's
    // connect was refused): go elsewhere rather than knock at a closed door. In panic mode picks
    // ignore ejections, so this does too.
    if upstream.ejected() && !upstream.cluster.panic() {
        let error = ProxyError::Connect(
            ConnectCause::Withdrawn,
            "endpoint taken out by outlier detection".into(),
        );
        return Err(Failure::connect(error));
    }
    loop {
        let slot = match connection_slot(upstream, settings.limits, deadline, h1_client).await? {
            Slot::Pooled(s) => {
                *pooled_taken += 1;
                return Ok(s);
            }
            Slot::New(slot) => slot,
        };
        // Boxed: connecting (TLS and HTTP/2 handshakes) is a large future, and the request's h1_client
        // future stays small when it is not in it (most requests reuse a pooled connection).
        let connecting = Box::pin(conn::connect(
            upstream.address,
            settings.timeouts.connect,
            slot,
            settings.tls,
            settings.h2c,
        ));
        let error = match connecting.await {
            Ok(sender) => {
                upstream.pool.share(&sender);
                return Ok(sender);
            }
            Err(error) => error,
        };
        let ProxyError::Connect(ConnectCause::Local, detail) = &error else {
            return Err(Failure::connect(error));
        };
        let waited = tokio::time::timeout_at(
            deadline,
            upstream.cluster.wait_for_slot(settings.limits.max_pending),
        )
        .await;
        match waited {
            // Out of time or of places to wait: the request fails with the connect's error (counted
            // with the try's failure).
            Err(_) | Ok(None) => return Err(Failure::connect(error)),
            // Waited out: counted here.
            Ok(Some(())) => upstream
                .cluster
                .outliers
                .local_wait(upstream.address, detail),
        }
        if let Some(s) = upstream.pool.take(h1_client, Instant::now().into_std()) {
            *pooled_taken += 1;
            return Ok(s);
        }
    }
}

enum Slot {
    New(ConnSlot),
    Pooled(Sender),
}

/// A place for a new connection within the cluster's `max_connections`; at the limit, waits as a
/// pending request (at most `max_pending` of them) until a connection closes or one to this endpoint
/// goes idle.
async fn connection_slot(
    upstream: &Upstream,
    limits: &CircuitBreaker,
    deadline: Instant,
    h1_client: bool,
) -> Result<Slot, Failure> {
    loop {
        if let Some(slot) = upstream.cluster.try_connection(limits.max_connections) {
            return Ok(Slot::New(slot));
        }
        let waited =
            tokio::time::timeout_at(deadline, upstream.cluster.wait_for_slot(limits.max_pending))
                .await;
        match waited {
            Err(_) => return Err(Failure::timeout()),
            Ok(None) => return Err(Failure::limited(ProxyError::CircuitOpen("max_pending"))),
            Ok(Some(())) => {}
        }
        if let Some(s) = upstream.pool.take(h1_client, Instant::now().into_std()) {
            return Ok(Slot::Pooled(s));
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every request's future holds a try's future: it must stay small (moving a future of several
    /// kilobytes costs the request path more than the rest of its work), so connecting, with its TLS
    /// and HTTP/2 handshakes, is boxed.
    #[test]
    fn a_try_is_a_small_future() {
        let up = crate::upstream::Upstream::new(
            ([127, 0, 0, 1], 1).into(),
            crate::upstream::pool::Pool::new(edgeplane_config::model::Pool {
                max_idle_per_endpoint: Some(1),
                idle_timeout: std::time::Duration::from_secs(1),
            }),
            Default::default(),
        );
        let timeouts = edgeplane_config::model::ClusterTimeouts {
            connect: std::time::Duration::from_secs(1),
            response_header: std::time::Duration::from_secs(1),
            total: None,
        };
        let limits = edgeplane_config::model::CircuitBreaker::default();
        let settings = super::Settings {
            timeouts: &timeouts,
            limits: &limits,
            tls: None,
            h2c: false,
            upgrade: false,
        };
        let req = http::Request::new(crate::request::request_body::RequestBody::Buffered(None));
        let deadline = tokio::time::Instant::now();
        let v = http::HeaderValue::from_static("x");
        let mut added = crate::request::added_headers::AddedHeaders::new(&v, &v, &v, None, 0, 0);
        let f = super::send(&up, &settings, (deadline, deadline), req, &mut added, None);
        let size = std::mem::size_of_val(&f);
        assert!(size <= 2048, "a try's future is {size} bytes");
    }
}
