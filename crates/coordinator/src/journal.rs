//! The coordinator's job journal: what must survive a coordinator crash so that a restarted coordinator
//! resumes the job where it stopped (steps done, every rank's state digest, restarts used).
//!
//! The journal is encoded as a header line carrying a SHA-256 of the body, then the JSON body; [`decode`]
//! refuses anything whose checksum does not match. Storage goes through [`JournalStore`]: the CLI writes it
//! atomically (temp file, fsync, rename), tests keep it in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::CoordinatorError;

const MAGIC: &str = "choir-journal v1 sha256=";

/// The durable state of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalState {
    /// Job identifier.
    pub job_id: String,
    /// Fingerprint of the job's inputs (a journal only resumes the job it belongs to).
    pub fingerprint: String,
    /// Steps in the job.
    pub steps_total: u32,
    /// Steps finished.
    pub steps_done: u32,
    /// Every rank's state digest after `steps_done` steps.
    pub digests: BTreeMap<u32, u64>,
    /// Live wall seconds of each finished step.
    pub step_wall_s: Vec<f64>,
    /// Restarts used.
    pub restarts: u32,
    /// Whether the job finished.
    pub finished: bool,
    /// The newest committed checkpoint (steps done; 0: none).
    #[serde(default)]
    pub checkpoint_step: u32,
    /// Checkpoints committed.
    #[serde(default)]
    pub checkpoints: u32,
    /// Steps run and then lost to failures.
    #[serde(default)]
    pub lost_steps: u32,
    /// Rendezvous rounds so far: every round gets its own run id, so that a message from an abandoned round
    /// can never be taken for one of the next.
    #[serde(default)]
    pub rounds: u32,
    /// Failures recovered from.
    #[serde(default)]
    pub recoveries: Vec<rpc::types::Recovery>,
}

/// Where the journal lives.
pub trait JournalStore: Send + Sync {
    /// The stored bytes, if any.
    fn load(&self) -> Result<Option<Vec<u8>>, String>;
    /// Replaces the stored bytes atomically.
    fn save(&self, bytes: &[u8]) -> Result<(), String>;
}

/// A journal kept in memory (tests, and coordinators run without `--state-dir`).
#[derive(Debug, Default)]
pub struct MemoryStore(pub Mutex<Option<Vec<u8>>>);

impl JournalStore for MemoryStore {
    fn load(&self) -> Result<Option<Vec<u8>>, String> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
    fn save(&self, bytes: &[u8]) -> Result<(), String> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes.to_vec());
        Ok(())
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Encodes a journal: checksum header, then the JSON body.
pub fn encode(state: &JournalState) -> Vec<u8> {
    let body = serde_json::to_string_pretty(state).unwrap_or_default();
    format!("{MAGIC}{}\n{body}\n", sha256_hex(body.as_bytes())).into_bytes()
}

/// Decodes a journal, verifying its checksum.
pub fn decode(bytes: &[u8]) -> Result<JournalState, CoordinatorError> {
    let corrupt = |why: &str| CoordinatorError::Journal(format!("journal is corrupt: {why}"));
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt("not UTF-8"))?;
    let (header, rest) = text.split_once('\n').ok_or_else(|| corrupt("no header line"))?;
    let sum =
        header.strip_prefix(MAGIC).ok_or_else(|| corrupt("header is not `choir-journal v1 sha256=…`"))?;
    let body = rest.strip_suffix('\n').unwrap_or(rest);
    if sha256_hex(body.as_bytes()) != sum {
        return Err(corrupt("checksum mismatch (a torn or edited write)"));
    }
    serde_json::from_str(body).map_err(|e| corrupt(&format!("body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> JournalState {
        JournalState {
            job_id: "default-1234".into(),
            fingerprint: "ab".into(),
            steps_total: 10,
            steps_done: 3,
            digests: [(0, 1), (1, u64::MAX)].into_iter().collect(),
            step_wall_s: vec![0.1, 0.2, 0.3],
            restarts: 1,
            finished: false,
            checkpoint_step: 0,
            checkpoints: 0,
            lost_steps: 0,
            rounds: 1,
            recoveries: vec![],
        }
    }

    #[test]
    fn a_journal_round_trips() {
        assert_eq!(decode(&encode(&state())).unwrap(), state());
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let bytes = encode(&state());
        let header_len = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        for i in (header_len..bytes.len() - 1).step_by(7) {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad).is_err(), "flip at {i} not detected");
        }
        assert!(decode(&bytes[..bytes.len() / 2]).is_err());
        assert!(decode(b"").is_err());
    }
}
