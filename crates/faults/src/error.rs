//! The one error type of the crate.

/// Why a failure model, fault plan or campaign configuration cannot be used. Every message names the offending
/// value and what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultsError {
    /// A failure-count table or fault plan that does not parse.
    #[error("{what}: {message}")]
    Parse {
        /// What was being read ("fault plan (TOML)", "failure counts").
        what: String,
        /// The parser's message, with its line and column when it has them.
        message: String,
    },
    /// A number outside its valid range.
    #[error("{name} = {value}: expected {expected}")]
    OutOfRange {
        /// The field or flag.
        name: String,
        /// The value given.
        value: f64,
        /// What would be valid.
        expected: String,
    },
    /// A fault aimed at a rank or node the job does not have.
    #[error("fault #{index} at {time_s} s targets {target}, but the job has {available}")]
    BadTarget {
        /// Position of the fault in the plan (0-based).
        index: usize,
        /// Its time, seconds.
        time_s: f64,
        /// The target as written.
        target: String,
        /// What exists ("16384 ranks", "2048 nodes").
        available: String,
    },
    /// An unknown word in a data file.
    #[error("{field} = {value:?}: expected one of {expected}")]
    UnknownName {
        /// The field.
        field: String,
        /// The value given.
        value: String,
        /// The accepted words.
        expected: String,
    },
}

/// Checks that `value` is finite and at least `min` (inclusive when `inclusive`), naming it in the error.
pub(crate) fn check_min(name: &str, value: f64, min: f64, inclusive: bool) -> Result<(), FaultsError> {
    let ok = value.is_finite() && if inclusive { value >= min } else { value > min };
    if ok {
        Ok(())
    } else {
        let op = if inclusive { "≥" } else { ">" };
        Err(FaultsError::OutOfRange {
            name: name.to_string(),
            value,
            expected: format!("a finite number {op} {min}"),
        })
    }
}
