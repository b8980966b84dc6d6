//! [`Tokenizer`]: a vocabulary, a pre-tokenization pattern and special tokens; encode and decode.

use crate::TokenizerError;
use crate::bpe::{Scratch, encode_piece};
use crate::pretokenize::Pattern;
use crate::vocab::{TokenId, Vocab};

/// A byte-level BPE tokenizer.
///
/// Encoding splits the text with its [`Pattern`], then byte-pair merges each piece; decoding concatenates the
/// tokens' bytes. Every byte string round-trips exactly: `decode(encode_bytes(b)) == b`, invalid UTF-8
/// included, because every single byte is a token.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    vocab: Vocab,
    pattern: Pattern,
    /// Special tokens, sorted by id.
    specials: Vec<(String, TokenId)>,
}

impl Tokenizer {
    /// Builds a tokenizer from `(token bytes, id)` entries, where the id is also the merge rank (lower merges
    /// first), plus special tokens with their ids.
    ///
    /// Fails if ids or bytes repeat, a token is empty, a single byte has no token, or a special token is empty,
    /// repeated, or shares an id with an ordinary token.
    pub fn from_ranks(
        entries: Vec<(Vec<u8>, TokenId)>,
        pattern: Pattern,
        specials: Vec<(String, TokenId)>,
    ) -> Result<Self, TokenizerError> {
        let vocab = Vocab::new(entries)?;
        let mut specials = specials;
        specials.sort_by_key(|(_, id)| *id);
        for (i, (text, id)) in specials.iter().enumerate() {
            let bad = |reason: &str| TokenizerError::BadSpecialToken {
                token: text.clone(),
                id: *id,
                reason: reason.to_owned(),
            };
            if text.is_empty() {
                return Err(bad("it is empty; expected a non-empty string"));
            }
            if vocab.get(*id).is_some() {
                return Err(bad("its id is an ordinary token's id; expected an unused id"));
            }
            if specials[..i].iter().any(|(t, other)| t == text || other == id) {
                return Err(bad("it is given twice; expected each special token and id once"));
            }
        }
        Ok(Tokenizer { vocab, pattern, specials })
    }

    /// Builds a tokenizer from the text of a tiktoken rank file.
    pub fn from_tiktoken(
        ranks: &str,
        pattern: Pattern,
        specials: Vec<(String, TokenId)>,
    ) -> Result<Self, TokenizerError> {
        Self::from_ranks(crate::rankfile::parse_tiktoken(ranks)?, pattern, specials)
    }

    /// The pre-tokenization pattern.
    pub fn pattern(&self) -> Pattern {
        self.pattern
    }

    /// The special tokens and their ids, sorted by id.
    pub fn special_tokens(&self) -> &[(String, TokenId)] {
        &self.specials
    }

