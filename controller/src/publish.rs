//! The publisher's side of a config push: find the fleet, write the document with compare-and-set,
//! gather every node's acknowledgement, and report (`edgeplane push`).

use async_nats::jetstream;
use edgeplane_bus::jetstream::{config_bucket, CONFIG_HISTORY, CONFIG_KEY};
use edgeplane_bus::rollout::{RolloutRecord, ROLLOUT_KEY};
use edgeplane_bus::wire::{AckStatus, ConfigAck, NodeStatus, ValidateReply};
use edgeplane_bus::{decode, Subjects};
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// KV bucket.
    pub bucket: String,
    /// Replicas of the bucket if this push creates it.
    pub replicas: usize,
    /// Only write if the current revision is this one (the version the publisher started from).
    pub expect_revision: Option<u64>,
    /// Write whatever the current revision is.
    pub force: bool,
    /// How long to look for nodes before pushing.
    pub discover: Duration,
    /// How long to wait for acknowledgements.
    pub timeout: Duration,
}

/// Why a push did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The document is invalid; nothing was written.
    #[error("invalid document:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
    /// The current revision is not the one the publisher started from.
    #[error("revision conflict: the current revision is {current}, not {expected}; fetch it, re-apply your change, or use --force")]
    Conflict {
        /// Revision in the bucket.
        current: u64,
        /// Revision the publisher expected.
        expected: u64,
    },
    /// A staged rollout is in progress: a plain push would reach every node at once.
    #[error("{0}")]
    RolloutActive(String),
    /// NATS or JetStream failed.
    #[error("{0}")]
    Bus(String),
}

/// What happened to a push.
#[derive(Debug, Default)]
pub struct PushReport {
    /// The revision written, or the one that already held this document.
    pub revision: u64,
    /// True when the bucket already held exactly this document, so nothing was written.
    pub unchanged: bool,
    /// Content hash of the document.
    pub hash: String,
    /// Nodes that applied it.
    pub applied: BTreeSet<String>,
    /// Nodes that rejected it, with their errors.
    pub rejected: BTreeMap<String, Vec<String>>,
    /// Nodes that were found before the push but did not answer in time.
    pub silent: BTreeSet<String>,
    /// Per node that answered: the time from the write's confirmation by the server to its answer
    /// arriving here (the answer's own trip back included).
    pub answered_after: BTreeMap<String, Duration>,
}

impl PushReport {
    /// True when every node that answered or was expected applied the document.
    pub fn all_applied(&self) -> bool {
        self.rejected.is_empty() && self.silent.is_empty()
    }
}

/// The nodes that answer a status request within `window`.
pub async fn discover(
    client: &async_nats::Client,
    subjects: &Subjects,
    window: Duration,
) -> Result<Vec<NodeStatus>, PushError> {
    discover_until(client, subjects, window, usize::MAX).await
}

/// The nodes that answer a status request within `window`, or as soon as `enough` answered.
pub async fn discover_until(
    client: &async_nats::Client,
    subjects: &Subjects,
    window: Duration,
    enough: usize,
) -> Result<Vec<NodeStatus>, PushError> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.map_err(bus)?;
    client
        .publish_with_reply(subjects.status(), inbox, bytes::Bytes::new())
        .await
        .map_err(bus)?;
    client.flush().await.map_err(bus)?;
    let deadline = Instant::now() + window;
    let mut nodes = Vec::new();
    while nodes.len() < enough {
        let Ok(Some(msg)) = tokio::time::timeout_at(deadline, replies.next()).await else {
            break;
        };
        match node_reply(&msg) {
            Some(Ok(status)) => nodes.push(status),
            Some(Err(e)) => tracing::warn!(error = %e, "ignoring a malformed status reply"),
            None => {
                tracing::debug!(status = ?msg.status, "status request: a server status, not a node")
            }
        }
    }
    Ok(nodes)
}

