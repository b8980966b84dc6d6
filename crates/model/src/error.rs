//! The one error type of the crate: every message names the offending value and what was expected.

/// Why a model, a plan or a config file cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// No preset has this name; the message lists the valid names.
    #[error("unknown preset `{name}`: expected one of {valid}")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// A shape field is impossible (zero, or not divisible as required).
    #[error("{field} = {value}: {expected}")]
    BadShape {
        /// The field, e.g. `hidden`.
        field: &'static str,
        /// The offending value.
        value: u64,
        /// What was expected, e.g. `must be divisible by heads (12)`.
        expected: String,
    },
    /// A parallel plan does not fit the model (e.g. tp does not divide the heads).
    #[error("{field} = {value}: {expected}")]
    BadPlan {
        /// The plan field, e.g. `tp`.
        field: &'static str,
        /// The offending value.
        value: u64,
        /// What was expected.
        expected: String,
    },
    /// A Hugging Face `config.json` is not valid JSON.
    #[error("not valid JSON: {0}")]
    HfJson(String),
    /// A field of a Hugging Face `config.json` is missing or has the wrong type.
    #[error("field `{field}`: {expected}")]
    HfField {
        /// The JSON key.
        field: String,
        /// What was expected there.
        expected: String,
    },
    /// The `model_type` of a Hugging Face config is not one this crate can read.
    #[error("model_type `{model_type}` is not supported: expected one of {supported}")]
    HfModelType {
        /// The `model_type` found.
        model_type: String,
        /// The supported families.
        supported: String,
    },
    /// A scaling-law input is out of range (non-positive params, tokens, FLOPs, MFU …).
    #[error("{field} = {value}: {expected}")]
    BadScaling {
        /// The input, e.g. `mfu`.
        field: &'static str,
        /// The offending value.
        value: f64,
        /// What was expected.
        expected: String,
    },
    /// An embedded data file failed to parse (a bug in the crate, caught by its tests).
    #[error("embedded data file {file}: {message}")]
    Data {
        /// Which file.
        file: &'static str,
        /// The parser's message.
        message: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
