//! Byte-level BPE: train, encode, decode, save and load rank files.
//!
//! A [`Tokenizer`] is a vocabulary of byte strings whose ids double as merge ranks (tiktoken's model), a
//! pre-tokenization [`Pattern`] and optional special tokens. It encodes text token-for-token like
//! `tiktoken` for OpenAI's `r50k_base`, `cl100k_base` and `o200k_base` ([`Encoding`], embedded), decodes
//! any id sequence back to bytes, and round-trips every byte string, invalid UTF-8 included.
//!
//! - [`Pattern`]: hand-written state machines equivalent to OpenAI's split regexes (the speed comes from here).
//! - [`train`]: learns merges from text, deterministically ([`TrainConfig`]).
//! - [`Tokenizer::save`] / [`Tokenizer::load`]: choir's text format; [`Tokenizer::from_tiktoken`]: plain
//!   tiktoken rank files.
//! - [`EncodeStats`], [`pieces`], [`display_token`]: what a person wants to see of an encoding.
//!
//! ```
//! let cl100k = tokenizer::Encoding::Cl100kBase.load().unwrap();
//! let ids = cl100k.encode("hello world");
//! assert_eq!(ids, vec![15339, 1917]);
//! assert_eq!(cl100k.decode(&ids).unwrap(), b"hello world");
//! ```
//!
//! The crate is pure: no IO, no clock, no unseeded randomness; the caller reads files and passes text.

mod bpe;
mod error;
mod file;
mod openai;
mod pretokenize;
mod rankfile;
mod tokenizer;
mod train;
mod view;
mod vocab;

pub use error::TokenizerError;
pub use file::FILE_MAGIC;
pub use openai::Encoding;
pub use pretokenize::{Pattern, Pieces};
pub use rankfile::{base64_decode, base64_encode, parse_tiktoken, write_tiktoken};
pub use tokenizer::{Segment, Tokenizer};
pub use train::{TrainConfig, TrainReport, train};
pub use view::{EncodeStats, Piece, display_token, pieces};
pub use vocab::TokenId;
