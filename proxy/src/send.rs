//! One try of a request on one endpoint: a pooled connection or a new one (within the cluster's
//! connection limit, waiting as a pending request if need be), then the request, until response
//! headers or the try's deadline.

use crate::body::RequestBody;
use crate::breaker::ConnSlot;
use crate::conn::{self, Sender};
use crate::error::ProxyError;
use crate::telemetry::RouteMetrics;
use crate::upstream::Upstream;
use crate::upstream_tls::TlsClient;
use edgeplane_config::model::{CircuitBreaker, ClusterTimeouts};
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::time::Instant;

/// How many pooled connections a try uses before it opens a fresh one.
const POOLED_ATTEMPTS: usize = 3;

/// A failed try: why, and the request if it was never sent (so it may go elsewhere as is).
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub error: ProxyError,
    /// The request, when nothing of it reached the upstream.
    pub unsent: Option<Request<RequestBody>>,
}

/// Sends `req` to `upstream` and waits for the response headers until `deadline`. A pooled
/// connection that turns out dead before the request went out is replaced transparently: hyper hands
/// the unsent request back.
pub async fn send(
    upstream: &Upstream,
    timeouts: &ClusterTimeouts,
    limits: &CircuitBreaker,
    deadline: Instant,
    mut req: Request<RequestBody>,
    metrics: Option<&RouteMetrics>,
    tls: Option<&TlsClient>,
) -> Result<(Response<Incoming>, Sender), Failure> {
    let mut pooled_attempts = 0;
    loop {
        let pooled = if pooled_attempts < POOLED_ATTEMPTS {
            upstream.pool.take()
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
                let slot = match connection_slot(upstream, limits, deadline).await {
                    Ok(Slot::Pooled(s)) => {
                        pooled_attempts += 1;
                        s
                    }
                    Ok(Slot::New(slot)) => {
                        match conn::connect(upstream.address, timeouts.connect, slot, tls).await {
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
        if sender.ready().await.is_err() {
            if is_pooled {
                continue;
            }
            let error = ProxyError::Connect("connection closed before the request was sent".into());
            return Err(unsent(error, req));
        }
        match tokio::time::timeout_at(deadline, sender.try_send_request(req)).await {
            Err(_) => {
                return Err(Failure {
                    error: ProxyError::Timeout,
                    unsent: None,
                })
            }
            Ok(Ok(resp)) => return Ok((resp, sender)),
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
                        ProxyError::Connect(e.into_error().to_string()),
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
        unsent: Some(req),
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
        if let Some(s) = upstream.pool.take() {
            return Ok(Slot::Pooled(s));
        }
    }
}
