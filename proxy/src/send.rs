//! One try of a request on one endpoint: a pooled connection or a new one (within the cluster's
//! connection limit, waiting as a pending request if need be), then the request, until response
//! headers or the try's deadline.

use crate::breaker::ConnSlot;
use crate::conn::{self, Protocol, Sender};
use crate::error::{ConnectCause, ProxyError};
use crate::forwarding::Forwarding;
use crate::h1;
use crate::request_body::RequestBody;
use crate::telemetry::RouteMetrics;
use crate::upstream::Upstream;
use crate::upstream_tls::TlsClient;
use edgeplane_config::model::{CircuitBreaker, ClusterTimeouts};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::time::Instant;

/// How many pooled connections a try uses before it opens a fresh one.
const POOLED_ATTEMPTS: usize = 3;

/// A failed try: why, and the request if it was never sent (so it may go elsewhere as is).
#[derive(Debug)]
pub(crate) struct Failure {
    /// What went wrong.
    pub(crate) error: ProxyError,
    /// The request, when nothing of it reached the upstream (boxed: failures are rare, and a small
    /// result keeps every successful try from copying a request-sized hole).
    pub(crate) unsent: Option<Box<Request<RequestBody>>>,
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
}

/// A response head and the connection it came on.
#[derive(Debug)]
pub(crate) enum Answer {
    /// From hyper's client; the body streams from the `Incoming`.
    Hyper(Response<Incoming>, Sender),
    /// From edgeplane's own HTTP/1.1 client; the body is read from the connection.
    Own(h1::Head, Sender),
}

impl Answer {
    /// The response status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Answer::Hyper(resp, _) => resp.status(),
            Answer::Own(head, _) => head.response.status(),
        }
    }
}

