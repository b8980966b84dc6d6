//! What can go wrong with a checkpoint.

use std::path::{Path, PathBuf};

/// A checkpoint problem, naming the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The file exists but its contents are not what they must be.
    #[error("{path} is corrupt: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The checkpoint is not the one asked for (another job, another world size, another step).
    #[error("{path}: {why}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What differs.
        why: String,
    },
}

impl CheckpointError {
    pub(crate) fn io(path: &Path, e: &std::io::Error) -> CheckpointError {
        CheckpointError::Io { path: path.to_path_buf(), reason: e.to_string() }
    }

    pub(crate) fn corrupt(path: &Path, why: impl Into<String>) -> CheckpointError {
        CheckpointError::Corrupt { path: path.to_path_buf(), why: why.into() }
    }
}
