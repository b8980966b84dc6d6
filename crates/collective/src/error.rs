//! The crate's error type: every message names the offending value and what was expected.

/// Errors from building a communicator, timing a collective or running the flow model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CollectiveError {
    /// A name (operation, algorithm, protocol) that is not known.
    #[error("unknown {what} '{value}': expected one of {expected}")]
    UnknownName {
        /// What kind of name it was.
        what: &'static str,
        /// The name given.
        value: String,
        /// The accepted names.
        expected: &'static str,
    },
    /// A group that cannot run a collective.
    #[error("group of {n_ranks} ranks: {reason}")]
    BadGroup {
        /// Ranks in the group.
        n_ranks: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A hardware figure that is zero, negative or not finite.
    #[error("{field} = {value}: expected a finite positive number")]
    BadFigure {
        /// Which figure.
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// The chosen algorithm cannot run this operation on this hardware or placement.
    #[error("algorithm {algorithm} cannot run {op} here: {reason}")]
    Unsupported {
        /// The algorithm asked for.
        algorithm: String,
        /// The operation.
        op: String,
        /// Why not.
        reason: String,
    },
    /// A link or flow id outside the network.
    #[error("{what} id {id} out of range: the network has {len}")]
    BadId {
        /// `link` or `flow`.
        what: &'static str,
        /// The id given.
        id: usize,
        /// How many there are.
        len: usize,
    },
    /// The topology could not answer a question (unknown rank, no route).
    #[error("topology: {0}")]
    Topology(String),
    /// A validation file that cannot be read.
    #[error("validation data: {0}")]
    Validation(String),
}
