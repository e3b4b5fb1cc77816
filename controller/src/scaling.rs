//! Following scaling events: every node reads the durable stream (`edge_scale`, subjects
//! `<prefix>.scale.*`) from its first message with an ordered consumer, so a node that starts later
//! replays the same events in the same order and reaches the same membership as its peers. Event ids
//! make the replay idempotent; a malformed event is counted, logged and skipped.

use crate::composer::Composer;
use crate::link::Link;
use crate::pushes::age_of;
use async_nats::jetstream::{self, consumer};
use edgeplane_bus::jetstream::scale_stream;
use edgeplane_bus::wire::ScaleEvent;
use edgeplane_bus::{decode, BusStats, Subjects};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Follows the scaling stream `stream` until the task is dropped; failures are logged and retried
/// (events already applied are recognised by their id). After every reconnection to NATS the
/// consumer is created afresh at once, from the event after the last one seen.
pub async fn run(
    client: async_nats::Client,
    subjects: Subjects,
    stream: String,
    replicas: usize,
    composer: Arc<Composer>,
    stats: Arc<BusStats>,
) {
    let mut attempt = 0usize;
    let mut last = 0u64;
    loop {
        let follower = Follower {
            client: &client,
            subjects: &subjects,
            name: &stream,
            replicas,
            composer: &composer,
            stats: &stats,
        };
        match follower.follow(&mut last).await {
            Ok(true) => {
                attempt = 0;
                continue;
            }
            Ok(false) => tracing::warn!("scaling stream ended; following again"),
            Err(e) => tracing::warn!(error = %e, "cannot follow scaling events; retrying"),
        }
        attempt += 1;
        tokio::time::sleep(edgeplane_bus::connect::reconnect_delay(attempt.min(6))).await;
    }
}

struct Follower<'a> {
    client: &'a async_nats::Client,
    subjects: &'a Subjects,
    name: &'a str,
    replicas: usize,
    composer: &'a Composer,
    stats: &'a BusStats,
}

impl Follower<'_> {
    /// Follows from the event after `last` (its stream sequence, 0 for the start), keeping `last`
    /// up to date. `Ok(true)`: the connection came back, follow again at once.
    async fn follow(&self, last: &mut u64) -> Result<bool, String> {
        let mut link = Link::new(self.stats);
        let js = edgeplane_bus::jetstream::node_context(self.client.clone());
        let Some(stream) = link
            .unless_reconnected(scale_stream(
                &js,
                self.name,
                self.subjects.scale_all(),
                self.replicas,
            ))
            .await
        else {
            return Ok(true);
        };
        let stream = stream.map_err(|e| e.to_string())?;
        let deliver_policy = match *last {
            0 => consumer::DeliverPolicy::All,
            seq => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            },
        };
        let config = consumer::push::OrderedConfig {
            deliver_subject: self.client.new_inbox(),
            filter_subject: self.subjects.scale_all(),
            deliver_policy,
            ..Default::default()
        };
        let setup = async {
            let consumer = stream
                .create_consumer(config)
                .await
                .map_err(|e| e.to_string())?;
            consumer.messages().await.map_err(|e| e.to_string())
        };
        let Some(messages) = link.unless_reconnected(setup).await else {
            return Ok(true);
        };
        let mut messages = messages?;
        tracing::info!(stream = %self.name, from = *last + 1, "following scaling events");
        loop {
            let Some(msg) = link.unless_reconnected(messages.next()).await else {
                return Ok(true);
            };
            let Some(msg) = msg else { return Ok(false) };
            let msg = msg.map_err(|e| e.to_string())?;
            if let Ok(info) = msg.info() {
                *last = (*last).max(info.stream_sequence);
            }
            self.take(&msg);
        }
    }

    fn take(&self, msg: &jetstream::Message) {
        self.stats
            .received
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let subject = msg.subject.as_str();
        let Some(cluster) = self.subjects.parse_scale(subject) else {
            let e =
                edgeplane_bus::DecodeError::Invalid(vec!["subject: not a scaling subject".into()]);
            return self.stats.decode_failed(subject, &e);
        };
        let event: ScaleEvent = match decode(&msg.payload) {
            Ok(ev) => ev,
            Err(e) => return self.stats.decode_failed(subject, &e),
        };
        let age = msg.info().map_or(Duration::ZERO, |i| {
            age_of(i.published.unix_timestamp_nanos())
        });
        self.composer.scale(cluster, &event, age);
    }
}
