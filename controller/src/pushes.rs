//! Following config pushes: watch the KV key, decide, apply through the [`RoutingSink`], persist,
//! acknowledge. Runs until its task is dropped; every failure is logged and retried, and the last
//! applied config keeps serving meanwhile.

use crate::follow::{self, Bucket, Taken};
use crate::identity::Identity;
use crate::link::Link;
use crate::state::{ConfigState, Decision};
use crate::store::Store;
use crate::RoutingSink;
use async_nats::jetstream::kv;
use edgeplane_bus::jetstream::{config_bucket, CONFIG_HISTORY, CONFIG_KEY};
use edgeplane_bus::rollout::{CANDIDATE_KEY, ROLLOUT_KEY};
use edgeplane_bus::wire::{AckStatus, ConfigAck};
use edgeplane_bus::{encode, BusStats, Subjects, SCHEMA_VERSION};
use futures_util::StreamExt;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The config follower of one node.
pub struct Pushes {
    /// NATS client.
    pub client: async_nats::Client,
    /// Subjects of the fleet.
    pub subjects: Subjects,
    /// KV bucket name.
    pub bucket: String,
    /// Who we are.
    pub identity: Identity,
    /// Where applied configs go.
    pub sink: Arc<dyn RoutingSink>,
    /// Local copy of the last applied config.
    pub store: Store,
    /// What is applied (shared with the status responder).
    pub state: Arc<Mutex<ConfigState>>,
    /// Connection counters.
    pub stats: Arc<BusStats>,
    /// Apply results and push → applied latency.
    pub metrics: PushMetrics,
    /// Replicas of the config bucket, if this node creates it.
    pub replicas: usize,
    /// The staged rollout as this node sees it (for metrics).
    pub rollout: Arc<Mutex<follow::RolloutView>>,
}

/// How often a node reads the config key directly, besides its watch (see [`Pushes::run`]).
pub const RESYNC: Duration = Duration::from_secs(1);

/// Why a watch of the config key ended without an error.
enum Ended {
    /// The connection came back: watch again at once.
    Reconnected,
    /// The watch's stream closed.
    Closed,
}

/// What the config follower records.
#[derive(Debug, Clone)]
pub struct PushMetrics {
    /// Revisions applied.
    pub applied: metrics::Counter,
    /// Revisions rejected.
    pub rejected: metrics::Counter,
    /// From the revision's write to the bucket (server clock) until applied here, in seconds.
    pub latency: metrics::Histogram,
}

impl PushMetrics {
    /// Handles that record nothing.
    pub fn noop() -> PushMetrics {
        PushMetrics {
            applied: metrics::Counter::noop(),
            rejected: metrics::Counter::noop(),
            latency: metrics::Histogram::noop(),
        }
    }
}

