//! Following heartbeats over core NATS: one subscription per cluster the routes use
//! (`<prefix>.hb.<cluster>.*`), kept in step with the routing in place. Each message is decoded,
//! checked against its subject, and handed to the [`Composer`]; a malformed one is counted, logged and
//! dropped.

use crate::composer::Composer;
use edgeplane_bus::wire::Heartbeat;
use edgeplane_bus::{decode, BusStats, Subjects};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Aborts the per-cluster tasks when dropped.
struct Followers(HashMap<String, JoinHandle<()>>);

impl Drop for Followers {
    fn drop(&mut self) {
        for t in self.0.values() {
            t.abort();
        }
    }
}

/// Keeps one heartbeat subscription per routed cluster until the task is dropped.
pub async fn run(
    client: async_nats::Client,
    subjects: Subjects,
    composer: Arc<Composer>,
    stats: Arc<BusStats>,
) {
    let mut routed = composer.routed();
    let mut followers = Followers(HashMap::new());
    loop {
        let want: Vec<String> = routed.borrow_and_update().clone();
        followers.0.retain(|cluster, task| {
            let keep = want.contains(cluster);
            if !keep {
                task.abort();
                tracing::info!(%cluster, "no longer following heartbeats");
            }
            keep
        });
        for cluster in want {
            if followers.0.contains_key(&cluster) {
                continue;
            }
            let task = tokio::spawn(follow(
                client.clone(),
                subjects.clone(),
                cluster.clone(),
                composer.clone(),
                stats.clone(),
            ));
            followers.0.insert(cluster, task);
        }
        if routed.changed().await.is_err() {
            return;
        }
    }
}

async fn follow(
    client: async_nats::Client,
    subjects: Subjects,
    cluster: String,
    composer: Arc<Composer>,
    stats: Arc<BusStats>,
) {
    let subject = match subjects.heartbeats_of(&cluster) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%cluster, error = %e, "cannot follow heartbeats");
            return;
        }
    };
    let mut attempt = 0usize;
    loop {
        match client.subscribe(subject.clone()).await {
            Ok(mut sub) => {
                attempt = 0;
                tracing::info!(%cluster, %subject, "following heartbeats");
                while let Some(msg) = sub.next().await {
                    take(&subjects, &cluster, &msg, &composer, &stats);
                }
                tracing::warn!(%cluster, "heartbeat subscription ended; subscribing again");
            }
            Err(e) => tracing::warn!(%cluster, error = %e, "cannot subscribe to heartbeats"),
        }
        attempt += 1;
        tokio::time::sleep(edgeplane_bus::connect::reconnect_delay(attempt.min(6))).await;
    }
}

/// Decodes one heartbeat message and hands it to the composer.
pub fn take(
    subjects: &Subjects,
    cluster: &str,
    msg: &async_nats::Message,
    composer: &Composer,
    stats: &BusStats,
) {
    stats
        .received
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let subject = msg.subject.as_str();
    let hb: Heartbeat = match decode(&msg.payload) {
        Ok(hb) => hb,
        Err(e) => return stats.decode_failed(subject, &e),
    };
    match subjects.parse_heartbeat(subject) {
        Some((c, instance)) if c == cluster && instance == hb.instance => {
            composer.heartbeat(cluster, &hb);
        }
        _ => {
            let e = edgeplane_bus::DecodeError::Invalid(vec![format!(
                "instance: {:?} does not match the subject",
                hb.instance
            )]);
            stats.decode_failed(subject, &e);
        }
    }
}
