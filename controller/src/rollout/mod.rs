//! Staged rollouts (`edgeplane rollout`): a candidate document reaches the fleet in waves, each wave
//! baked and judged by gates against the nodes not yet updated, and undone without a person when a
//! gate fails. The state lives in the config bucket (the record, see [`edgeplane_bus::rollout`]), so
//! a rollout outlives its driver: `status`, `resume`, `abort` and `promote` work from anywhere.

mod driver;
pub mod gate;
pub mod plan;
mod record;
pub mod select;

pub use driver::{abort, promote, resume, start, status, Driver, StatusReport};

use std::sync::Arc;
use std::time::Duration;

/// Where the fleet is.
#[derive(Clone)]
pub struct Fleet {
    /// NATS client.
    pub client: async_nats::Client,
    /// Subjects of the fleet.
    pub subjects: edgeplane_bus::Subjects,
    /// Config bucket.
    pub bucket: String,
    /// Replicas of the bucket if this creates it.
    pub replicas: usize,
    /// Where progress lines go (the CLI prints them).
    pub progress: Arc<dyn Fn(&str) + Send + Sync>,
    /// How often the driver samples the fleet during a bake.
    pub sample_every: Duration,
}

/// How a driven rollout ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every wave passed; the candidate is `current` at this revision.
    Completed {
        /// The revision of `current` written.
        revision: u64,
    },
    /// A gate failed, a node rejected the candidate, or a wave did not apply it in time; the nodes
    /// went back to the base revision.
    RolledBack {
        /// Why, with the figures.
        reason: String,
        /// The nodes that served the candidate.
        nodes: Vec<String>,
        /// From the decision until the last of them served the base revision again (`None`: not
        /// all confirmed within the wait).
        took: Option<Duration>,
    },
    /// Waiting for a person (`promote` or `abort`).
    Paused {
        /// Why.
        reason: String,
    },
    /// Aborted (by `edgeplane rollout abort`, or superseded by a forced push).
    Aborted {
        /// Why.
        reason: String,
    },
}

/// Why a rollout command could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The document or the plan is invalid; nothing was written.
    #[error("invalid:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
    /// Another rollout is in progress, or another driver moves this one.
    #[error("{0}")]
    Busy(String),
    /// There is no rollout to act on.
    #[error("{0}")]
    Nothing(String),
    /// NATS or JetStream failed.
    #[error("{0}")]
    Bus(String),
}
