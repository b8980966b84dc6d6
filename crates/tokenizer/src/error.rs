//! Errors returned by the tokenizer crate.
//!
//! Every message names the offending value and what was expected, so that a caller can show it as is.

/// Anything that can go wrong while building, loading, training or decoding with a tokenizer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A line of a rank file could not be parsed.
    #[error("rank file line {line}: {reason}; expected `<base64 token bytes> <rank>`")]
    BadRankLine {
        /// 1-based line number.
        line: usize,
        /// What was wrong with it.
        reason: String,
    },
    /// A base64 field could not be decoded.
    #[error("invalid base64 {text:?}: {reason}")]
    BadBase64 {
        /// The offending text (truncated to 40 characters).
        text: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Two entries of a vocabulary share the same id.
    #[error("token id {id} is given twice; expected every id to be unique")]
    DuplicateId {
        /// The repeated id.
        id: u32,
    },
    /// Two entries of a vocabulary share the same bytes.
    #[error("token bytes {bytes:?} appear twice (ids {first} and {second}); expected unique token bytes")]
    DuplicateBytes {
        /// The repeated bytes, shown escaped.
        bytes: String,
        /// The first id with these bytes.
        first: u32,
        /// The second id with these bytes.
        second: u32,
    },
    /// The vocabulary lacks a token for one of the 256 single bytes, so some inputs could not be encoded.
    #[error("no token for the single byte 0x{byte:02x}; expected all 256 single bytes in the vocabulary")]
    MissingByte {
        /// The byte without a token.
        byte: u8,
    },
    /// A token has no bytes.
    #[error("token id {id} has no bytes; expected at least one byte per token")]
    EmptyToken {
        /// The id of the empty token.
        id: u32,
    },
    /// A special token is empty, repeated, or collides with an ordinary token id.
    #[error("special token {token:?} (id {id}): {reason}")]
    BadSpecialToken {
        /// The special token's text.
        token: String,
        /// Its id.
        id: u32,
        /// What is wrong with it.
        reason: String,
    },
    /// An id that is neither an ordinary nor a special token was given to decode.
    #[error("unknown token id {id}; expected an id below {vocab_size} that is in the vocabulary")]
    UnknownId {
        /// The unknown id.
        id: u32,
        /// One more than the largest known id.
        vocab_size: u32,
    },
    /// A pre-tokenization pattern name was not recognised.
    #[error("unknown pattern {name:?}; expected one of gpt2, cl100k, o200k")]
    UnknownPattern {
        /// The name given.
        name: String,
    },
    /// An encoding name was not recognised.
    #[error("unknown encoding {name:?}; expected one of r50k_base (gpt2), cl100k_base, o200k_base")]
    UnknownEncoding {
        /// The name given.
        name: String,
    },
    /// A saved tokenizer file is not in the expected format.
    #[error("tokenizer file line {line}: {reason}")]
    BadFile {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// Training was asked for an impossible vocabulary size.
    #[error(
        "vocabulary size {vocab_size} is too small; expected at least {minimum} (256 bytes + {specials} special tokens)"
    )]
    VocabTooSmall {
        /// The requested size.
        vocab_size: usize,
        /// The smallest size that is possible.
        minimum: usize,
        /// The number of special tokens requested.
        specials: usize,
    },
}

/// Escapes bytes for an error message, truncating long values.
pub(crate) fn escape_for_message(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(40)];
    let mut text = String::from_utf8_lossy(shown).escape_debug().to_string();
    if bytes.len() > shown.len() {
        text.push('…');
    }
    text
}