/// Sends `req`, with its `forwarding` headers, to `upstream` and waits for the response headers until `deadline`. A pooled
/// connection that turns out dead before the request went out is replaced transparently (hyper hands
/// the unsent request back; the own client keeps it until a response comes, and an idempotent request
/// that got nothing back on a pooled connection goes again on another).
pub(crate) async fn send(
    upstream: &Upstream,
    settings: &Settings<'_>,
    deadline: Instant,
    mut req: Request<RequestBody>,
    forwarding: &mut Forwarding<'_>,
    metrics: Option<&RouteMetrics>,
) -> Result<Answer, Failure> {
    let Settings {
        timeouts,
        limits,
        tls,
    } = *settings;
    let own = h1::eligible(&req);
    let mut pooled_attempts = 0;
    loop {
        let pooled = if pooled_attempts < POOLED_ATTEMPTS {
            upstream.pool.take(own)
        } else {
            None
        };
        let is_pooled = pooled.is_some();
        let mut sender = match pooled {
            Some(s) => {
                pooled_attempts += 1;
                s
            }
            None => {
                // Taken out since the pick (its pooled connections were found dead, or another
                // request's connect was refused): go elsewhere rather than knock at a closed door.
                // In panic mode picks ignore ejections, so this does too.
                if upstream.ejected() && !upstream.cluster.panic() {
                    let error = ProxyError::Connect(
                        ConnectCause::Withdrawn,
                        "endpoint taken out by outlier detection".into(),
                    );
                    return Err(unsent(error, req));
                }
                let slot = match connection_slot(upstream, limits, deadline, own).await {
                    Ok(Slot::Pooled(s)) => {
                        pooled_attempts += 1;
                        s
                    }
                    Ok(Slot::New(slot)) => {
                        // Boxed: connecting (TLS and HTTP/2 handshakes) is a large future, and the
                        // request's own future stays small when it is not in it (most requests
                        // reuse a pooled connection).
                        let connecting =
                            Box::pin(conn::connect(upstream.address, timeouts.connect, slot, tls));
                        match connecting.await {
                            Ok(s) => {
                                upstream.pool.share(&s);
                                s
                            }
                            Err(error) => return Err(unsent(error, req)),
                        }
                    }
                    Err(error) => return Err(unsent(error, req)),
                };
                slot
            }
        };
        if sender.own().is_some() && !own {
            sender = match sender.into_hyper(upstream.address).await {
                Ok(s) => s,
                Err(_) if is_pooled => continue,
                Err(error) => return Err(unsent(error, req)),
            };
        }
        if sender.ready().await.is_err() {
            if is_pooled {
                continue;
            }
            let error = ProxyError::Connect(
                ConnectCause::Other,
                "connection closed before the request was sent".into(),
            );
            return Err(unsent(error, req));
        }
        // Awaited per protocol, without a wrapper future, so the request moves as few times as it can.
        let sent = match sender.protocol() {
            Protocol::Own(c) => match h1::send_until(c, &req, forwarding, deadline).await {
                None => {
                    return Err(Failure {
                        error: ProxyError::Timeout,
                        unsent: None,
                    })
                }
                Some(Ok(head)) => return Ok(Answer::Own(head, sender)),
                Some(Err(h1::TryError::Unanswered(e)))
                    if is_pooled && crate::retry::idempotent(req.method()) =>
                {
                    tracing::debug!(upstream = %upstream.address, error = %e, "pooled connection closed without an answer; retrying on another");
                    if let Some(m) = metrics {
                        m.retried();
                    }
                    continue;
                }
                Some(Err(h1::TryError::Unanswered(e) | h1::TryError::Failed(e))) => {
                    return Err(Failure {
                        error: ProxyError::Upstream(e),
                        unsent: None,
                    })
                }
            },
            Protocol::H1(s) => {
                forwarding.apply(req.headers_mut());
                tokio::time::timeout_at(deadline, s.try_send_request(req)).await
            }
            Protocol::H2(s) => {
                forwarding.apply(req.headers_mut());
                tokio::time::timeout_at(deadline, s.try_send_request(conn::to_h2(req))).await
            }
        };
        match sent {
            Err(_) => {
                return Err(Failure {
                    error: ProxyError::Timeout,
                    unsent: None,
                })
            }
            Ok(Ok(resp)) => return Ok(Answer::Hyper(resp, sender)),
            Ok(Err(mut e)) => match e.take_message() {
                Some(back) if is_pooled => {
                    tracing::debug!(upstream = %upstream.address, error = %e.error(), "pooled connection failed before sending; retrying on another");
                    if let Some(m) = metrics {
                        m.retried();
                    }
                    req = back;
                }
                Some(back) => {
                    return Err(unsent(
                        ProxyError::Connect(ConnectCause::Other, e.into_error().to_string()),
                        back,
                    ))
                }
                None => {
                    return Err(Failure {
                        error: ProxyError::Upstream(e.into_error().to_string()),
                        unsent: None,
                    })
                }
            },
        }
    }
}

fn unsent(error: ProxyError, req: Request<RequestBody>) -> Failure {
    Failure {
        error,
        unsent: Some(Box::new(req)),
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
    own: bool,
) -> Result<Slot, ProxyError> {
    loop {
        if let Some(slot) = upstream.cluster.try_connection(limits.max_connections) {
            return Ok(Slot::New(slot));
        }
        let waited =
            tokio::time::timeout_at(deadline, upstream.cluster.wait_for_slot(limits.max_pending))
                .await;
        match waited {
            Err(_) => return Err(ProxyError::Timeout),
            Ok(None) => return Err(ProxyError::CircuitOpen("max_pending")),
            Ok(Some(())) => {}
        }
        if let Some(s) = upstream.pool.take(own) {
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
            crate::pool::Pool::new(edgeplane_config::model::Pool {
                max_idle_per_endpoint: 1,
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
        };
        let req = http::Request::new(crate::request_body::RequestBody::Buffered(None));
        let deadline = tokio::time::Instant::now();
        let v = http::HeaderValue::from_static("x");
        let mut forwarding = crate::forwarding::Forwarding::new(&v, &v, &v, None, 0, 0);
        let f = super::send(&up, &settings, deadline, req, &mut forwarding, None);
        let size = std::mem::size_of_val(&f);
        assert!(size <= 2048, "a try's future is {size} bytes");
    }
}
