//! Live checkpoints on disk.
//!
//! ```text
//! DIR/
//!   latest                      "step-00000010": the newest committed checkpoint (written by rename)
//!   step-00000010/
//!     rank-00000.shard          one file per rank, written by the worker hosting it (temp, fsync, rename)
//!     rank-00001.shard
//!     manifest.json             written last by the coordinator: the commit marker, with a SHA-256 per shard
//! ```
//!
//! A step directory without `manifest.json` is not a checkpoint (a crash while writing it); a shard whose
//! SHA-256 differs from the manifest's makes the whole checkpoint unusable, and restoring falls back to the
//! previous one. Nothing here reads a clock or draws random numbers: the same job writes the same bytes.

mod error;
mod fsio;
mod manifest;
mod shard;
mod store;

pub use error::CheckpointError;
pub use manifest::{MANIFEST_FORMAT, Manifest, ShardRecord};
pub use shard::{ShardMeta, shard_file_name};
pub use store::{Restorable, Store, step_dir_name};

#[cfg(test)]
mod tests;
