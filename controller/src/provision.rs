//! `edgeplane provision`: creates the fleet's JetStream assets (the config bucket, the nodes bucket
//! and the scaling stream) with the replicas wanted, so that nodes and publishers can run with
//! permissions that do not allow creating them (least privilege, docs/bus.md). Existing assets are
//! left as they are and reported with their replica count.

use async_nats::jetstream;
use edgeplane_bus::jetstream::{
    config_bucket, leases_bucket, nodes_bucket, scale_stream, CONFIG_HISTORY,
};
use edgeplane_bus::{BusError, Subjects};

/// One asset and its replicas on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// Stream name (`KV_<bucket>` for a bucket).
    pub stream: String,
    /// Replicas the server keeps.
    pub replicas: usize,
}

/// Creates (when absent) and describes the config bucket `bucket`, the nodes bucket and the scaling
/// stream `scale`, with `replicas` copies each.
pub async fn provision(
    client: &async_nats::Client,
    subjects: &Subjects,
    bucket: &str,
    scale: &str,
    replicas: usize,
) -> Result<Vec<Asset>, BusError> {
    let js = jetstream::new(client.clone());
    config_bucket(&js, bucket, CONFIG_HISTORY, replicas).await?;
    nodes_bucket(&js, replicas).await?;
    leases_bucket(&js, replicas).await?;
    scale_stream(&js, scale, subjects.scale_all(), replicas).await?;
    let mut assets = Vec::new();
    for name in [
        format!("KV_{bucket}"),
        format!("KV_{}", edgeplane_bus::jetstream::NODES_BUCKET),
        format!("KV_{}", edgeplane_bus::jetstream::LEASES_BUCKET),
        scale.to_string(),
    ] {
        let mut stream = js
            .get_stream(&name)
            .await
            .map_err(|e| BusError::JetStream(format!("open stream {name}: {e}")))?;
        let info = stream
            .info()
            .await
            .map_err(|e| BusError::JetStream(format!("stream {name}: {e}")))?;
        assets.push(Asset {
            stream: name,
            replicas: info.config.num_replicas,
        });
    }
    Ok(assets)
}