    /// Number of ordinary tokens (not counting special tokens).
    pub fn ordinary_vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Number of tokens, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len() + self.specials.len()
    }

    /// One more than the largest id, ordinary or special: the size an embedding table needs.
    pub fn id_bound(&self) -> usize {
        let special_max = self.specials.last().map_or(0, |(_, id)| *id as usize + 1);
        self.vocab.id_bound().max(special_max)
    }

    /// Number of `(left, right) -> merged` rules derived from the vocabulary.
    pub fn merge_rule_count(&self) -> usize {
        self.vocab.pair_count()
    }

    /// The bytes of an ordinary or special token.
    pub fn token_bytes(&self, id: TokenId) -> Option<&[u8]> {
        self.vocab.get(id).or_else(|| self.special_text(id).map(str::as_bytes))
    }

    /// The text of a special token.
    pub fn special_text(&self, id: TokenId) -> Option<&str> {
        self.specials.binary_search_by_key(&id, |(_, i)| *i).ok().map(|i| self.specials[i].0.as_str())
    }

    /// The id of a special token.
    pub fn special_id(&self, text: &str) -> Option<TokenId> {
        self.specials.iter().find(|(t, _)| t == text).map(|(_, id)| *id)
    }

    /// The id of a byte string that is exactly one ordinary token.
    pub fn token_id(&self, bytes: &[u8]) -> Option<TokenId> {
        self.vocab.id_of(bytes)
    }

    /// Encodes text, treating special-token strings as ordinary text (tiktoken's `encode_ordinary`).
    pub fn encode(&self, text: &str) -> Vec<TokenId> {
        self.encode_bytes(text.as_bytes())
    }

    /// Encodes any bytes, invalid UTF-8 included, treating special-token strings as ordinary text.
    pub fn encode_bytes(&self, bytes: &[u8]) -> Vec<TokenId> {
        let mut out = Vec::with_capacity(bytes.len() / 3 + 1);
        self.encode_into(bytes, &mut out);
        out
    }

    /// Appends the tokens of `bytes` to `out` (no special tokens), reusing `out`'s allocation.
    pub fn encode_into(&self, bytes: &[u8], out: &mut Vec<TokenId>) {
        let mut scratch = Scratch::default();
        for piece in self.pattern.split(bytes) {
            encode_piece(&self.vocab, piece, out, &mut scratch);
        }
    }

    /// Encodes text, turning every occurrence of a special token's string into that token (tiktoken's
    /// `encode_with_special_tokens`). Merges never cross a special token.
    pub fn encode_with_special(&self, text: &str) -> Vec<TokenId> {
        self.encode_bytes_with_special(text.as_bytes())
    }

    /// Like [`Tokenizer::encode_with_special`], for any bytes.
    pub fn encode_bytes_with_special(&self, bytes: &[u8]) -> Vec<TokenId> {
        let mut out = Vec::with_capacity(bytes.len() / 3 + 1);
        for segment in self.split_special(bytes) {
            match segment {
                Segment::Text(bytes) => self.encode_into(bytes, &mut out),
                Segment::Special(id) => out.push(id),
            }
        }
        out
    }

    /// Splits bytes at occurrences of special tokens (leftmost first, the longest on a tie).
    pub fn split_special<'a>(&'a self, bytes: &'a [u8]) -> Vec<Segment<'a>> {
        let needles: Vec<&[u8]> = self.specials.iter().map(|(t, _)| t.as_bytes()).collect();
        let mut segments = Vec::new();
        let mut start = 0;
        for (at, which) in find_all(bytes, &needles) {
            if at > start {
                segments.push(Segment::Text(&bytes[start..at]));
            }
            segments.push(Segment::Special(self.specials[which].1));
            start = at + needles[which].len();
        }
        if start < bytes.len() {
            segments.push(Segment::Text(&bytes[start..]));
        }
        segments
    }

    /// Concatenates the bytes of the tokens; fails on an id that is not in the vocabulary.
    pub fn decode(&self, ids: &[TokenId]) -> Result<Vec<u8>, TokenizerError> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let bytes = self
                .token_bytes(id)
                .ok_or(TokenizerError::UnknownId { id, vocab_size: self.id_bound() as u32 })?;
            out.extend_from_slice(bytes);
        }
        Ok(out)
    }

    /// Decodes to a string, replacing invalid UTF-8 with U+FFFD.
    pub fn decode_lossy(&self, ids: &[TokenId]) -> Result<String, TokenizerError> {
        Ok(String::from_utf8_lossy(&self.decode(ids)?).into_owned())
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (&[u8], TokenId)> {
        (0..self.vocab.id_bound() as TokenId).filter_map(|id| self.vocab.get(id).map(|b| (b, id)))
    }
}

/// A part of a text split at special tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Ordinary text.
    Text(&'a [u8]),
    /// A special token.
    Special(TokenId),
}

/// Non-overlapping occurrences of any of `needles` in `haystack`, left to right: `(offset, needle index)`.
/// Where several needles start at the same offset the longest wins. Each needle's next occurrence is cached,
/// so the cost is linear in the text for each needle, however many matches there are.
pub(crate) fn find_all(haystack: &[u8], needles: &[&[u8]]) -> Vec<(usize, usize)> {
    let mut next: Vec<Option<usize>> = needles.iter().map(|n| find(haystack, n, 0)).collect();
    let mut found = Vec::new();
    loop {
        let best = next
            .iter()
            .enumerate()
            .filter_map(|(i, at)| at.map(|at| (at, std::cmp::Reverse(needles[i].len()), i)))
            .min();
        let Some((at, _, which)) = best else { return found };
        found.push((at, which));
        let start = at + needles[which].len();
        for (i, slot) in next.iter_mut().enumerate() {
            if slot.is_some_and(|p| p < start) {
                *slot = find(haystack, needles[i], start);
            }
        }
    }
}

/// The first occurrence of a non-empty `needle` in `haystack` at or after `from`.
fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = from;
    while from < haystack.len() {
        let at = from + haystack[from..].iter().position(|&b| b == first)?;
        if haystack[at + 1..].starts_with(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}
