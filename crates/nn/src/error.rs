//! The crate's one error type.

/// Everything that can go wrong in `nn`. Messages name the offending value and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// A configuration field holds a value the model cannot be built with.
    #[error("{field} = {value}: {expected}")]
    BadConfig {
        /// The field, as the user would spell it (e.g. `heads`).
        field: &'static str,
        /// The offending value, printed.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A `model::ModelSpec` uses a feature this GPT does not implement.
    #[error("model spec {name:?} uses {feature}, which the nn GPT does not implement (expected {expected})")]
    UnsupportedSpec {
        /// The spec's name.
        name: String,
        /// The feature, e.g. `rotary positions`.
        feature: &'static str,
        /// What the nn GPT supports instead.
        expected: &'static str,
    },
    /// Text contains a symbol the vocabulary cannot encode.
    #[error("character {ch:?} (U+{code:04X}) is not in the {n_symbols}-symbol vocabulary")]
    UnknownChar {
        /// The character.
        ch: char,
        /// Its code point.
        code: u32,
        /// How many symbols the vocabulary has.
        n_symbols: usize,
    },
    /// A token id is outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    BadToken {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// There is not enough data for what was asked.
    #[error("{what}: {got} tokens, expected at least {need}")]
    NotEnoughData {
        /// Which data (e.g. `validation split`).
        what: &'static str,
        /// Tokens available.
        got: usize,
        /// Tokens needed.
        need: usize,
    },
    /// A sequence would run past the model's context.
    #[error("sequence of {len} tokens exceeds the model's context of {context} tokens")]
    ContextOverflow {
        /// The length asked for.
        len: usize,
        /// The model's context.
        context: usize,
    },
    /// A checkpoint is malformed or does not match its config.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The tokenizer reported an error.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A tensor operation failed (shape mismatch, unsupported dtype...).
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// `Result` with [`NnError`].
pub type Result<T, E = NnError> = std::result::Result<T, E>;

/// Builds a [`NnError::BadConfig`].
pub(crate) fn bad_config(field: &'static str, value: impl ToString, expected: impl Into<String>) -> NnError {
    NnError::BadConfig { field, value: value.to_string(), expected: expected.into() }
}
