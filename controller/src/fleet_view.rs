//! The fleet as one node sees it: every node's last announcement (`<prefix>.node.<node>`, every
//! [`crate::announce::INTERVAL`]), with the nodes bucket read at start for those silent now, and each
//! node's request rate from its last two announcements. What the admin API's `GET /api/v1/fleet`
//! serves, so that a dashboard gets the whole fleet from one HTTP call to any node.
//!
//! A node keeps this view only once it is asked for it ([`FleetNodes::want`], the admin API's first
//! `GET /api/v1/fleet`): every node following every node's announcements is N² messages (at 1,000
//! nodes, 200,000 deliveries a second for announcements every 5 s) and N² reads of the nodes bucket at
//! start, which a fleet pays for nothing when one or two nodes are asked.

use edgeplane_bus::wire::NodeStatus;
use edgeplane_bus::{decode, Subjects};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// A node not heard from for this long is offline (three missed announcements).
pub const ONLINE_WITHIN: Duration = Duration::from_secs(15);

/// What this node knows of one node.
#[derive(Debug, Clone)]
struct Seen {
    status: NodeStatus,
    /// Unix seconds of the announcement.
    at: f64,
    /// Requests per second between its last two announcements of the same boot.
    rate: Option<f64>,
}

/// One node of the fleet, as [`FleetNodes::nodes`] lists it.
#[derive(Debug, Clone)]
pub struct FleetNode {
    /// Its last announcement.
    pub status: NodeStatus,
    /// Seconds since it was made.
    pub last_seen_s: f64,
    /// Heard from within [`ONLINE_WITHIN`].
    pub online: bool,
    /// Requests per second received, from its last two announcements.
    pub requests_per_s: Option<f64>,
}

/// The fleet's nodes, kept current by [`follow`].
#[derive(Debug, Default)]
pub struct FleetNodes {
    nodes: Mutex<BTreeMap<String, Seen>>,
    /// Set by the first [`FleetNodes::want`]: [`follow`] starts then.
    wanted: AtomicBool,
    asked: Notify,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl FleetNodes {
    /// Asks for the view to be kept: the first call starts [`follow`]'s work (the nodes bucket is
    /// read within a second or so, announcements are followed from then on).
    pub fn want(&self) {
        if !self.wanted.swap(true, Relaxed) {
            // Stored as a permit if `follow` is not waiting yet.
            self.asked.notify_one();
        }
    }

    /// Whether the view is being kept.
    pub fn is_wanted(&self) -> bool {
        self.wanted.load(Relaxed)
    }

    /// Resolves once [`FleetNodes::want`] was called.
    async fn wanted(&self) {
        if !self.is_wanted() {
            self.asked.notified().await;
        }
    }

    /// Records `status`, announced at unix time `at`.
    pub fn record(&self, status: NodeStatus, at: f64) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let rate = nodes.get(&status.node).and_then(|prev| {
            let dt = at - prev.at;
            (prev.status.boot_id == status.boot_id && dt >= 0.5)
                .then(|| status.requests.saturating_sub(prev.status.requests) as f64 / dt)
        });
        match nodes.get(&status.node) {
            // An older record (the bucket's, read late) never replaces a newer one.
            Some(prev) if prev.at > at => {}
            _ => {
                let rate = rate.or_else(|| nodes.get(&status.node).and_then(|p| p.rate));
                let node = status.node.clone();
                nodes.insert(node, Seen { status, at, rate });
            }
        }
    }

    /// Every node known, by id.
    pub fn nodes(&self) -> Vec<FleetNode> {
        let now = unix_now();
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes
            .values()
            .map(|s| {
                let age = (now - s.at).max(0.0);
                FleetNode {
                    status: s.status.clone(),
                    last_seen_s: age,
                    online: age < ONLINE_WITHIN.as_secs_f64(),
                    requests_per_s: s.rate,
                }
            })
            .collect()
    }
}

/// Once the view is wanted ([`FleetNodes::want`]), follows every node's announcements into `view`
/// until the task is dropped; first reads the nodes bucket for the nodes heard from before.
pub async fn follow(
    client: async_nats::Client,
    subjects: Subjects,
    view: std::sync::Arc<FleetNodes>,
) {
    view.wanted().await;
    let mut announcements = loop {
        match client.subscribe(subjects.node_all()).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow node announcements; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    read_bucket(&client, &view).await;
    let started = Instant::now();
    while let Some(message) = announcements.next().await {
        match decode::<NodeStatus>(&message.payload) {
            Ok(status) => view.record(status, unix_now()),
            Err(e) => {
                tracing::debug!(subject = %message.subject, error = %e, "ignoring a malformed node announcement")
            }
        }
        // The bucket may have been missing at start (a fresh deployment): read it once more.
        if started.elapsed() > ONLINE_WITHIN && started.elapsed() < ONLINE_WITHIN * 2 {
            read_bucket(&client, &view).await;
        }
    }
}

/// Records every announcement kept in the nodes bucket, at the time it was written.
async fn read_bucket(client: &async_nats::Client, view: &FleetNodes) {
    let js = async_nats::jetstream::new(client.clone());
    let Ok(bucket) = js
        .get_key_value(edgeplane_bus::jetstream::NODES_BUCKET)
        .await
    else {
        return;
    };
    let Ok(mut keys) = bucket.keys().await else {
        return;
    };
    while let Some(Ok(key)) = keys.next().await {
        if let Ok(Some(entry)) = bucket.entry(key).await {
            if let Ok(status) = decode::<NodeStatus>(&entry.value) {
                let at = entry.created.unix_timestamp_nanos() as f64 / 1e9;
                view.record(status, at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(node: &str, boot: &str, requests: u64) -> NodeStatus {
        NodeStatus {
            schema: 1,
            node: node.into(),
            boot_id: boot.into(),
            zone: None,
            version: "0".into(),
            revision: 3,
            handled: 3,
            hash: "h".into(),
            uptime_s: 1,
            requests,
            connections: 2,
            traffic: None,
        }
    }

    #[test]
    fn rates_come_from_two_announcements_of_one_boot() {
        let v = FleetNodes::default();
        let now = unix_now();
        v.record(status("a", "b1", 100), now - 10.0);
        assert_eq!(v.nodes()[0].requests_per_s, None);
        v.record(status("a", "b1", 600), now - 5.0);
        assert_eq!(v.nodes()[0].requests_per_s, Some(100.0));
        // A restart: counters start over, the last rate stands until the next pair.
        v.record(status("a", "b2", 10), now);
        let n = &v.nodes()[0];
        assert_eq!((n.requests_per_s, n.online), (Some(100.0), true));
        // An older record read late from the bucket changes nothing.
        v.record(status("a", "b0", 5), now - 100.0);
        assert_eq!(v.nodes()[0].status.boot_id, "b2");
        v.record(status("z", "b", 1), now - 60.0);
        assert!(!v.nodes()[1].online);
    }
}
