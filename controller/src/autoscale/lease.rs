//! A lease in the leases KV bucket: one holder at a time, by compare-and-set. The holder renews it
//! every third of [`LEASE_TTL`] (an update that names the revision it last wrote); anyone else tries
//! to create the key, which succeeds only once the holder stopped renewing and the bucket's
//! `max_age` removed it. A holder whose renewal fails (another took over, or the bus is down) stops
//! acting as the holder at once.

use async_nats::jetstream::kv;
use edgeplane_bus::jetstream::{leases_bucket, node_context, LEASE_TTL};

/// One node's side of one lease.
pub struct Lease {
    client: async_nats::Client,
    key: String,
    node: String,
    replicas: usize,
    bucket: Option<kv::Store>,
    /// The revision this node last wrote, while it holds the lease.
    held: Option<u64>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key)
            .field("node", &self.node)
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// Node `node`'s side of lease `key`.
    pub fn new(client: async_nats::Client, key: &str, node: &str, replicas: usize) -> Lease {
        Lease {
            client,
            key: key.to_string(),
            node: node.to_string(),
            replicas,
            bucket: None,
            held: None,
        }
    }

    /// How often [`Lease::hold`] should be called.
    pub fn renew_every() -> std::time::Duration {
        LEASE_TTL / 3
    }

    /// Takes or renews the lease; whether this node holds it now.
    pub async fn hold(&mut self) -> bool {
        if self.bucket.is_none() {
            let js = node_context(self.client.clone());
            match leases_bucket(&js, self.replicas).await {
                Ok(b) => self.bucket = Some(b),
                Err(e) => {
                    tracing::debug!(error = %e, "leases bucket not available");
                    self.held = None;
                    return false;
                }
            }
        }
        let Some(bucket) = &self.bucket else {
            return false;
        };
        let value = self.node.clone().into_bytes().into();
        let result = match self.held {
            Some(revision) => bucket
                .update(&self.key, value, revision)
                .await
                .map_err(|e| e.to_string()),
            None => bucket
                .create(&self.key, value)
                .await
                .map_err(|e| e.to_string()),
        };
        let was = self.held.is_some();
        self.held = result.ok();
        match (was, self.held.is_some()) {
            (false, true) => tracing::info!(lease = %self.key, "lease taken: this node leads"),
            (true, false) => {
                tracing::warn!(lease = %self.key, "lease lost: this node no longer leads")
            }
            _ => {}
        }
        self.held.is_some()
    }

    /// Whether this node held the lease at its last [`Lease::hold`].
    pub fn holds(&self) -> bool {
        self.held.is_some()
    }

    /// Gives the lease up (a clean stop), so that another node takes it at once.
    pub async fn release(&mut self) {
        if let (Some(bucket), Some(_)) = (&self.bucket, self.held.take()) {
            let _ = bucket.purge(&self.key).await;
        }
    }
}
