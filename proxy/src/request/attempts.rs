//! The attempt sequence of one request, in one place: the first try on the picked endpoint, then
//! retries while the policy, the retry budget and the deadlines allow. [`Attempts`] owns everything a
//! retry needs: the endpoints tried, the total and per-try deadlines, the replay copy of the request, the
//! place in the retry budget, the backoff before the next try and the affinity naming the endpoint
//! that answered.
//!
//! The policy's pieces live beside it: which requests may be replayed and the backoff in
//! [`crate::request::retry`], what a failure costs its endpoint and where a retry goes in
//! [`crate::request::next_try`], one try in [`crate::request::send`] (whose failures say which retry condition they
//! meet).

use crate::downstream::body::ClientBody;
use crate::error::ProxyError;
use crate::request::added_headers::AddedHeaders;
use crate::request::next_try::{charge_failure, next_try, Locator, NextTry, Retrying};
use crate::request::request_body::{RequestBody, Upload, UploadState};
use crate::request::retry::{self, Replay};
use crate::request::send::{Answer, Failure};
use crate::request::shared::Shared;
use crate::telemetry::RouteMetrics;
use crate::upstream::cluster_state::RetrySlot;
use crate::upstream::{InFlight, Upstream};
use edgeplane_config::model::{ClusterTimeouts, Retry, RetryOn};
use http::{HeaderName, HeaderValue, Request, StatusCode};
use http_body::Body as _;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::time::Instant;

/// The affinity header or cookie naming the endpoint that answers.
pub(crate) type AffinityHeader = Option<(HeaderName, HeaderValue)>;

/// Where a request was routed, as the retries need it.
pub(crate) struct Routed {
    /// The request's cluster, to find it again in a later snapshot.
    pub(crate) locator: Locator,
    /// The request's hash key, if the cluster balances by one.
    pub(crate) key: Option<u64>,
    /// The affinity token the client sent, if any.
    pub(crate) token: Option<u64>,
    /// The affinity header for the first endpoint, if the cluster has affinity.
    pub(crate) affinity: AffinityHeader,
    /// Whether the cluster has affinity (a retry's endpoint then gets its own header).
    pub(crate) has_affinity: bool,
}

/// A request's body made ready for its tries, or to be read whole first.
pub(crate) enum Prepared {
    /// Ready to send: streamed from the client, or empty.
    Ready(Request<RequestBody>),
    /// Replayable: read the body whole, then send (and keep a copy).
    ToBuffer(Request<ClientBody>),
}

/// The tries of one request.
pub(crate) struct Attempts<'a> {
    shared: &'a Shared,
    routed: Routed,
    policy: Retry,
    /// Each try's wait for response headers.
    response_header: std::time::Duration,
    /// The request's total deadline, if the cluster sets one.
    deadline: Option<Instant>,
    /// The copy to send again, for a replayable request.
    replay: Option<Box<Replay>>,
    /// The request may be sent again (idempotent, its body buffered): its buffered copy is kept for
    /// that. A mirrored request's body is buffered too, for the mirror's sake only.
    replayable: bool,
    /// A gRPC call's head, kept while its body is copied as it streams (see [`retry`]).
    call_head: Option<Box<Replay>>,
    /// The upload's progress, for a request whose body streams from the client.
    upload: Option<Arc<UploadState>>,
    /// The route's limit on the body, enforced as it streams.
    max_request_body: Option<u64>,
    /// Tries made so far.
    tries: u32,
    /// Endpoints tried so far.
    tried: Vec<SocketAddr>,
    /// The current retry's place in the retry budget.
    _slot: Option<RetrySlot>,
}

/// A try that got response headers: the answer, the endpoint's in-flight count it holds, and the
/// affinity header naming that endpoint.
pub(crate) struct Settled {
    /// The response head and its connection.
    pub(crate) answer: Answer,
    /// Keeps the request counted on its endpoint until the response body ends.
    pub(crate) in_flight: InFlight,
    /// The affinity header or cookie to add to the response.
    pub(crate) affinity: AffinityHeader,
}

