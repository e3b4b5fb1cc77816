//! Retries: which requests may be replayed, the copy kept to replay them, backoff and the budget.
//!
//! A request is replayed only if it is idempotent (RFC 9110 section 9.2.2) and its body is empty or
//! small enough to be buffered whole (`retry.buffer_body`); others are streamed and never sent twice.
//! A connect failure is retried for any request, since nothing reached an upstream. A gRPC call
//! (a POST, of unknown length) whose cluster retries on gRPC statuses keeps a copy of its body as it
//! streams ([`crate::request::request_body::Upload`]'s copy, up to `buffer_body`), so that a
//! trailers-only answer with such a status can be replayed once the body was sent whole.

use crate::downstream::body::ClientBody;
use crate::error::ProxyError;
use crate::request::request_body::RequestBody;
use bytes::Bytes;
use edgeplane_config::model::Retry;
use http::{HeaderMap, Method, Request, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use std::time::Duration;

/// What is kept of a replayable request to send it again.
#[derive(Debug)]
pub(crate) struct Replay {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Option<Bytes>,
}

impl Replay {
    /// What is kept of `req` but its body (for a gRPC call whose body is copied as it streams).
    pub(crate) fn head<B>(req: &Request<B>) -> Replay {
        Replay {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
            body: None,
        }
    }

    /// The same request with `body`.
    pub(crate) fn with_body(self, body: Option<Bytes>) -> Replay {
        Replay { body, ..self }
    }

    /// A new copy of the request.
    pub(crate) fn request(&self) -> Request<RequestBody> {
        let mut req = Request::new(RequestBody::Buffered(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// Whether a request with this method may be sent twice (RFC 9110 section 9.2.2).
pub(crate) fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Whether `policy` replays failed tries and this request may be replayed: idempotent, not an
/// upgrade, and a body that is empty or small enough to buffer (by its declared size).
pub(crate) fn replayable(req: &Request<ClientBody>, policy: &Retry, upgrade: bool) -> bool {
    if !policy.replays() || upgrade || !idempotent(req.method()) {
        return false;
    }
    let body = req.body();
    body.is_end_stream()
        || body
            .size_hint()
            .exact()
            .is_some_and(|n| n <= policy.buffer_body as u64)
}

/// Reads a request's body whole (within `read_timeout`) and, if it is `replayable`, keeps a copy of
/// the request for its retries (a request buffered only to be mirrored gets none).
pub(crate) async fn buffer(
    req: Request<ClientBody>,
    read_timeout: Duration,
    replayable: bool,
) -> Result<(Request<RequestBody>, Option<Box<Replay>>), ProxyError> {
    let (parts, body) = req.into_parts();
    let bytes = if body.is_end_stream() {
        None
    } else {
        let collected = tokio::time::timeout(read_timeout, body.collect())
            .await
            .map_err(|_| ProxyError::BadRequest("request body not received in time"))?
            .map_err(|_| ProxyError::BadRequest("request body could not be read"))?;
        Some(collected.to_bytes()).filter(|b| !b.is_empty())
    };
    let replay = replayable.then(|| {
        Box::new(Replay {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
            body: bytes.clone(),
        })
    });
    Ok((
        Request::from_parts(parts, RequestBody::Buffered(bytes)),
        replay,
    ))
}

/// The wait before retry number `n` (1-based): uniform in `0..=min(base × 2^(n-1), max)` ("full
/// jitter"), from a uniform random `draw`.
pub(crate) fn backoff(policy: &Retry, n: u32, draw: u64) -> Duration {
    let ceiling = policy
        .backoff_base
        .saturating_mul(1 << n.saturating_sub(1).min(16))
        .min(policy.backoff_max);
    let micros = ceiling.as_micros() as u64;
    Duration::from_micros(if micros == 0 { 0 } else { draw % (micros + 1) })
}

/// Retries allowed in flight for a cluster with `in_flight` requests: `budget_percent` of them, and
/// never fewer than `min_concurrent`.
pub(crate) fn budget(policy: &Retry, in_flight: u64) -> u32 {
    let share = in_flight * u64::from(policy.budget_percent) / 100;
    (share.min(u64::from(u32::MAX)) as u32).max(policy.min_concurrent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idempotent_methods_replay() {
        for m in [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            assert!(idempotent(&m), "{m}");
        }
        for m in [Method::POST, Method::PATCH, Method::CONNECT] {
            assert!(!idempotent(&m), "{m}");
        }
    }

    #[test]
    fn backoff_is_jittered_under_a_doubling_ceiling() {
        let p = Retry::DEFAULT;
        assert_eq!(
            backoff(&p, 1, u64::MAX),
            Duration::from_micros(u64::MAX % 25_001)
        );
        for n in 1..6 {
            let ceiling = (25_000u64 << (n - 1)).min(250_000);
            for draw in [0, 1, 12_345, 987_654_321, u64::MAX] {
                assert!(backoff(&p, n, draw) <= Duration::from_micros(ceiling));
            }
        }
        assert_eq!(backoff(&p, 30, 250_000), Duration::from_micros(250_000));
    }

    #[test]
    fn the_budget_scales_with_load_above_a_floor() {
        let p = Retry::DEFAULT;
        assert_eq!(budget(&p, 0), 3);
        assert_eq!(budget(&p, 10), 3);
        assert_eq!(budget(&p, 100), 20);
    }
}