/// A node's reply to a status request, or `None` for a status of the server itself (503 "no
/// responders" when no node listens: an empty message with a status header).
fn node_reply(msg: &async_nats::Message) -> Option<Result<NodeStatus, edgeplane_bus::DecodeError>> {
    if msg.status.is_some() {
        return None;
    }
    Some(decode::<NodeStatus>(&msg.payload))
}

/// Pushes a routing document (any config text: routes and clusters are taken, `[node]` is ignored).
pub async fn push(
    client: &async_nats::Client,
    subjects: &Subjects,
    text: &str,
    opts: &PushOptions,
) -> Result<PushReport, PushError> {
    let (document, routing) =
        edgeplane_config::document_of_file_text(text).map_err(|e| PushError::Invalid(e.lines()))?;
    let hash = routing.hash.to_string();
    let kv = open_config(client, &opts.bucket, opts.replicas).await?;
    if !opts.force {
        refuse_during_rollout(&kv).await?;
    }
    let current = current_entry(&kv).await?;
    let current_revision = current.as_ref().map_or(0, |e| e.revision);
    if let Some(expected) = opts.expect_revision {
        if expected != current_revision && !opts.force {
            return Err(PushError::Conflict {
                current: current_revision,
                expected,
            });
        }
    }
    if let Some(entry) = &current {
        let same = edgeplane_config::document_from_text(&String::from_utf8_lossy(&entry.value))
            .map(|r| r.hash.to_string() == hash)
            .unwrap_or(false);
        if same {
            return Ok(PushReport {
                revision: entry.revision,
                unchanged: true,
                hash,
                ..PushReport::default()
            });
        }
    }

    let expected_nodes: BTreeSet<String> = discover(client, subjects, opts.discover)
        .await?
        .into_iter()
        .map(|n| n.node)
        .collect();
    // Subscribe to acks before writing, so that no answer is missed.
    let mut acks = client.subscribe(subjects.ack_all()).await.map_err(bus)?;
    client.flush().await.map_err(bus)?;

    let bytes = bytes::Bytes::from(document.into_bytes());
    let written = if opts.force {
        kv.put(CONFIG_KEY, bytes).await.map_err(bus)?
    } else if current.is_some() {
        kv.update(CONFIG_KEY, bytes, current_revision)
            .await
            .map_err(|e| {
                if e.kind() == async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision {
                    PushError::Conflict {
                        current: current_revision + 1,
                        expected: current_revision,
                    }
                } else {
                    PushError::Bus(e.to_string())
                }
            })?
    } else {
        kv.create(CONFIG_KEY, bytes)
            .await
            .map_err(|e| PushError::Bus(format!("{e} (another publisher wrote first? retry)")))?
    };

    let mut report = PushReport {
        revision: written,
        hash,
        ..PushReport::default()
    };
    let written_at = Instant::now();
    let deadline = written_at + opts.timeout;
    let mut waiting = expected_nodes.clone();
    while !waiting.is_empty() || expected_nodes.is_empty() {
        let msg = match tokio::time::timeout_at(deadline, acks.next()).await {
            Ok(Some(msg)) => msg,
            _ => break,
        };
        let ack: ConfigAck = match decode(&msg.payload) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a malformed ack");
                continue;
            }
        };
        if ack.revision != written {
            continue;
        }
        waiting.remove(&ack.node);
        report
            .answered_after
            .insert(ack.node.clone(), written_at.elapsed());
        match ack.status {
            AckStatus::Applied => {
                report.applied.insert(ack.node);
            }
            AckStatus::Rejected => {
                report.rejected.insert(ack.node, ack.errors);
            }
        }
    }
    report.silent = waiting;
    Ok(report)
}

/// What the fleet says of a document it was asked to check (`edgeplane push --dry-run`).
#[derive(Debug, Default)]
pub struct DryRunReport {
    /// Content hash of the document.
    pub hash: String,
    /// Nodes that would apply it.
    pub valid: BTreeSet<String>,
    /// Nodes that would reject it, with every error.
    pub invalid: BTreeMap<String, Vec<String>>,
    /// Nodes found online that did not answer in time.
    pub silent: BTreeSet<String>,
}

