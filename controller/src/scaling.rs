//! Following scaling events: every node reads the durable stream (`edge_scale`, subjects
//! `<prefix>.scale.*`) from its first message with an ordered consumer, so a node that starts later
//! replays the same events in the same order and reaches the same membership as its peers. Event ids
//! make the replay idempotent; a malformed event is counted, logged and skipped.

use crate::composer::Composer;
use crate::pushes::age_of;
use async_nats::jetstream::{self, consumer};
use edgeplane_bus::jetstream::scale_stream;
use edgeplane_bus::wire::ScaleEvent;
use edgeplane_bus::{decode, BusStats, Subjects};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Follows the scaling stream `stream` until the task is dropped; failures are logged and retried
/// (events already applied are recognised by their id).
pub async fn run(
    client: async_nats::Client,
    subjects: Subjects,
    stream: String,
    composer: Arc<Composer>,
    stats: Arc<BusStats>,
) {
    let mut attempt = 0usize;
    loop {
        match follow(&client, &subjects, &stream, &composer, &stats).await {
            Ok(()) => tracing::warn!("scaling stream ended; following again"),
            Err(e) => tracing::warn!(error = %e, "cannot follow scaling events; retrying"),
        }
        attempt += 1;
        tokio::time::sleep(edgeplane_bus::connect::reconnect_delay(attempt.min(6))).await;
    }
}

async fn follow(
    client: &async_nats::Client,
    subjects: &Subjects,
    name: &str,
    composer: &Composer,
    stats: &BusStats,
) -> Result<(), String> {
    let js = jetstream::new(client.clone());
    let stream = scale_stream(&js, name, subjects.scale_all())
        .await
        .map_err(|e| e.to_string())?;
    let consumer = stream
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: subjects.scale_all(),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    tracing::info!(stream = %name, "following scaling events");
    while let Some(msg) = messages.next().await {
        let msg = msg.map_err(|e| e.to_string())?;
        stats
            .received
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let subject = msg.subject.as_str();
        let Some(cluster) = subjects.parse_scale(subject) else {
            let e =
                edgeplane_bus::DecodeError::Invalid(vec!["subject: not a scaling subject".into()]);
            stats.decode_failed(subject, &e);
            continue;
        };
        let event: ScaleEvent = match decode(&msg.payload) {
            Ok(ev) => ev,
            Err(e) => {
                stats.decode_failed(subject, &e);
                continue;
            }
        };
        let age = msg.info().map_or(Duration::ZERO, |i| {
            age_of(i.published.unix_timestamp_nanos())
        });
        composer.scale(cluster, &event, age);
    }
    Ok(())
}
