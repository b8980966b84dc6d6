//! Exit codes and how errors are shown.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the command failed while running (an IO error, a failed run) |
//! | 2 | bad input: a flag, file or field that cannot be used; the message says which and what was expected |

use std::fmt;

/// Exit code for bad input (flags, files, fields). clap also exits with 2 on usage errors.
pub(crate) const BAD_INPUT: i32 = 2;
/// Exit code for a failure while running.
pub(crate) const FAILURE: i32 = 1;

/// Marks an error as the user's input being unusable, so that `choir` exits with code 2.
#[derive(Debug)]
pub(crate) struct BadInput(pub(crate) String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Wraps any displayable error as bad input.
pub(crate) fn bad_input(err: impl fmt::Display) -> anyhow::Error {
    anyhow::Error::new(BadInput(err.to_string()))
}

/// Prints the error chain on one line per cause and returns the exit code.
pub(crate) fn report(err: &anyhow::Error) -> i32 {
    let mut text = format!("error: {err}");
    for cause in err.chain().skip(1) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    eprintln!("{text}");
    if err.chain().any(|c| c.is::<BadInput>()) { BAD_INPUT } else { FAILURE }
}
