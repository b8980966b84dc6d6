//! The one error type of the crate: every message names the offending value and what was expected.

/// Why a catalog lookup, a cluster file or a cluster query failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TopologyError {
    /// The text is not valid TOML, or a field has the wrong type or an unknown name.
    #[error("{origin}: {message}")]
    Syntax {
        /// Where the text came from (a file path or `preset:<name>`).
        origin: String,
        /// The TOML parser's message (it names the line and the key).
        message: String,
    },
    /// A field parsed but its value cannot be used.
    #[error("{origin}: field `{field}` = {value}: expected {expected}")]
    Invalid {
        /// Where the text came from (a file path or `preset:<name>`).
        origin: String,
        /// Dotted path of the field, e.g. `node.gpu`.
        field: String,
        /// The value found, as written.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A name that is not in the hardware catalog.
    #[error("unknown {kind} {name:?}: expected one of {known}")]
    UnknownHardware {
        /// `GPU`, `NIC` or `switch`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The catalog's slugs, comma-separated.
        known: String,
    },
    /// A preset name that does not exist.
    #[error("unknown topology preset {name:?}: expected one of {known}")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// The preset names, comma-separated.
        known: String,
    },
    /// Two GPUs of a built cluster cannot reach each other.
    #[error("{origin}: GPU {from} has no path to GPU {to}: every GPU must reach every other")]
    Disconnected {
        /// Where the cluster description came from.
        origin: String,
        /// A GPU rank.
        from: u32,
        /// A GPU rank it cannot reach.
        to: u32,
    },
    /// A GPU rank outside the cluster.
    #[error("GPU rank {rank} is out of range: the cluster has {num_gpus} GPUs (ranks 0..{num_gpus})")]
    RankOutOfRange {
        /// The rank asked for.
        rank: u32,
        /// How many GPUs the cluster has.
        num_gpus: u32,
    },
}

impl TopologyError {
    /// Shorthand for [`TopologyError::Invalid`].
    pub fn invalid(
        origin: &str,
        field: &str,
        value: impl std::fmt::Display,
        expected: impl Into<String>,
    ) -> TopologyError {
        TopologyError::Invalid {
            origin: origin.to_owned(),
            field: field.to_owned(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}
