//! JetStream resources: the config KV bucket (history kept for rollback) and the scaling-event stream.
//!
//! async-nats' `create_key_value` fails against nats-server 2.9 (its account-info reply lacks fields
//! the client requires), so the bucket's stream is created directly with the settings a KV bucket has
//! (`KV_<bucket>`, subjects `$KV.<bucket>.>`, one message per subject per history slot, rollup
//! allowed, delete denied, direct get allowed, discard new), and then opened with `get_key_value`.
//! This works on 2.9 and on current 2.1x servers alike.

use crate::BusError;
use async_nats::jetstream::{self, kv, stream};
use std::time::Duration;

/// Default name of the config bucket.
pub const CONFIG_BUCKET: &str = "edge_config";
/// The key under which the current routing document lives.
pub const CONFIG_KEY: &str = "current";
/// Default number of revisions the config bucket keeps (for `history` and `rollback`).
pub const CONFIG_HISTORY: i64 = 64;

/// Bucket where nodes announce themselves, one key per node.
pub const NODES_BUCKET: &str = "edge_nodes";
/// Announcements older than this disappear from the nodes bucket.
pub const NODES_MAX_AGE: Duration = Duration::from_secs(3600);
/// The leases bucket: one key per lease (e.g. `autoscale`), its value the holder's node id.
pub const LEASES_BUCKET: &str = "edge_leases";
/// A lease not renewed within this long expires (the bucket's `max_age`).
pub const LEASE_TTL: Duration = Duration::from_secs(10);

/// Default name of the scaling-event stream.
pub const SCALE_STREAM: &str = "edge_scale";
/// Scaling events kept per cluster subject; older ones are discarded first.
pub const SCALE_HISTORY_PER_CLUSTER: i64 = 100_000;

/// How long a node waits for a JetStream API answer before asking again. A request that lands on a
/// server while its cluster elects a new leader may go unanswered; the client's default (5 s) would
/// keep a node that long on a stale revision, so nodes ask again sooner (they retry at once).
pub const NODE_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// The JetStream context a node uses: [`NODE_REQUEST_TIMEOUT`] per request.
pub fn node_context(client: async_nats::Client) -> jetstream::Context {
    let mut js = jetstream::new(client);
    js.set_timeout(NODE_REQUEST_TIMEOUT);
    js
}

/// Opens the scaling-event stream `name` capturing `subjects` (`<prefix>.scale.>`), creating it if
/// it does not exist. Publishing with a `Nats-Msg-Id` header deduplicates within two minutes.
pub async fn scale_stream(
    js: &jetstream::Context,
    name: &str,
    subjects: String,
    replicas: usize,
) -> Result<stream::Stream, BusError> {
    if let Ok(s) = js.get_stream(name).await {
        return Ok(s);
    }
    let config = stream::Config {
        name: name.to_string(),
        subjects: vec![subjects],
        max_messages_per_subject: SCALE_HISTORY_PER_CLUSTER,
        discard: stream::DiscardPolicy::Old,
        duplicate_window: Duration::from_secs(120),
        num_replicas: replicas,
        ..Default::default()
    };
    match js.create_stream(config).await {
        Ok(s) => return Ok(s),
        Err(e) if e.to_string().contains("already in use") => {}
        Err(e) => return Err(BusError::JetStream(format!("create stream {name}: {e}"))),
    }
    js.get_stream(name)
        .await
        .map_err(|e| BusError::JetStream(format!("open stream {name}: {e}")))
}

/// Opens the config bucket `bucket`, creating it (with `history` revisions per key, on `replicas`
/// servers) if it does not exist.
pub async fn config_bucket(
    js: &jetstream::Context,
    bucket: &str,
    history: i64,
    replicas: usize,
) -> Result<kv::Store, BusError> {
    kv_bucket(js, bucket, history, Duration::ZERO, replicas).await
}

/// Opens the nodes bucket, creating it on `replicas` servers if it does not exist (latest
/// announcement per node, kept an hour).
pub async fn nodes_bucket(js: &jetstream::Context, replicas: usize) -> Result<kv::Store, BusError> {
    kv_bucket(js, NODES_BUCKET, 1, NODES_MAX_AGE, replicas).await
}

/// Opens (creating if needed) the leases bucket: entries expire [`LEASE_TTL`] after their last write.
pub async fn leases_bucket(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<kv::Store, BusError> {
    kv_bucket(js, LEASES_BUCKET, 1, LEASE_TTL, replicas).await
}

/// Opens KV bucket `bucket`, creating its stream directly if needed (`max_age` zero: kept forever)
/// with `replicas` copies (1 on a single server; 3 on a NATS cluster survives losing one server).
/// An existing bucket is opened as it is: its replicas are not changed.
pub async fn kv_bucket(
    js: &jetstream::Context,
    bucket: &str,
    history: i64,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, BusError> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    let config = stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: history,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: replicas,
        max_age,
        ..Default::default()
    };
    match js.create_stream(config).await {
        Ok(_) => {}
        // Another node created it between our look and our create: fine.
        Err(e) if e.to_string().contains("already in use") => {}
        Err(e) => return Err(BusError::JetStream(format!("create bucket {bucket}: {e}"))),
    }
    js.get_key_value(bucket)
        .await
        .map_err(|e| BusError::JetStream(format!("open bucket {bucket}: {e}")))
}
