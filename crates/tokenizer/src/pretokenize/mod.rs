//! Pre-tokenization: splitting text into pieces before byte-pair merging.
//!
//! Each [`Pattern`] is a hand-written state machine equivalent to one of OpenAI's split regexes, as
//! `tiktoken` runs them (leftmost-first alternation, greedy and possessive quantifiers, the `(?!\S)`
//! lookahead). A state machine avoids a backtracking regex engine, which is usually the slowest part of
//! encoding. The pieces always cover the input exactly, invalid UTF-8 included.

mod chars;
mod cl100k;
mod gpt2;
mod o200k;

use std::fmt;
use std::str::FromStr;

use crate::TokenizerError;

/// A pre-tokenization pattern: how text is cut into pieces that merges never cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pattern {
    /// GPT-2 / r50k / p50k: `'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s`.
    Gpt2,
    /// cl100k (GPT-3.5/4): `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s`.
    Cl100k,
    /// o200k (GPT-4o and later): case-aware words with contractions attached, numbers of 1-3 digits, and
    /// punctuation runs that keep trailing newlines and slashes (see [`Pattern::regex`]).
    O200k,
}

impl Pattern {
    /// All patterns, in a stable order.
    pub const ALL: [Pattern; 3] = [Pattern::Gpt2, Pattern::Cl100k, Pattern::O200k];

    /// The short name used in files and on the command line: `gpt2`, `cl100k` or `o200k`.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Gpt2 => "gpt2",
            Pattern::Cl100k => "cl100k",
            Pattern::O200k => "o200k",
        }
    }

    /// The reference regex this pattern implements, exactly as `tiktoken-rs` 0.12.1 spells it
    /// (`src/tiktoken_ext/openai_public.rs`).
    pub fn regex(self) -> &'static str {
        match self {
            Pattern::Gpt2 => {
                r"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"
            }
            Pattern::Cl100k => {
                r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"
            }
            Pattern::O200k => concat!(
                r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
                r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
                r"|\p{N}{1,3}",
                r"| ?[^\s\p{L}\p{N}]+[\r\n/]*",
                r"|\s*[\r\n]+",
                r"|\s+(?!\S)",
                r"|\s+",
            ),
        }
    }

    /// The end (exclusive byte offset) of the piece that starts at `start`; `start` must be below
    /// `bytes.len()`. The piece is never empty.
    #[inline]
    pub fn piece_end(self, bytes: &[u8], start: usize) -> usize {
        match self {
            Pattern::Gpt2 => gpt2::piece_end(bytes, start),
            Pattern::Cl100k => cl100k::piece_end(bytes, start),
            Pattern::O200k => o200k::piece_end(bytes, start),
        }
    }

    /// Splits `bytes` into pieces, in order; together they are exactly `bytes`.
    pub fn split(self, bytes: &[u8]) -> Pieces<'_> {
        Pieces { pattern: self, bytes, pos: 0 }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Pattern {
    type Err = TokenizerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "gpt2" | "r50k" | "r50k_base" | "p50k" | "p50k_base" => Ok(Pattern::Gpt2),
            "cl100k" | "cl100k_base" => Ok(Pattern::Cl100k),
            "o200k" | "o200k_base" => Ok(Pattern::O200k),
            _ => Err(TokenizerError::UnknownPattern { name: s.to_owned() }),
        }
    }
}

/// Iterator over the pieces of a text; see [`Pattern::split`].
#[derive(Debug, Clone)]
pub struct Pieces<'a> {
    pattern: Pattern,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        let start = self.pos;
        let end = self.pattern.piece_end(self.bytes, start);
        self.pos = end;
        Some(&self.bytes[start..end])
    }
}

/// Helpers shared by the three state machines.
mod scan {
    use super::chars::{Char, WS, decode};

    /// The end of the run of characters whose class intersects `mask`, starting at `i`.
    #[inline]
    pub(super) fn run(bytes: &[u8], mut i: usize, mask: u8) -> usize {
        while i < bytes.len() {
            let c = decode(bytes, i);
            if c.class & mask == 0 {
                break;
            }
            i += c.len;
        }
        i
    }

    /// The character at `i`, or `None` at the end.
    #[inline]
    pub(super) fn at(bytes: &[u8], i: usize) -> Option<Char> {
        (i < bytes.len()).then(|| decode(bytes, i))
    }

    /// "Other": not white space, not a letter, not a number (`[^\s\p{L}\p{N}]`).
    #[inline]
    pub(super) fn is_other(c: Char) -> bool {
        c.class & (WS | super::chars::LETTER | super::chars::NUM) == 0
    }

    /// The white-space run starting at `i`: its end, and the start of its last character.
    #[inline]
    pub(super) fn ws_run(bytes: &[u8], mut i: usize) -> (usize, usize) {
        let mut last = i;
        while i < bytes.len() {
            let c = decode(bytes, i);
            if c.class & WS == 0 {
                break;
            }
            last = i;
            i += c.len;
        }
        (i, last)
    }

    /// The run of "other" characters starting at `i`.
    #[inline]
    pub(super) fn other_run(bytes: &[u8], mut i: usize) -> usize {
        while i < bytes.len() {
            let c = decode(bytes, i);
            if !is_other(c) {
                break;
            }
            i += c.len;
        }
        i
    }

    /// The position just after the last `\r` or `\n` in `bytes[from..to]`, if any.
    #[inline]
    pub(super) fn after_last_newline(bytes: &[u8], from: usize, to: usize) -> Option<usize> {
        // `\r` and `\n` are single bytes that never occur inside a multi-byte UTF-8 character.
        bytes[from..to].iter().rposition(|&b| b == b'\r' || b == b'\n').map(|p| from + p + 1)
    }
}

#[cfg(test)]
mod tests;