impl<'a> Attempts<'a> {
    /// The tries of a request routed as `routed`, under its cluster's retry `policy` and `timeouts`
    /// (the route's where it sets them; the total deadline starts now), its streamed body cut after
    /// `max_request_body` bytes.
    #[inline(always)]
    pub(crate) fn new(
        shared: &'a Shared,
        routed: Routed,
        policy: Retry,
        timeouts: &ClusterTimeouts,
        max_request_body: Option<u64>,
    ) -> Attempts<'a> {
        Attempts {
            shared,
            routed,
            policy,
            response_header: timeouts.response_header,
            deadline: timeouts.total.map(|t| Instant::now() + t),
            replay: None,
            replayable: false,
            call_head: None,
            upload: None,
            max_request_body,
            tries: 0,
            tried: Vec::new(),
            _slot: None,
        }
    }

    /// Whether `req` is a gRPC call the cluster retries on some gRPC statuses.
    fn retries_grpc(&self, req: &Request<ClientBody>) -> bool {
        self.policy.attempts > 0
            && self.policy.on.0 & RetryOn::GRPC.0 != 0
            && crate::grpc::is_call(req.headers())
    }

    /// Makes the request's body ready for its tries without waiting: a request that cannot be
    /// replayed streams from the client, watched so that a broken upload is answered as the client's
    /// fault (no watch, and no allocation, for a request without a body). A replayable request comes
    /// back to be read whole first ([`retry::buffer`], within [`Attempts::read_timeout`]), its copy
    /// kept with [`Attempts::replay_with`]; so does a `mirrored` one with a body (its size was
    /// checked against the mirror's `max_body`).
    pub(crate) fn prepare(
        &mut self,
        req: Request<ClientBody>,
        upgrade: bool,
        mirrored: bool,
    ) -> Prepared {
        let copied = mirrored && !req.body().is_end_stream();
        self.replayable = retry::replayable(&req, &self.policy, upgrade);
        if copied || self.replayable {
            Prepared::ToBuffer(req)
        } else if req.body().is_end_stream() {
            if self.retries_grpc(&req) {
                self.replay = Some(Box::new(Replay::head(&req)));
            }
            Prepared::Ready(req.map(|_| RequestBody::Buffered(None)))
        } else {
            let state = Arc::new(UploadState::default());
            self.upload = Some(state.clone());
            let limit = self.max_request_body;
            let copy = self.retries_grpc(&req).then(|| {
                self.call_head = Some(Box::new(Replay::head(&req)));
                self.policy.buffer_body as u64
            });
            Prepared::Ready(req.map(|b| RequestBody::Streamed(Upload::new(b, state, limit, copy))))
        }
    }

    /// How long a replayable request's body may take to arrive: a try's wait for response headers.
    pub(crate) fn read_timeout(&self) -> std::time::Duration {
        self.response_header
    }

    /// Whether the request may be sent again (decided by [`Attempts::prepare`]): only then does
    /// [`retry::buffer`] keep a copy of it.
    pub(crate) fn replayable(&self) -> bool {
        self.replayable
    }

    /// Keeps the copy a replayable request's retries send.
    pub(crate) fn replay_with(&mut self, replay: Option<Box<Replay>>) {
        self.replay = replay;
    }

    /// The deadline of a try sent at `sent`: its wait for response headers, within the total.
    pub(crate) fn try_deadline(&self, sent: Instant) -> Instant {
        let own = sent + self.response_header;
        self.deadline.map_or(own, |total| total.min(own))
    }

    /// The answer the client gets, with the affinity header of the endpoint that gave it.
    pub(crate) fn settle(&mut self, answer: Answer, in_flight: InFlight) -> Settled {
        Settled {
            answer,
            in_flight,
            affinity: self.routed.affinity.take(),
        }
    }

    /// Moves the request to the next try's endpoint: its in-flight count, the cluster admission the
    /// request holds, the retry-budget slot and the affinity header naming it.
    pub(crate) fn advance(&mut self, mut in_flight: InFlight, next: NextTry) -> InFlight {
        let admission = in_flight.take_admission();
        if self.routed.has_affinity {
            self.routed.affinity = next.affinity;
        }
        self._slot = next.slot;
        next.upstream.start_request().holding(admission)
    }

    /// Books an answer on its endpoint (`latency`: since its try started); a status the policy
    /// retries gets the next try, if any.
    pub(crate) fn after_answer(
        &mut self,
        answer: &Answer,
        upstream: &Arc<Upstream>,
        latency: std::time::Duration,
        added: &mut AddedHeaders<'_>,
    ) -> Option<(Request<RequestBody>, NextTry)> {
        // A 5xx or 429 is a failure for balancing and outlier detection: an endpoint that answers
        // errors fast must not look like a fast endpoint.
        let status = answer.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            charge_failure(self.shared, &self.routed.locator, upstream, None);
        } else {
            upstream.record_success(latency);
            if upstream.on_trial() {
                crate::upstream::outlier::trial_passed(upstream);
            }
        }
        let grpc = self.policy.on.0 & RetryOn::GRPC.0 != 0
            && answer
                .trailers_only_grpc()
                .is_some_and(|c| self.policy.on.grpc(c));
        let wanted =
            (self.policy.on.status(status.as_u16()) || grpc) && self.tries < self.policy.attempts;
        if !wanted {
            return None;
        }
        if self.replay.is_none() {
            // A gRPC call whose body was copied whole as it streamed.
            let copied = self.upload.as_ref().and_then(|u| u.take_copy());
            if let (Some(body), Some(head)) = (copied, self.call_head.take()) {
                let body = (!body.is_empty()).then_some(body);
                self.replay = Some(Box::new(head.with_body(body)));
                self.upload = None;
            }
        }
        // Nothing to send again: no retry (and no endpoint counted as tried).
        self.replay.as_ref()?;
        let next = self.next(upstream, true)?;
        added.reset();
        let again = self.replay.as_ref()?.request();
        tracing::debug!(upstream = %upstream.address, status = status.as_u16(), "retrying a failed answer");
        Some((again, next))
    }

    /// Books a failed try; the next try if the failure's retry condition is one the policy retries
    /// and there is a request to send, else the error to answer.
    pub(crate) fn after_failure(
        &mut self,
        failure: Failure,
        upstream: &Arc<Upstream>,
        added: &mut AddedHeaders<'_>,
    ) -> Result<(Request<RequestBody>, NextTry), ProxyError> {
        let Failure {
            error,
            retry_on,
            unsent,
        } = failure;
        // A broken upload, or one the client had not finished when the try's time was up, is the
        // client's doing: answered as such, never charged to the endpoint.
        if let Some(client) = client_fault(self.upload.as_deref(), &error) {
            tracing::debug!(upstream = %upstream.address, error = %error, "the client's upload failed the try");
            return Err(client);
        }
        let connect = match &error {
            ProxyError::Connect(cause, detail) => Some((*cause, detail.as_str())),
            _ => None,
        };
        charge_failure(self.shared, &self.routed.locator, upstream, connect);
        let wanted = retry_on.0 != 0
            && self.policy.on.contains(retry_on)
            && self.tries < self.policy.attempts;
        if !wanted {
            return Err(error);
        }
        // Nothing reached an upstream: the retry does not spend the budget.
        let never_sent = connect.is_some() && unsent.is_some();
        // A request handed back unsent keeps what was done to its headers; a copy from the replay is
        // fresh.
        let again = match unsent {
            Some(r) => *r,
            None => match &self.replay {
                Some(r) => {
                    added.reset();
                    r.request()
                }
                None => return Err(error),
            },
        };
        match self.next(upstream, !never_sent) {
            Some(next) => {
                tracing::debug!(upstream = %upstream.address, error = %error, "retrying a failed try");
                Ok((again, next))
            }
            None => Err(error),
        }
    }

    /// The endpoint for the next try, avoiding those tried (`budgeted`: whether it spends the retry
    /// budget).
    fn next(&mut self, upstream: &Upstream, budgeted: bool) -> Option<NextTry> {
        self.tried.push(upstream.address);
        let retrying = Retrying {
            tries: self.tries + 1,
            budgeted,
        };
        let Routed {
            locator,
            key,
            token,
            ..
        } = &self.routed;
        next_try(
            self.shared,
            locator,
            *key,
            *token,
            &self.tried,
            &self.policy,
            retrying,
        )
    }

    /// Waits the next try's backoff, unless that would pass the total deadline.
    pub(crate) async fn wait(
        &mut self,
        next: &NextTry,
        metrics: Option<&RouteMetrics>,
    ) -> Result<(), ProxyError> {
        self.tries += 1;
        if let Some(d) = self.deadline {
            if Instant::now() + next.backoff >= d {
                return Err(ProxyError::Timeout);
            }
        }
        if !next.backoff.is_zero() {
            tokio::time::sleep(next.backoff).await;
        }
        if let Some(m) = metrics {
            m.retried();
        }
        Ok(())
    }
}

/// The error to answer when a failed try was the client's doing: its streamed body outgrew the
/// route's limit or broke (malformed, or the client went away mid-upload), or the try timed out
/// waiting for the client's body.
fn client_fault(upload: Option<&UploadState>, error: &ProxyError) -> Option<ProxyError> {
    let upload = upload?;
    if upload.too_large() {
        return Some(ProxyError::PayloadTooLarge);
    }
    if upload.failed() {
        return Some(ProxyError::BadRequest(
            "request body could not be read (malformed, or cut short by the client)",
        ));
    }
    (matches!(error, ProxyError::Timeout) && upload.waiting_on_client())
        .then_some(ProxyError::ClientTimeout)
}
