//! Publishing scaling events (`edgeplane scale`): into the durable stream, with the event id as
//! JetStream's message id so that a retried publish is stored once.

use async_nats::jetstream;
use edgeplane_bus::jetstream::scale_stream;
use edgeplane_bus::wire::{ScaleAction, ScaleEvent, Validate};
use edgeplane_bus::{encode, Subjects, CONTENT_TYPE, SCHEMA_VERSION};

/// Why a scaling event was not stored.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// The event is invalid; nothing was published.
    #[error("invalid scaling event: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The bus refused or did not answer.
    #[error("{0}")]
    Bus(String),
}

/// Where an event was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The event id.
    pub id: String,
    /// Sequence in the stream.
    pub sequence: u64,
    /// Whether the stream already had this id (a repeated publish).
    pub duplicate: bool,
}

/// A new event id: time and process, unique enough for one publisher (ids may be any string).
pub fn new_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}", std::process::id())
}

/// Validates `action` for `cluster` and stores it in the scaling stream `stream` (created if absent).
pub async fn publish(
    client: &async_nats::Client,
    subjects: &Subjects,
    stream: &str,
    replicas: usize,
    cluster: &str,
    id: String,
    action: ScaleAction,
) -> Result<Stored, ScaleError> {
    let event = ScaleEvent {
        schema: SCHEMA_VERSION,
        id,
        action,
    };
    let problems = event.problems();
    if !problems.is_empty() {
        return Err(ScaleError::Invalid(problems));
    }
    let subject = subjects
        .scale(cluster)
        .map_err(|e| ScaleError::Invalid(vec![format!("cluster: {e}")]))?;
    let js = jetstream::new(client.clone());
    scale_stream(&js, stream, subjects.scale_all(), replicas)
        .await
        .map_err(|e| ScaleError::Bus(e.to_string()))?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, event.id.as_str());
    headers.insert("Content-Type", CONTENT_TYPE);
    let ack = js
        .publish_with_headers(subject, headers, encode(&event))
        .await
        .map_err(|e| ScaleError::Bus(e.to_string()))?
        .await
        .map_err(|e| ScaleError::Bus(e.to_string()))?;
    Ok(Stored {
        id: event.id,
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    })
}
