//! The `choir` binary as a user runs it: exit codes and error messages.

use crate::support::choir;

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let out = choir(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-command"));
}