impl Pushes {
    /// Applies the config saved on disk, if any, before NATS is reachable. Returns the revision applied.
    pub fn restore(&self) -> Option<u64> {
        let (revision, text) = match self.store.load() {
            Ok(Some(saved)) => saved,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the saved config; waiting for NATS");
                return None;
            }
        };
        match self.handle(revision, &text, None) {
            Some(AckStatus::Applied) => {
                tracing::info!(revision, "serving the saved config until NATS answers");
                Some(revision)
            }
            _ => None,
        }
    }

    /// Watches the config bucket forever: the current value of each key first, then every update.
    /// After every reconnection to NATS it watches afresh at once (a fresh watch delivers the newest
    /// revisions first), so a node converges as soon as it is back rather than when a stale consumer
    /// notices; and every [`RESYNC`] it reads the keys directly, in case the watch went stale without
    /// the connection dropping.
    pub async fn run(self) {
        let mut known = Bucket::default();
        let mut attempt = 0usize;
        loop {
            match self.watch(&mut known).await {
                Ok(Ended::Reconnected) => {
                    attempt = 0;
                    continue;
                }
                Ok(Ended::Closed) => tracing::warn!("config watch ended; watching again"),
                Err(e) => tracing::warn!(error = %e, "config watch failed; retrying"),
            }
            attempt += 1;
            tokio::time::sleep(edgeplane_bus::connect::reconnect_delay(attempt.min(6))).await;
        }
    }

    async fn watch(&self, known: &mut Bucket) -> Result<Ended, String> {
        let mut link = Link::new(&self.stats);
        let js = edgeplane_bus::jetstream::node_context(self.client.clone());
        let Some(kv) = link
            .unless_reconnected(config_bucket(
                &js,
                &self.bucket,
                CONFIG_HISTORY,
                self.replicas,
            ))
            .await
        else {
            return Ok(Ended::Reconnected);
        };
        let kv = kv.map_err(|e| e.to_string())?;
        // First direct gets (one round trip each, answered by any replica): they need no consumer,
        // so they work while a NATS cluster is still electing the leader that consumers need.
        if let Err(ended) = self.resync(&kv, &mut link, known).await {
            return Ok(ended);
        }
        // A fresh watch delivers the newest revision of every key first: after a reconnection,
        // that is where the bucket stands, read in one round trip. Every key of the bucket: the
        // current document, and a staged rollout's record and candidate.
        let Some(updates) = link.unless_reconnected(kv.watch_with_history(">")).await else {
            return Ok(Ended::Reconnected);
        };
        let mut updates = updates.map_err(|e| e.to_string())?;
        tracing::info!(bucket = %self.bucket, "following config pushes");
        let mut seen: HashSet<String> = HashSet::new();
        let mut resync = tokio::time::interval(RESYNC);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.reset();
        // The backstop's reads in flight. The watch is followed meanwhile: across a slow link a
        // read takes a round trip, and an update the watch delivers must not wait for it.
        let mut reading: Option<Reading<'_>> = None;
        // Keys the current round of reads got an answer for (found or absent).
        let mut read = 0;
        loop {
            let next = async {
                tokio::select! {
                    entry = updates.next() => Step::Entry(entry),
                    reads = in_flight(&mut reading) => Step::Read(reads),
                    _ = resync.tick(), if reading.is_none() => Step::Resync,
                }
            };
            let Some(next) = link.unless_reconnected(next).await else {
                tracing::info!("reconnected to NATS; watching the config bucket afresh");
                return Ok(Ended::Reconnected);
            };
            match next {
                Step::Entry(Some(entry)) => {
                    let entry = entry.map_err(|e| e.to_string())?;
                    let fresh = seen.insert(entry.key.clone());
                    if self.take(known, &entry, fresh) {
                        self.follow(known);
                    }
                }
                Step::Entry(None) => return Ok(Ended::Closed),
                // The backstop: a watch whose consumer lived on a server that died (on a NATS
                // cluster, without this node's connection dropping) only notices after missed idle
                // heartbeats; direct gets every second bound how stale a node can be. It also
                // notices a rollout whose driver's lease ran out.
                Step::Resync => {
                    read = 0;
                    reading = Some(Box::pin(read_keys(&kv, &[CONFIG_KEY, ROLLOUT_KEY])));
                }
                Step::Read(reads) => {
                    let (n, rollout_read) = self.take_reads(known, reads);
                    read += n;
                    reading = None;
                    if rollout_read && known.missing_candidate() {
                        reading = Some(Box::pin(read_keys(&kv, &[CANDIDATE_KEY])));
                    } else if read > 0 {
                        // Only with the bucket read: a node cut off from NATS keeps serving what it
                        // has.
                        self.follow(known);
                    }
                }
            }
        }
    }

    /// Reads the keys directly (at once: one round trip), then the rollout's candidate if that
    /// turns out to be missing, takes in what is newer than what was known, and serves the target.
    /// A failed read is logged (the watch or the next resync tries again); `Err(Reconnected)` when
    /// the connection came back meanwhile.
    async fn resync(
        &self,
        kv: &kv::Store,
        link: &mut Link,
        known: &mut Bucket,
    ) -> Result<(), Ended> {
        let mut keys: &[&'static str] = &[CONFIG_KEY, ROLLOUT_KEY];
        let mut read = 0;
        loop {
            let Some(reads) = link.unless_reconnected(read_keys(kv, keys)).await else {
                return Err(Ended::Reconnected);
            };
            let (n, rollout_read) = self.take_reads(known, reads);
            read += n;
            if !(rollout_read && known.missing_candidate()) {
                break;
            }
            keys = &[CANDIDATE_KEY];
        }
        if read > 0 {
            self.follow(known);
        }
        Ok(())
    }

    /// Takes in the entries read directly: how many keys were read (found or absent), and whether
    /// the rollout record was among them.
    fn take_reads(&self, known: &mut Bucket, reads: Reads) -> (usize, bool) {
        let (mut read, mut rollout_read) = (0, false);
        for (key, entry) in reads {
            let Some(entry) = entry else { continue };
            read += 1;
            rollout_read |= key == ROLLOUT_KEY;
            if let Some(entry) = entry.filter(|e| e.revision > known.revision(key)) {
                tracing::info!(
                    key,
                    revision = entry.revision,
                    "read a newer revision than the watch delivered"
                );
                self.take(known, &entry, false);
            }
        }
        (read, rollout_read)
    }

    /// Takes in one entry of the bucket (`fresh`: the first of its key since watching began);
    /// whether it changed what is known.
    fn take(&self, known: &mut Bucket, entry: &kv::Entry, fresh: bool) -> bool {
        self.stats
            .received
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let put = entry.operation == kv::Operation::Put;
        let taken = known.take(
            &follow::Entry {
                key: &entry.key,
                revision: entry.revision,
                value: put.then_some(entry.value.as_ref()),
                written: entry.created.unix_timestamp_nanos(),
            },
            fresh,
        );
        match taken {
            Taken::Changed => true,
            Taken::Same => false,
            Taken::Malformed(e) => {
                self.stats
                    .decode_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(revision = entry.revision, error = %e, "malformed rollout record dropped; keeping the last good one");
                false
            }
        }
    }

    /// Serves the document this node should serve now (applied once; a rejected one is not tried
    /// again).
    fn follow(&self, known: &Bucket) {
        let now = follow::now_ms();
        if let Some(doc) = known.target(&self.identity.node, self.identity.zone.as_deref(), now) {
            let serving = self.state.lock().map_or(0, |s| s.revision);
            if doc.revision != serving {
                if let Some(status) = self.handle(doc.revision, &doc.text, Some(doc.written)) {
                    tracing::debug!(revision = doc.revision, ?status, "config revision handled");
                }
            }
        }
        let serving = self.state.lock().map_or(0, |s| s.revision);
        if let Ok(mut view) = self.rollout.lock() {
            *view = follow::RolloutView::of(known.rollout(), serving, now);
        }
    }

    /// Decides, applies, persists and acknowledges one revision that was written to the bucket at
    /// `written` (Unix nanoseconds); `None` for the copy restored from disk, which is not acknowledged.
    /// Returns `None` when the revision is ignored.
    fn handle(&self, revision: u64, text: &str, written: Option<i128>) -> Option<AckStatus> {
        let ack = written.is_some();
        let decision = match self.state.lock() {
            Ok(s) => s.decide(revision, text),
            Err(_) => return None,
        };
        let (status, hash, errors) = match decision {
            Decision::Ignore => return None,
            Decision::Apply(routing) => match self.sink.apply(&routing) {
                Ok(hash) => {
                    if let Ok(mut s) = self.state.lock() {
                        s.applied(revision, hash);
                    }
                    if ack {
                        if let Err(e) = self.store.save(revision, text) {
                            tracing::error!(error = %e, "cannot save the applied config to disk");
                        }
                    }
                    if let Some(w) = written {
                        self.metrics.applied.increment(1);
                        self.metrics.latency.record(age_of(w).as_secs_f64());
                    }
                    tracing::info!(revision, hash = %hash.short(), "pushed config applied");
                    (AckStatus::Applied, Some(hash.to_string()), Vec::new())
                }
                Err(e) => {
                    self.reject(revision);
                    tracing::error!(revision, error = %e, "pushed config could not be built; keeping the current one");
                    (AckStatus::Rejected, Some(routing.hash.to_string()), e.0)
                }
            },
            Decision::Reject(errors) => {
                self.reject(revision);
                tracing::error!(revision, errors = ?errors, "pushed config rejected; keeping the current one");
                (AckStatus::Rejected, None, errors)
            }
        };
        if ack {
            self.ack(ConfigAck {
                schema: SCHEMA_VERSION,
                node: self.identity.node.clone(),
                boot_id: self.identity.boot_id.clone(),
                revision,
                hash,
                status,
                errors,
            });
        }
        Some(status)
    }

    fn reject(&self, revision: u64) {
        self.metrics.rejected.increment(1);
        if let Ok(mut s) = self.state.lock() {
            s.rejected(revision);
        }
    }

    fn ack(&self, ack: ConfigAck) {
        let subject = match self.subjects.ack(&self.identity.node) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the ack subject");
                return;
            }
        };
        let client = self.client.clone();
        let payload = encode(&ack);
        // Publishing only queues the message; a flush makes the ack leave promptly.
        tokio::spawn(async move {
            if let Err(e) = client.publish(subject, payload).await {
                tracing::warn!(error = %e, "cannot publish config ack");
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
        });
    }
}

