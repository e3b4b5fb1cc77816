//! Dry runs: a node answers `<prefix>.validate` requests (payload: a routing document) with whether it
//! would apply the document, checked as a push would be (validation, then everything applying it
//! builds: routes, clusters, upstream TLS, certificates, the node's own constraints), without applying
//! it. `edgeplane push --dry-run` asks every online node.

use crate::identity::Identity;
use crate::RoutingSink;
use edgeplane_bus::wire::ValidateReply;
use edgeplane_bus::{encode, Subjects, SCHEMA_VERSION};
use futures_util::StreamExt;
use std::sync::Arc;

/// This node's verdict on `text`.
pub fn verdict(identity: &Identity, sink: &dyn RoutingSink, text: &str) -> ValidateReply {
    let (valid, hash, errors) = match edgeplane_config::document_from_text(text) {
        Err(e) => (false, None, e.lines()),
        Ok(routing) => {
            let hash = Some(routing.hash.to_string());
            match sink.check(&routing) {
                Ok(()) => (true, hash, Vec::new()),
                Err(e) => (false, hash, e.0),
            }
        }
    };
    ValidateReply {
        schema: SCHEMA_VERSION,
        node: identity.node.clone(),
        boot_id: identity.boot_id.clone(),
        valid,
        hash,
        errors,
    }
}

/// Answers dry-run requests until the task is dropped. Checks run one at a time, off the request
/// path (a check builds a throwaway snapshot).
pub async fn serve(
    client: async_nats::Client,
    subjects: Subjects,
    identity: Identity,
    sink: Arc<dyn RoutingSink>,
) {
    let mut requests = match client.subscribe(subjects.validate()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot subscribe to dry-run requests");
            return;
        }
    };
    while let Some(req) = requests.next().await {
        let Some(reply) = req.reply else { continue };
        let text = String::from_utf8_lossy(&req.payload).into_owned();
        let (identity, sink) = (identity.clone(), sink.clone());
        let answer =
            tokio::task::spawn_blocking(move || verdict(&identity, sink.as_ref(), &text)).await;
        match answer {
            Ok(answer) => {
                if let Err(e) = client.publish(reply, encode(&answer)).await {
                    tracing::warn!(error = %e, "cannot answer a dry-run request");
                }
            }
            Err(e) => tracing::error!(error = %e, "a dry-run check failed to run"),
        }
    }
}
