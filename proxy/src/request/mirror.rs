//! Request mirroring: a copy of a sampled request goes to the route's shadow cluster, fire and
//! forget. The decision is made with the routing (sampled share, body size known and within
//! `max_body`, fewer than `max_concurrent` copies in flight); the copy is made once the body is ready
//! (read whole, as for a replayable request) and carries the same forwarding headers as the original.
//! It runs on a task of its own, with the shadow cluster's balancing, limits and timeouts; its answer
//! is read to the end and dropped. Nothing of it reaches the client or delays its response, and a
//! failing shadow is only counted.

use crate::downstream::body::ClientBody;
use crate::request::added_headers::AddedHeaders;
use crate::request::admit::admit;
use crate::request::attempts::Settled;
use crate::request::request_body::RequestBody;
use crate::request::respond::respond;
use crate::request::send::{self, Settings};
use crate::tables::mirror::{MirrorOutcome, MirrorSlot};
use crate::tables::router::Route;
use crate::tables::{Snapshot, Tables};
use http::Request;
use http_body::Body as _;
use http_body_util::BodyExt as _;
use std::sync::Arc;
use tokio::time::Instant;

/// A request chosen to be mirrored, and where to.
#[derive(Debug)]
pub(crate) struct MirrorPlan {
    slot: MirrorSlot,
    /// The shadow cluster's index in the snapshot the plan was made on, and its name (to find it
    /// again if the tables changed meanwhile).
    cluster: usize,
    name: Arc<str>,
}

/// Whether `req`, routed by `route`, is to be mirrored (`upgrade`: it asks for a protocol switch,
/// which is never mirrored).
#[inline(always)]
pub(crate) fn plan(
    snapshot: &Snapshot,
    route: &Route,
    req: &Request<ClientBody>,
    upgrade: bool,
) -> Option<Box<MirrorPlan>> {
    let state = snapshot.mirrors.get(route.index())?.as_ref()?;
    if upgrade || !state.sampled() {
        return None;
    }
    let body = req.body();
    let fits = body.is_end_stream()
        || body
            .size_hint()
            .exact()
            .is_some_and(|n| n <= state.policy.max_body);
    if !fits {
        state.count(MirrorOutcome::TooLarge);
        return None;
    }
    Some(Box::new(MirrorPlan {
        slot: state.try_slot()?,
        cluster: state.policy.cluster,
        name: state.cluster.clone(),
    }))
}

/// Sends a copy of `req` (its body buffered, its forwarding headers `added`) as `plan` says, on a
/// task of its own; hands `req` back.
pub(crate) fn spawn(
    plan: Box<MirrorPlan>,
    req: Request<RequestBody>,
    added: &AddedHeaders<'_>,
    tables: &Arc<Tables>,
) -> Request<RequestBody> {
    let body = match req.body() {
        RequestBody::Buffered(b) => b.clone(),
        RequestBody::Streamed(_) => {
            plan.slot.count(MirrorOutcome::TooLarge);
            return req;
        }
    };
    let mut copy = Request::new(RequestBody::Buffered(body));
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    added.copy_into(copy.headers_mut());
    let tables = tables.clone();
    tokio::spawn(async move {
        let outcome = send_copy(&plan, copy, &tables).await;
        plan.slot.count(outcome);
    });
    req
}

/// Sends the copy to an endpoint of the shadow cluster and reads its answer to the end.
async fn send_copy(plan: &MirrorPlan, req: Request<RequestBody>, tables: &Tables) -> MirrorOutcome {
    let picked = {
        let snapshot = tables.guard();
        let cluster = snapshot
            .clusters
            .get(plan.cluster)
            .filter(|c| c.name == plan.name)
            .or_else(|| snapshot.clusters.iter().find(|c| c.name == plan.name));
        cluster.and_then(|c| {
            let endpoint = c.pick_affine(None, None)?;
            let in_flight = admit(c, endpoint).ok()?;
            Some((in_flight, c.timeouts, c.limits, c.tls.clone(), c.h2c))
        })
    };
    let Some((in_flight, timeouts, limits, tls, h2c)) = picked else {
        return MirrorOutcome::Failed;
    };
    let settings = Settings {
        timeouts: &timeouts,
        limits: &limits,
        tls: tls.as_deref(),
        h2c,
        upgrade: false,
    };
    let started = Instant::now();
    let head_by = started
        + timeouts.total.map_or(timeouts.response_header, |t| {
            t.min(timeouts.response_header)
        });
    let mut added = AddedHeaders::in_map();
    let answer = match send::send(
        in_flight.upstream(),
        &settings,
        (started, head_by),
        req,
        &mut added,
        None,
    )
    .await
    {
        Ok(answer) => answer,
        Err(_) => return MirrorOutcome::Failed,
    };
    let settled = Settled {
        answer,
        in_flight,
        affinity: None,
    };
    let Ok(resp) = respond(settled, None, None, None, None) else {
        return MirrorOutcome::Failed;
    };
    // The answer is read to its end (so its connection goes back to the pool) and dropped, within
    // one more response-header timeout.
    let mut body = resp.into_body();
    let drained = tokio::time::timeout(timeouts.response_header, async {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                return false;
            }
        }
        true
    })
    .await;
    match drained {
        Ok(true) => MirrorOutcome::Answered,
        _ => MirrorOutcome::Failed,
    }
}
