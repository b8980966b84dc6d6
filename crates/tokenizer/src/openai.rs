//! OpenAI's published encodings, embedded: `r50k_base` (GPT-2), `cl100k_base` and `o200k_base`.
//!
//! The rank files in `data/` are copied byte for byte from the `tiktoken-rs` 0.12.1 crate (MIT), which took
//! them from OpenAI's `tiktoken` (MIT); `data/README.md` gives their sha256 sums and licence. The special
//! tokens and their ids are those of `tiktoken-rs`' `src/tiktoken_ext/openai_public.rs`.

use crate::TokenizerError;
use crate::pretokenize::Pattern;
use crate::tokenizer::Tokenizer;

/// An encoding that ships with the crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Encoding {
    /// GPT-2's 50,257-token vocabulary (`r50k_base`).
    R50kBase,
    /// GPT-3.5/GPT-4's 100k vocabulary.
    Cl100kBase,
    /// GPT-4o's 200k vocabulary.
    O200kBase,
}

impl Encoding {
    /// All embedded encodings.
    pub const ALL: [Encoding; 3] = [Encoding::R50kBase, Encoding::Cl100kBase, Encoding::O200kBase];

    /// The encoding's name, as tiktoken spells it.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::R50kBase => "r50k_base",
            Encoding::Cl100kBase => "cl100k_base",
            Encoding::O200kBase => "o200k_base",
        }
    }

    /// Looks an encoding up by name (`r50k_base` or `gpt2`, `cl100k_base`, `o200k_base`).
    pub fn from_name(name: &str) -> Result<Self, TokenizerError> {
        match name {
            "r50k_base" | "gpt2" => Ok(Encoding::R50kBase),
            "cl100k_base" => Ok(Encoding::Cl100kBase),
            "o200k_base" => Ok(Encoding::O200kBase),
            _ => Err(TokenizerError::UnknownEncoding { name: name.to_owned() }),
        }
    }

    /// The text of the rank file.
    pub fn rank_file(self) -> &'static str {
        match self {
            Encoding::R50kBase => include_str!("../data/r50k_base.tiktoken"),
            Encoding::Cl100kBase => include_str!("../data/cl100k_base.tiktoken"),
            Encoding::O200kBase => include_str!("../data/o200k_base.tiktoken"),
        }
    }

    /// The split pattern.
    pub fn pattern(self) -> Pattern {
        match self {
            Encoding::R50kBase => Pattern::Gpt2,
            Encoding::Cl100kBase => Pattern::Cl100k,
            Encoding::O200kBase => Pattern::O200k,
        }
    }

    /// The special tokens and ids.
    pub fn special_tokens(self) -> Vec<(String, u32)> {
        let list: &[(&str, u32)] = match self {
            Encoding::R50kBase => &[("<|endoftext|>", 50256)],
            Encoding::Cl100kBase => &[
                ("<|endoftext|>", 100_257),
                ("<|fim_prefix|>", 100_258),
                ("<|fim_middle|>", 100_259),
                ("<|fim_suffix|>", 100_260),
                ("<|endofprompt|>", 100_276),
            ],
            Encoding::O200kBase => &[("<|endoftext|>", 199_999), ("<|endofprompt|>", 200_018)],
        };
        list.iter().map(|(t, id)| ((*t).to_owned(), *id)).collect()
    }

    /// Builds the tokenizer (parses about 2-4 MB of ranks; keep the result rather than calling this per text).
    pub fn load(self) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::from_tiktoken(self.rank_file(), self.pattern(), self.special_tokens())
    }
}
