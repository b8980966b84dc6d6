//! The manifest: what a committed checkpoint holds, with a SHA-256 per shard.

use serde::{Deserialize, Serialize};

/// The format tag every manifest carries.
pub const MANIFEST_FORMAT: &str = "choir-checkpoint v1";

/// One shard as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// Global rank.
    pub rank: u32,
    /// File name inside the step directory.
    pub file: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Hex SHA-256 of the whole file.
    pub sha256: String,
    /// The rank's state digest it holds.
    pub digest: u64,
}

/// A committed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Job identifier.
    pub job_id: String,
    /// Fingerprint of the job's inputs (a checkpoint only restores the job it belongs to).
    pub fingerprint: String,
    /// Steps done when it was taken.
    pub step: u32,
    /// Ranks in the job.
    pub world: u32,
    /// One shard per rank, in rank order.
    pub shards: Vec<ShardRecord>,
}

impl Manifest {
    /// Total bytes of the shards.
    pub fn bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes).sum()
    }

    /// The recorded digest of every rank, in rank order.
    pub fn digests(&self) -> Vec<u64> {
        self.shards.iter().map(|s| s.digest).collect()
    }
}
