//! Helpers for the end-to-end suite: locating and running the `choir` binary and the repository's files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of the `choir` binary. The suite is the `cli` package's integration test, so cargo builds the binary
/// (fresh) before the suite and says where it is.
pub(crate) fn choir_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_choir"))
}

/// The repository root (the suite's package is `crates/cli`).
pub(crate) fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Runs `choir` with the given arguments and returns its output.
pub(crate) fn choir(args: &[&str]) -> Output {
    let bin = choir_bin();
    Command::new(&bin).args(args).output().unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
}
