//! Durable file writes: a temporary file beside the target, fsync, rename, fsync of the directory.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::CheckpointError;

/// Hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` atomically: readers see the old file or the whole new one, never a torn one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let tmp = tmp_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| CheckpointError::io(&tmp, &e))?;
    fs::rename(&tmp, path).map_err(|e| CheckpointError::io(path, &e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Writes only the first half of `bytes` to the temporary file of `path` and stops, as a process killed
/// while writing would leave it.
pub(crate) fn write_torn(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let tmp = tmp_path(path);
    fs::write(&tmp, &bytes[..bytes.len() / 2]).map_err(|e| CheckpointError::io(&tmp, &e))
}

/// The temporary name used while writing `path`.
pub(crate) fn tmp_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Makes a directory's entries (renames, creations) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| CheckpointError::io(dir, &e))
}

/// Reads a whole file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    fs::read(path).map_err(|e| CheckpointError::io(path, &e))
}
