//! The vocabulary: token bytes by id, ids by bytes, and the merge table derived from them.
//!
//! A rank file (tiktoken's format) lists token byte strings with their ranks, and the rank doubles as the
//! token id and the merge priority: two adjacent parts merge when their concatenation is a token, lowest rank
//! first. [`Vocab`] keeps that rule but precomputes it as a pair table, `(left id, right id) -> merged id`,
//! for every way of cutting a token into two tokens, so the merge loop hashes two integers instead of a
//! byte slice.
// The maps below are lookup-only: they are filled from a rank list and queried, never iterated, so their
// random iteration order can never reach an output. That is why the std `HashMap` ban (for determinism)
// does not apply here, and why they use the fast, non-DoS-resistant Fx hash.
#![allow(clippy::disallowed_types)]

use rustc_hash::FxHashMap;

use crate::TokenizerError;
use crate::error::escape_for_message;

/// Token ids are `u32`, as in tiktoken.
pub type TokenId = u32;

/// Marks an absent id in [`Vocab`]'s span table.
const ABSENT: u32 = u32::MAX;

/// The ordinary (non-special) tokens of a tokenizer.
#[derive(Debug, Clone)]
pub(crate) struct Vocab {
    /// All token bytes, concatenated in id order.
    bytes: Vec<u8>,
    /// `spans[id] = (start, len)` into `bytes`; `len == ABSENT` for an id without a token.
    spans: Vec<(u32, u32)>,
    /// Id of each token's bytes.
    by_bytes: FxHashMap<Box<[u8]>, TokenId>,
    /// `(left << 32 | right) -> merged id` for every split of every token into two tokens.
    pairs: FxHashMap<u64, TokenId>,
    /// Id of each single byte.
    byte_ids: [TokenId; 256],
    /// Number of tokens.
    len: usize,
}

#[inline]
pub(crate) fn pair_key(left: TokenId, right: TokenId) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

impl Vocab {
    /// Builds a vocabulary from `(bytes, id)` entries, checking that ids and bytes are unique, no token is
    /// empty and every single byte has a token.
    pub(crate) fn new(entries: Vec<(Vec<u8>, TokenId)>) -> Result<Self, TokenizerError> {
        let max_id = entries.iter().map(|(_, id)| *id).max().unwrap_or(0);
        let mut spans = vec![(0u32, ABSENT); entries.len().max(max_id as usize + 1)];
        let mut bytes = Vec::with_capacity(entries.iter().map(|(b, _)| b.len()).sum());
        let mut by_bytes: FxHashMap<Box<[u8]>, TokenId> = FxHashMap::default();
        by_bytes.reserve(entries.len());
        for (token, id) in &entries {
            if token.is_empty() {
                return Err(TokenizerError::EmptyToken { id: *id });
            }
            let slot = &mut spans[*id as usize];
            if slot.1 != ABSENT {
                return Err(TokenizerError::DuplicateId { id: *id });
            }
            *slot = (bytes.len() as u32, token.len() as u32);
            bytes.extend_from_slice(token);
            if let Some(first) = by_bytes.insert(token.clone().into_boxed_slice(), *id) {
                return Err(TokenizerError::DuplicateBytes {
                    bytes: escape_for_message(token),
                    first: first.min(*id),
                    second: first.max(*id),
                });
            }
        }
        let mut byte_ids = [0; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            *slot = *by_bytes.get(&[b as u8][..]).ok_or(TokenizerError::MissingByte { byte: b as u8 })?;
        }
        let mut vocab =
            Vocab { bytes, spans, by_bytes, pairs: FxHashMap::default(), byte_ids, len: entries.len() };
        vocab.build_pairs();
        Ok(vocab)
    }

    fn build_pairs(&mut self) {
        let mut pairs = FxHashMap::default();
        for id in 0..self.spans.len() as TokenId {
            let Some(token) = self.get(id) else { continue };
            for cut in 1..token.len() {
                if let (Some(&l), Some(&r)) =
                    (self.by_bytes.get(&token[..cut]), self.by_bytes.get(&token[cut..]))
                {
                    pairs.insert(pair_key(l, r), id);
                }
            }
        }
        self.pairs = pairs;
    }

    /// The bytes of token `id`, if it exists.
    #[inline]
    pub(crate) fn get(&self, id: TokenId) -> Option<&[u8]> {
        let &(start, len) = self.spans.get(id as usize)?;
        (len != ABSENT).then(|| &self.bytes[start as usize..(start + len) as usize])
    }

    /// The id of a whole byte string, if it is a token.
    #[inline]
    pub(crate) fn id_of(&self, bytes: &[u8]) -> Option<TokenId> {
        self.by_bytes.get(bytes).copied()
    }

    /// The token that merging `left` and `right` makes, if any. Its id is also its merge priority.
    #[inline]
    pub(crate) fn merge(&self, left: TokenId, right: TokenId) -> Option<TokenId> {
        self.pairs.get(&pair_key(left, right)).copied()
    }

    /// The id of a single byte.
    #[inline]
    pub(crate) fn byte_id(&self, byte: u8) -> TokenId {
        self.byte_ids[usize::from(byte)]
    }

    /// Number of tokens.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// One more than the largest id.
    pub(crate) fn id_bound(&self) -> usize {
        self.spans.len()
    }

    /// Number of distinct `(left, right) -> merged` rules.
    pub(crate) fn pair_count(&self) -> usize {
        self.pairs.len()
    }
}
