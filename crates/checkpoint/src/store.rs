//! A checkpoint directory: writing shards, committing manifests, the `latest` pointer, finding the newest
//! checkpoint that verifies, retention, and (for fault drills) corrupting one.

use std::fs;
use std::path::{Path, PathBuf};

use crate::CheckpointError;
use crate::fsio::{read, sha256_hex, sync_dir, write_atomic, write_torn};
use crate::manifest::{MANIFEST_FORMAT, Manifest, ShardRecord};
use crate::shard::{self, ShardMeta, shard_file_name};

const LATEST: &str = "latest";
const MANIFEST: &str = "manifest.json";
const PREFIX: &str = "step-";

/// The directory name of a step's checkpoint.
pub fn step_dir_name(step: u32) -> String {
    format!("{PREFIX}{step:08}")
}

fn parse_step_dir(name: &str) -> Option<u32> {
    let digits = name.strip_prefix(PREFIX)?;
    (digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

/// The newest checkpoint that verifies, and why newer ones were passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restorable {
    /// The checkpoint to restore, if any verifies.
    pub manifest: Option<Manifest>,
    /// Newer checkpoints that did not verify: (step, why).
    pub skipped: Vec<(u32, String)>,
}

/// A checkpoint directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// A store rooted at `root` (created when missing).
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, CheckpointError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| CheckpointError::io(&root, &e))?;
        Ok(Store { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a step's checkpoint.
    pub fn step_dir(&self, step: u32) -> PathBuf {
        self.root.join(step_dir_name(step))
    }

    /// Writes a rank's shard (temporary file, fsync, rename) and returns its manifest record.
    pub fn write_shard(&self, meta: &ShardMeta, payload_len: u64) -> Result<ShardRecord, CheckpointError> {
        let dir = self.step_dir(meta.step);
        fs::create_dir_all(&dir).map_err(|e| CheckpointError::io(&dir, &e))?;
        let bytes = shard::encode(meta, payload_len);
        let file = shard_file_name(meta.rank);
        write_atomic(&dir.join(&file), &bytes)?;
        Ok(ShardRecord {
            rank: meta.rank,
            file,
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            digest: meta.digest,
        })
    }

    /// Leaves a rank's shard half-written in its temporary file, as a process killed mid-write would (for
    /// fault drills).
    pub fn write_torn_shard(&self, meta: &ShardMeta, payload_len: u64) -> Result<(), CheckpointError> {
        let dir = self.step_dir(meta.step);
        fs::create_dir_all(&dir).map_err(|e| CheckpointError::io(&dir, &e))?;
        write_torn(&dir.join(shard_file_name(meta.rank)), &shard::encode(meta, payload_len))
    }

    /// Reads a rank's shard of a committed checkpoint, checking it against the manifest's SHA-256.
    pub fn read_shard(&self, step: u32, rank: u32) -> Result<ShardMeta, CheckpointError> {
        let manifest = self.read_manifest(step)?;
        let rec =
            manifest.shards.iter().find(|s| s.rank == rank).ok_or_else(|| CheckpointError::Mismatch {
                path: self.step_dir(step).join(MANIFEST),
                why: format!("no shard for rank {rank}"),
            })?;
        let path = self.step_dir(step).join(&rec.file);
        let bytes = read(&path)?;
        let sum = sha256_hex(&bytes);
        if sum != rec.sha256 {
            return Err(CheckpointError::corrupt(
                &path,
                format!("SHA-256 {sum} differs from the manifest's {}", rec.sha256),
            ));
        }
        let meta = shard::decode(&path, &bytes)?;
        if meta.rank != rank || meta.step != step || meta.digest != rec.digest {
            return Err(CheckpointError::Mismatch {
                path,
                why: format!(
                    "holds rank {} step {} digest {:016x}; the manifest says rank {rank} step {step} digest {:016x}",
                    meta.rank, meta.step, meta.digest, rec.digest
                ),
            });
        }
        Ok(meta)
    }

    /// Commits a checkpoint: checks that every shard is in place with the recorded size, writes the manifest
    /// (temporary file, fsync, rename: the commit point), then points `latest` at it.
    pub fn commit(&self, manifest: &Manifest) -> Result<(), CheckpointError> {
        let dir = self.step_dir(manifest.step);
        if manifest.shards.len() != manifest.world as usize
            || manifest.shards.iter().enumerate().any(|(i, s)| s.rank != i as u32)
        {
            return Err(CheckpointError::Mismatch {
                path: dir.join(MANIFEST),
                why: format!("expected one shard per rank 0..{}, in order", manifest.world),
            });
        }
        for s in &manifest.shards {
            let path = dir.join(&s.file);
            let len = fs::metadata(&path).map_err(|e| CheckpointError::io(&path, &e))?.len();
            if len != s.bytes {
                return Err(CheckpointError::corrupt(
                    &path,
                    format!("{len} bytes, the worker wrote {}", s.bytes),
                ));
            }
        }
        let body = serde_json::to_vec_pretty(manifest).unwrap_or_default();
        write_atomic(&dir.join(MANIFEST), &body)?;
        write_atomic(&self.root.join(LATEST), format!("{}\n", step_dir_name(manifest.step)).as_bytes())
    }

    /// The step `latest` points at, if it names a step directory.
    pub fn latest(&self) -> Option<u32> {
        let text = fs::read_to_string(self.root.join(LATEST)).ok()?;
        parse_step_dir(text.trim())
    }

    /// Steps that have a manifest (committed), ascending.
    pub fn committed_steps(&self) -> Vec<u32> {
        let mut steps: Vec<u32> =
            self.step_dirs().into_iter().filter(|&s| self.step_dir(s).join(MANIFEST).is_file()).collect();
        steps.sort_unstable();
        steps
    }

    /// Every step directory, committed or not, ascending.
    fn step_dirs(&self) -> Vec<u32> {
        let Ok(entries) = fs::read_dir(&self.root) else { return vec![] };
        let mut steps: Vec<u32> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| parse_step_dir(&e.file_name().to_string_lossy()))
            .collect();
        steps.sort_unstable();
        steps
    }

    /// Reads and parses a step's manifest.
    pub fn read_manifest(&self, step: u32) -> Result<Manifest, CheckpointError> {
        let path = self.step_dir(step).join(MANIFEST);
        let bytes = read(&path)?;
        let m: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| CheckpointError::corrupt(&path, e.to_string()))?;
        if m.format != MANIFEST_FORMAT {
            return Err(CheckpointError::corrupt(
                &path,
                format!("format {:?}, expected {MANIFEST_FORMAT:?}", m.format),
            ));
        }
        if m.step != step {
            return Err(CheckpointError::corrupt(
                &path,
                format!("records step {}, lives in {}", m.step, step_dir_name(step)),
            ));
        }
        Ok(m)
    }

    /// Verifies a committed checkpoint for a job: its manifest, and every shard against its SHA-256.
    pub fn verify(&self, step: u32, fingerprint: &str, world: u32) -> Result<Manifest, CheckpointError> {
        let m = self.read_manifest(step)?;
        let path = self.step_dir(step).join(MANIFEST);
        if m.fingerprint != fingerprint {
            return Err(CheckpointError::Mismatch {
                path,
                why: format!("belongs to job {} (another fingerprint)", m.job_id),
            });
        }
        if m.world != world || m.shards.len() != world as usize {
            return Err(CheckpointError::Mismatch {
                path,
                why: format!("{} ranks, the job has {world}", m.world),
            });
        }
        for s in &m.shards {
            self.read_shard(step, s.rank)?;
        }
        Ok(m)
    }

    /// The newest committed checkpoint of the job that verifies, newest first from `latest` down.
    pub fn find_restorable(&self, fingerprint: &str, world: u32) -> Restorable {
        let mut skipped = Vec::new();
        for step in self.committed_steps().into_iter().rev() {
            match self.verify(step, fingerprint, world) {
                Ok(m) => return Restorable { manifest: Some(m), skipped },
                Err(e) => skipped.push((step, e.to_string())),
            }
        }
        Restorable { manifest: None, skipped }
    }

    /// Removes every step directory newer than `step` (torn, corrupt or abandoned by a rollback) and points
    /// `latest` at `step` (or removes it when `step` is `None`). Returns the removed steps.
    pub fn discard_after(&self, step: Option<u32>) -> Result<Vec<u32>, CheckpointError> {
        let mut removed = Vec::new();
        for s in self.step_dirs() {
            if step.is_none_or(|keep| s > keep) {
                let dir = self.step_dir(s);
                fs::remove_dir_all(&dir).map_err(|e| CheckpointError::io(&dir, &e))?;
                removed.push(s);
            }
        }
        let latest = self.root.join(LATEST);
        match step {
            Some(s) if self.latest() != Some(s) => {
                write_atomic(&latest, format!("{}\n", step_dir_name(s)).as_bytes())?;
            }
            Some(_) => {}
            None if latest.exists() => {
                fs::remove_file(&latest).map_err(|e| CheckpointError::io(&latest, &e))?;
            }
            None => {}
        }
        sync_dir(&self.root)?;
        Ok(removed)
    }

    /// Keeps the `keep` newest committed checkpoints (at least one) and removes older ones, together with any
    /// uncommitted step directory older than the newest committed one. Returns the removed steps.
    pub fn prune(&self, keep: usize) -> Result<Vec<u32>, CheckpointError> {
        let committed = self.committed_steps();
        let Some(&newest) = committed.last() else { return Ok(vec![]) };
        let keep_from = committed[committed.len().saturating_sub(keep.max(1))];
        let mut removed = Vec::new();
        for s in self.step_dirs() {
            let is_committed = committed.binary_search(&s).is_ok();
            if (is_committed && s < keep_from) || (!is_committed && s < newest) {
                let dir = self.step_dir(s);
                fs::remove_dir_all(&dir).map_err(|e| CheckpointError::io(&dir, &e))?;
                removed.push(s);
            }
        }
        Ok(removed)
    }

    /// Flips one byte in the middle of a committed checkpoint's first shard (for fault drills); returns the
    /// file. The manifest is untouched, so the damage is found only by checksum.
    pub fn corrupt(&self, step: u32) -> Result<PathBuf, CheckpointError> {
        let m = self.read_manifest(step)?;
        let rec =
            m.shards.first().ok_or_else(|| CheckpointError::corrupt(&self.step_dir(step), "no shards"))?;
        let path = self.step_dir(step).join(&rec.file);
        let mut bytes = read(&path)?;
        if bytes.is_empty() {
            return Err(CheckpointError::corrupt(&path, "empty"));
        }
        let at = bytes.len() / 2;
        bytes[at] ^= 0x5a;
        fs::write(&path, &bytes).map_err(|e| CheckpointError::io(&path, &e))?;
        Ok(path)
    }
}