impl DryRunReport {
    /// True when every node that was found would apply the document.
    pub fn all_valid(&self) -> bool {
        self.invalid.is_empty() && self.silent.is_empty()
    }
}

/// Asks every online node whether it would apply `text` (any config text: routes and clusters are
/// taken, `[node]` is ignored), without writing anything.
pub async fn dry_run(
    client: &async_nats::Client,
    subjects: &Subjects,
    text: &str,
    opts: &PushOptions,
) -> Result<DryRunReport, PushError> {
    let (document, routing) =
        edgeplane_config::document_of_file_text(text).map_err(|e| PushError::Invalid(e.lines()))?;
    let mut waiting: BTreeSet<String> = discover(client, subjects, opts.discover)
        .await?
        .into_iter()
        .map(|n| n.node)
        .collect();
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.map_err(bus)?;
    client
        .publish_with_reply(subjects.validate(), inbox, bytes::Bytes::from(document))
        .await
        .map_err(bus)?;
    client.flush().await.map_err(bus)?;
    let mut report = DryRunReport {
        hash: routing.hash.to_string(),
        ..DryRunReport::default()
    };
    let deadline = Instant::now() + opts.timeout;
    while !waiting.is_empty() {
        let Ok(Some(msg)) = tokio::time::timeout_at(deadline, replies.next()).await else {
            break;
        };
        if msg.status.is_some() {
            continue;
        }
        match decode::<ValidateReply>(&msg.payload) {
            Ok(r) => {
                waiting.remove(&r.node);
                if r.valid {
                    report.valid.insert(r.node);
                } else {
                    report.invalid.insert(r.node, r.errors);
                }
            }
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed dry-run reply"),
        }
    }
    report.silent = waiting;
    Ok(report)
}

