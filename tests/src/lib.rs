//! Helpers for the end-to-end suite: locating and running the `choir` binary.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Path of the `choir` binary built for this test run.
pub fn choir_bin() -> PathBuf {
    // Integration tests live in their own package, so CARGO_BIN_EXE_choir is not set; the binary sits beside
    // the test executable's parent directory (target/<profile>/choir).
    let mut dir = std::env::current_exe().expect("test executable path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(format!("choir{}", std::env::consts::EXE_SUFFIX))
}

/// Runs `choir` with the given arguments and returns its output.
pub fn choir(args: &[&str]) -> Output {
    let bin = choir_bin();
    assert!(
        bin.exists(),
        "{} not built: run the tests through `cargo nextest run --workspace`",
        bin.display()
    );
    Command::new(&bin).args(args).output().unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
}
