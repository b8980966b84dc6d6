//! One rank's shard: a header line, a JSON line with the rank's state, then payload bytes standing in for the
//! rank's weights and optimizer state (a deterministic stream derived from the state digest, so a shard's
//! bytes are a function of the job's state and a flipped byte is caught by the manifest's SHA-256).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::CheckpointError;

const MAGIC: &str = "choir-shard v1\n";

/// What a shard records about its rank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    /// Job identifier.
    pub job_id: String,
    /// Fingerprint of the job's inputs.
    pub fingerprint: String,
    /// Global rank.
    pub rank: u32,
    /// Steps done when the shard was taken (the checkpoint's step).
    pub step: u32,
    /// The rank's state digest after `step` steps.
    pub digest: u64,
}

/// The file name of a rank's shard.
pub fn shard_file_name(rank: u32) -> String {
    format!("rank-{rank:05}.shard")
}

/// Encodes a shard with `payload_len` payload bytes.
pub(crate) fn encode(meta: &ShardMeta, payload_len: u64) -> Vec<u8> {
    let head = serde_json::to_string(meta).unwrap_or_default();
    let mut out = Vec::with_capacity(MAGIC.len() + head.len() + 1 + payload_len as usize);
    out.extend_from_slice(MAGIC.as_bytes());
    out.extend_from_slice(head.as_bytes());
    out.push(b'\n');
    let mut x = meta.digest ^ 0x9e37_79b9_7f4a_7c15;
    let mut left = payload_len as usize;
    while left > 0 {
        // splitmix64
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let take = left.min(8);
        out.extend_from_slice(&z.to_le_bytes()[..take]);
        left -= take;
    }
    out
}

/// Decodes a shard's bytes, checking that the payload is the one its state implies.
pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<ShardMeta, CheckpointError> {
    let body = bytes
        .strip_prefix(MAGIC.as_bytes())
        .ok_or_else(|| CheckpointError::corrupt(path, "no `choir-shard v1` header"))?;
    let nl = body
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| CheckpointError::corrupt(path, "no end to the state line"))?;
    let meta: ShardMeta = serde_json::from_slice(&body[..nl])
        .map_err(|e| CheckpointError::corrupt(path, format!("state line: {e}")))?;
    let payload_len = (body.len() - nl - 1) as u64;
    if encode(&meta, payload_len) != bytes {
        return Err(CheckpointError::corrupt(path, "payload does not match the recorded state"));
    }
    Ok(meta)
}
