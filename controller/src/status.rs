//! Answers `<prefix>.status` requests with this node's [`NodeStatus`], so that `edgeplane push` knows
//! which nodes to wait for and `edgeplane fleet` can list them.

use crate::identity::Identity;
use crate::state::ConfigState;
use crate::RoutingSink;
use edgeplane_bus::wire::{NodeStatus, Traffic};
use edgeplane_bus::{encode, Subjects, SCHEMA_VERSION};
use futures_util::StreamExt;
use std::sync::{Arc, Mutex};

/// This node's status now.
pub fn snapshot(
    identity: &Identity,
    state: &Mutex<ConfigState>,
    sink: &dyn RoutingSink,
) -> NodeStatus {
    let (revision, handled) = state
        .lock()
        .map(|s| (s.revision, s.handled))
        .unwrap_or((0, 0));
    NodeStatus {
        schema: SCHEMA_VERSION,
        node: identity.node.clone(),
        boot_id: identity.boot_id.clone(),
        zone: identity.zone.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        revision,
        handled,
        hash: sink.current_hash().to_string(),
        uptime_s: identity.started.elapsed().as_secs(),
        requests: sink.requests(),
        connections: sink.connections(),
        traffic: Some(traffic(sink.traffic())),
    }
}

fn traffic(t: crate::TrafficCounts) -> Traffic {
    Traffic {
        answered: t.answered,
        status_5xx: t.status_5xx,
        proxy_errors: t.proxy_errors,
        headers_ms: t.headers_ms,
    }
}

/// Replies to status requests until the task is dropped.
pub async fn serve(
    client: async_nats::Client,
    subjects: Subjects,
    identity: Identity,
    state: Arc<Mutex<ConfigState>>,
    sink: Arc<dyn RoutingSink>,
) {
    let mut requests = match client.subscribe(subjects.status()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot subscribe to status requests");
            return;
        }
    };
    while let Some(req) = requests.next().await {
        let Some(reply) = req.reply else { continue };
        let status = snapshot(&identity, &state, sink.as_ref());
        if let Err(e) = client.publish(reply, encode(&status)).await {
            tracing::warn!(error = %e, "cannot answer a status request");
        }
    }
}
