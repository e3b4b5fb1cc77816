//! Periodic announcements: every few seconds a node writes its status to the nodes KV bucket (one key
//! per node, so `edgeplane fleet` sees each node's last report and when it was made) and publishes it on
//! `<prefix>.node.<node>` for live watchers.

use crate::identity::Identity;
use crate::state::ConfigState;
use crate::RoutingSink;
use edgeplane_bus::jetstream::nodes_bucket;
use edgeplane_bus::{encode, Subjects};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a node announces itself.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// Announces until the task is dropped; failures are logged and retried at the next tick.
pub async fn run(
    client: async_nats::Client,
    subjects: Subjects,
    identity: Identity,
    state: Arc<Mutex<ConfigState>>,
    sink: Arc<dyn RoutingSink>,
    replicas: usize,
) {
    let js = edgeplane_bus::jetstream::node_context(client.clone());
    let mut bucket = None;
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        let payload = encode(&crate::status::snapshot(&identity, &state, sink.as_ref()));
        if let Ok(subject) = subjects.node(&identity.node) {
            if let Err(e) = client.publish(subject, payload.clone()).await {
                tracing::debug!(error = %e, "cannot publish the node announcement");
            }
        }
        if bucket.is_none() {
            match nodes_bucket(&js, replicas).await {
                Ok(b) => bucket = Some(b),
                Err(e) => {
                    tracing::debug!(error = %e, "nodes bucket not available yet");
                    continue;
                }
            }
        }
        if let Some(b) = &bucket {
            if let Err(e) = b.put(&identity.node, payload).await {
                tracing::debug!(error = %e, "cannot record the node announcement");
                bucket = None;
            }
        }
    }
}