/// One node as the fleet last heard of it.
#[derive(Debug, Clone)]
pub struct FleetEntry {
    /// Its last status.
    pub status: NodeStatus,
    /// Seconds since that status was reported.
    pub age_s: u64,
    /// Whether it answered a status request just now.
    pub online: bool,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Every node: those that answer a status request now, plus those that announced themselves within
/// the last hour but are silent now.
pub async fn fleet(
    client: &async_nats::Client,
    subjects: &Subjects,
    window: Duration,
) -> Result<Vec<FleetEntry>, PushError> {
    let mut entries: BTreeMap<String, FleetEntry> = discover(client, subjects, window)
        .await?
        .into_iter()
        .map(|status| {
            (
                status.node.clone(),
                FleetEntry {
                    status,
                    age_s: 0,
                    online: true,
                },
            )
        })
        .collect();
    let js = jetstream::new(client.clone());
    // Read only: the nodes create this bucket (with their replicas), never a reader.
    let Ok(bucket) = js
        .get_key_value(edgeplane_bus::jetstream::NODES_BUCKET)
        .await
    else {
        return Ok(entries.into_values().collect());
    };
    let mut keys = bucket.keys().await.map_err(bus)?;
    let now = unix_now();
    while let Some(key) = keys.next().await {
        let Ok(key) = key else { continue };
        if entries.contains_key(&key) {
            continue;
        }
        if let Ok(Some(entry)) = bucket.entry(key.clone()).await {
            if let Ok(status) = decode::<NodeStatus>(&entry.value) {
                let age_s = (now - entry.created.unix_timestamp()).max(0) as u64;
                entries.insert(
                    key,
                    FleetEntry {
                        status,
                        age_s,
                        online: false,
                    },
                );
            }
        }
    }
    Ok(entries.into_values().collect())
}

/// One revision of the config document.
#[derive(Debug, Clone)]
pub struct Revision {
    /// KV revision.
    pub revision: u64,
    /// Seconds since it was written.
    pub age_s: u64,
    /// Content hash, or why the document is invalid.
    pub hash: Result<String, String>,
    /// Size in bytes.
    pub size: usize,
}

/// The revisions the bucket keeps, oldest first.
pub async fn history(
    client: &async_nats::Client,
    bucket: &str,
) -> Result<Vec<Revision>, PushError> {
    let Ok(kv) = jetstream::new(client.clone()).get_key_value(bucket).await else {
        // No bucket yet: no history (reading never creates it).
        return Ok(Vec::new());
    };
    let mut revisions = Vec::new();
    let mut entries = match kv.history(CONFIG_KEY).await {
        Ok(h) => h,
        // No key yet: no history.
        Err(_) => return Ok(revisions),
    };
    let now = unix_now();
    while let Some(entry) = entries.next().await {
        let entry = entry.map_err(bus)?;
        let text = String::from_utf8_lossy(&entry.value);
        revisions.push(Revision {
            revision: entry.revision,
            age_s: (now - entry.created.unix_timestamp()).max(0) as u64,
            hash: edgeplane_config::document_from_text(&text)
                .map(|r| r.hash.to_string())
                .map_err(|e| e.to_string()),
            size: entry.value.len(),
        });
    }
    Ok(revisions)
}

/// The document of `revision` (default: the current one) with its revision, read without creating
/// the bucket; `None` when there is none.
pub async fn document_at(
    client: &async_nats::Client,
    bucket: &str,
    revision: Option<u64>,
) -> Result<Option<(u64, String)>, PushError> {
    let Ok(kv) = jetstream::new(client.clone()).get_key_value(bucket).await else {
        return Ok(None);
    };
    let entry = match revision {
        Some(r) => kv.entry_for_revision(CONFIG_KEY, r).await.map_err(bus)?,
        None => kv.entry(CONFIG_KEY).await.map_err(bus)?,
    };
    Ok(entry
        .filter(|e| e.operation == async_nats::jetstream::kv::Operation::Put)
        .map(|e| (e.revision, String::from_utf8_lossy(&e.value).into_owned())))
}

/// The staged rollout's record, read without creating the bucket; `None` without one (or when it
/// does not decode).
pub async fn rollout_record(
    client: &async_nats::Client,
    bucket: &str,
) -> Result<Option<RolloutRecord>, PushError> {
    let Ok(kv) = jetstream::new(client.clone()).get_key_value(bucket).await else {
        return Ok(None);
    };
    Ok(kv
        .entry(ROLLOUT_KEY)
        .await
        .map_err(bus)?
        .filter(|e| e.operation == async_nats::jetstream::kv::Operation::Put)
        .and_then(|e| decode::<RolloutRecord>(&e.value).ok()))
}

/// Pushes an earlier revision's document again as a new revision (default: the one before the current
/// one), with the same checks, compare-and-set and report as [`push`].
pub async fn rollback(
    client: &async_nats::Client,
    subjects: &Subjects,
    to: Option<u64>,
    opts: &PushOptions,
) -> Result<(u64, PushReport), PushError> {
    let kv = open_config(client, &opts.bucket, opts.replicas).await?;
    let current = current_entry(&kv).await?.ok_or_else(|| {
        PushError::Bus("nothing was pushed yet: no revision to roll back to".into())
    })?;
    let target = match to {
        Some(r) => r,
        None => history(client, &opts.bucket)
            .await?
            .iter()
            .rev()
            .map(|r| r.revision)
            .find(|&r| r < current.revision)
            .ok_or_else(|| {
                PushError::Bus(format!(
                    "revision {} is the only one kept",
                    current.revision
                ))
            })?,
    };
    let old = kv
        .entry_for_revision(CONFIG_KEY, target)
        .await
        .map_err(|e| PushError::Bus(format!("revision {target}: {e}")))?
        .ok_or_else(|| PushError::Bus(format!("revision {target} is not kept in the bucket")))?;
    let text = String::from_utf8_lossy(&old.value).into_owned();
    let opts = PushOptions {
        expect_revision: opts.expect_revision.or(Some(current.revision)),
        ..opts.clone()
    };
    Ok((target, push(client, subjects, &text, &opts).await?))
}

/// Opens the config bucket, creating it with `replicas` copies if needed.
pub(crate) async fn open_config(
    client: &async_nats::Client,
    bucket: &str,
    replicas: usize,
) -> Result<async_nats::jetstream::kv::Store, PushError> {
    config_bucket(
        &jetstream::new(client.clone()),
        bucket,
        CONFIG_HISTORY,
        replicas,
    )
    .await
    .map_err(bus)
}

/// How often `push_cluster` re-reads and retries when another publisher wrote in between.
const CLUSTER_RETRIES: usize = 5;

/// Replaces one cluster in the current document (read, modify, compare-and-set write), retrying on a
/// concurrent write, then reports like [`push`]. `source` is any config text that defines the cluster.
pub async fn push_cluster(
    client: &async_nats::Client,
    subjects: &Subjects,
    name: &str,
    source: &str,
    opts: &PushOptions,
) -> Result<PushReport, PushError> {
    let kv = open_config(client, &opts.bucket, opts.replicas).await?;
    let mut last = None;
    for _ in 0..CLUSTER_RETRIES {
        let current = current_entry(&kv).await?.ok_or_else(|| {
            PushError::Bus("nothing was pushed yet: push a whole config first".into())
        })?;
        let text = edgeplane_config::replace_cluster(
            &String::from_utf8_lossy(&current.value),
            name,
            source,
        )
        .map_err(|e| PushError::Invalid(e.lines()))?;
        let attempt = PushOptions {
            expect_revision: Some(current.revision),
            force: false,
            ..opts.clone()
        };
        match push(client, subjects, &text, &attempt).await {
            Err(e @ PushError::Conflict { .. }) => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| PushError::Bus("gave up after repeated conflicts".into())))
}

/// Refuses while a staged rollout is active (its driver's lease not run out).
async fn refuse_during_rollout(kv: &async_nats::jetstream::kv::Store) -> Result<(), PushError> {
    let Some(entry) = kv.entry(ROLLOUT_KEY).await.map_err(bus)? else {
        return Ok(());
    };
    if entry.operation != async_nats::jetstream::kv::Operation::Put {
        return Ok(());
    }
    match decode::<RolloutRecord>(&entry.value) {
        Ok(r) if r.phase.active() && !r.expired(crate::follow::now_ms()) => {
            Err(PushError::RolloutActive(format!(
                "rollout {} is in progress (wave {} of {}, candidate revision {}): a push now \
                 would reach every node at once; abort the rollout, let it finish, or use --force",
                r.id,
                r.wave + 1,
                r.plan.waves.len(),
                r.candidate
            )))
        }
        _ => Ok(()),
    }
}

/// The current value of the config key, if any.
async fn current_entry(
    kv: &async_nats::jetstream::kv::Store,
) -> Result<Option<async_nats::jetstream::kv::Entry>, PushError> {
    kv.entry(CONFIG_KEY).await.map_err(bus)
}

/// A NATS or JetStream failure as a push error.
fn bus(e: impl std::fmt::Display) -> PushError {
    PushError::Bus(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(
        payload: &'static str,
        status: Option<async_nats::StatusCode>,
    ) -> async_nats::Message {
        async_nats::Message {
            subject: "_INBOX.x".into(),
            reply: None,
            payload: bytes::Bytes::from_static(payload.as_bytes()),
            headers: None,
            status,
            description: None,
            length: payload.len(),
        }
    }

    #[test]
    fn no_responders_is_a_server_status_not_a_malformed_reply() {
        let none = message("", Some(async_nats::StatusCode::NO_RESPONDERS));
        assert!(node_reply(&none).is_none());
        assert!(
            matches!(node_reply(&message("", None)), Some(Err(_))),
            "empty reply from a peer"
        );
        let status = r#"{"schema":1,"node":"n1","boot_id":"b","version":"0","revision":3,"hash":"h","uptime_s":1,"requests":0,"connections":0}"#;
        let Some(Ok(s)) = node_reply(&message(status, None)) else {
            panic!("a node's reply")
        };
        assert_eq!(
            (s.node.as_str(), s.revision, s.handled),
            ("n1", 3, 0),
            "handled defaults to 0"
        );
    }
}
