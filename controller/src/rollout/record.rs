//! The rollout record in the config bucket, read and written with compare-and-set on its revision, so
//! that two drivers (or a driver and an `abort`) never overwrite each other unseen.

use super::RolloutError;
use async_nats::jetstream::kv;
use edgeplane_bus::rollout::{RolloutRecord, ROLLOUT_KEY};
use edgeplane_bus::{decode, encode};

/// The record's key, with the revision last read.
pub struct Records {
    kv: kv::Store,
    revision: u64,
}

/// Why a compare-and-set write did not land.
pub enum WriteError {
    /// Someone wrote the record since it was read.
    Conflict,
    /// NATS failed.
    Bus(String),
}

impl Records {
    /// The record of bucket `kv`.
    pub fn new(kv: kv::Store) -> Records {
        Records { kv, revision: 0 }
    }

    /// The bucket.
    pub fn kv(&self) -> &kv::Store {
        &self.kv
    }

    /// Reads the record (`None` if there is none, or it was deleted).
    pub async fn read(&mut self) -> Result<Option<RolloutRecord>, RolloutError> {
        let entry = self.kv.entry(ROLLOUT_KEY).await.map_err(bus)?;
        let Some(entry) = entry else {
            self.revision = 0;
            return Ok(None);
        };
        self.revision = entry.revision;
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        decode::<RolloutRecord>(&entry.value)
            .map(Some)
            .map_err(|e| RolloutError::Bus(format!("the rollout record is malformed: {e}")))
    }

    /// Writes `record` if nobody wrote since the last read.
    pub async fn write(&mut self, record: &RolloutRecord) -> Result<(), WriteError> {
        let payload = encode(record);
        let written = if self.revision == 0 {
            self.kv.create(ROLLOUT_KEY, payload).await.map_err(|e| {
                if e.kind() == kv::CreateErrorKind::AlreadyExists {
                    WriteError::Conflict
                } else {
                    WriteError::Bus(e.to_string())
                }
            })
        } else {
            self.kv
                .update(ROLLOUT_KEY, payload, self.revision)
                .await
                .map_err(|e| {
                    if e.kind() == kv::UpdateErrorKind::WrongLastRevision {
                        WriteError::Conflict
                    } else {
                        WriteError::Bus(e.to_string())
                    }
                })
        }?;
        self.revision = written;
        Ok(())
    }
}

fn bus(e: impl std::fmt::Display) -> RolloutError {
    RolloutError::Bus(e.to_string())
}