/// What woke the watch loop.
enum Step {
    /// The watch delivered an entry, or ended (`None`).
    Entry(Option<Result<kv::Entry, kv::WatcherError>>),
    /// The backstop's reads came back.
    Read(Reads),
    /// Time for the backstop's reads.
    Resync,
}

/// Keys read directly, each with its entry (`None`: the read failed and was logged).
type Reads = Vec<(&'static str, Option<Option<kv::Entry>>)>;

/// Direct reads in flight, borrowing the bucket's handle.
type Reading<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Reads> + Send + 'a>>;

/// Reads `keys` of the bucket directly, all at once.
async fn read_keys(kv: &kv::Store, keys: &[&'static str]) -> Reads {
    let reads = keys.iter().map(|&key| async move {
        match kv.entry(key).await {
            Ok(entry) => (key, Some(entry)),
            Err(e) => {
                tracing::debug!(error = %e, key, "reading the config bucket failed");
                (key, None)
            }
        }
    });
    futures_util::future::join_all(reads).await
}

/// The reads in flight, if any; never resolves without.
async fn in_flight(reading: &mut Option<Reading<'_>>) -> Reads {
    match reading {
        Some(fut) => fut.await,
        None => std::future::pending().await,
    }
}

/// How long ago Unix time `nanos` was (zero if the clocks disagree).
pub fn age_of(nanos: i128) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    Duration::from_nanos(u64::try_from(now - nanos).unwrap_or(0))
}
