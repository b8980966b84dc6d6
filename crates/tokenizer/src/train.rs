//! Learning a byte-level BPE vocabulary from text.
//!
//! The text is cut at special tokens, split into pieces with the [`Pattern`], and identical pieces are counted.
//! Starting from the 256 single bytes, the most frequent adjacent pair of tokens (counting every piece as
//! often as it occurs) is merged into a new token, again and again, until the vocabulary has the requested
//! size or no pair occurs at least [`TrainConfig::min_pair_count`] times.
//!
//! Determinism: ties between pairs of equal count go to the pair with the smaller left id, then the smaller
//! right id; pieces are processed in byte order. The same text and config always give the same merges.
//!
//! Speed: pair counts are updated incrementally. Each pair keeps the list of pieces it occurs in, so a merge
//! touches only those pieces; a max-heap with lazy re-insertion finds the next pair. Counts only fall for pairs
//! that do not involve the new token, so a popped entry whose count is out of date is simply re-queued.
//!
//! When a merge yields bytes that are already a token (the pair `ab`+`c` after `a`+`bc`), no new id is made:
//! tokens are identified by their bytes, as in a tiktoken rank file.
// The Fx maps here are only looked up and updated; nothing iterates them except to build a list that is then
// sorted, so their iteration order never reaches the result.
#![allow(clippy::disallowed_types)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use crate::TokenizerError;
use crate::pretokenize::Pattern;
use crate::tokenizer::Tokenizer;
use crate::vocab::{TokenId, pair_key};

/// How to train.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainConfig {
    /// Target vocabulary size, counting the 256 single bytes and the special tokens.
    pub vocab_size: usize,
    /// How the text is split before counting pairs.
    pub pattern: Pattern,
    /// Special tokens, given ids after the ordinary tokens in this order; their occurrences in the text
    /// separate pieces and are not learned from.
    pub special_tokens: Vec<String>,
    /// Stop when the most frequent pair occurs fewer times than this (at least 1).
    pub min_pair_count: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            vocab_size: 32_000,
            pattern: Pattern::Cl100k,
            special_tokens: Vec::new(),
            min_pair_count: 2,
        }
    }
}

/// What training did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainReport {
    /// Bytes of training text.
    pub input_bytes: usize,
    /// Pieces after pre-tokenization.
    pub pieces: u64,
    /// Distinct pieces.
    pub unique_pieces: usize,
    /// Merges performed.
    pub merges: usize,
    /// Merges whose bytes were already a token (no new id).
    pub repeated_merges: usize,
    /// Ordinary tokens in the result (256 + new tokens).
    pub ordinary_tokens: usize,
    /// Count of the last merged pair (0 if none).
    pub last_pair_count: u64,
    /// Whether training stopped before the requested size because no pair was frequent enough.
    pub stopped_early: bool,
}

struct Word {
    symbols: Vec<TokenId>,
    count: u64,
}

/// Trains a tokenizer on `text` (any bytes). Returns it with a report of what was done.
pub fn train(text: &[u8], config: &TrainConfig) -> Result<(Tokenizer, TrainReport), TokenizerError> {
    let specials = config.special_tokens.len();
    let minimum = 256 + specials;
    if config.vocab_size < minimum {
        return Err(TokenizerError::VocabTooSmall { vocab_size: config.vocab_size, minimum, specials });
    }
    let min_count = config.min_pair_count.max(1);
    let (mut words, pieces) = count_pieces(text, config);
    let mut report = TrainReport {
        input_bytes: text.len(),
        pieces,
        unique_pieces: words.len(),
        merges: 0,
        repeated_merges: 0,
        ordinary_tokens: 256,
        last_pair_count: 0,
        stopped_early: false,
    };

    let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    let mut ids: FxHashMap<Vec<u8>, TokenId> =
        tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as TokenId)).collect();
    let mut counts: FxHashMap<u64, u64> = FxHashMap::default();
    let mut places: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
    for (w, word) in words.iter().enumerate() {
        for pair in word.symbols.windows(2) {
            let key = pair_key(pair[0], pair[1]);
            *counts.entry(key).or_default() += word.count;
            places.entry(key).or_default().push(w as u32);
        }
    }
    let mut initial: Vec<(u64, Reverse<u64>)> = counts.iter().map(|(&k, &c)| (c, Reverse(k))).collect();
    initial.sort_unstable();
    let mut heap = BinaryHeap::from(initial);

    let target = config.vocab_size - specials;
    let mut touched: Vec<u64> = Vec::new();
    while tokens.len() < target {
        let Some((count, Reverse(key))) = heap.pop() else {
            report.stopped_early = true;
            break;
        };
        let current = counts.get(&key).copied().unwrap_or(0);
        if current != count {
            if current > 0 {
                heap.push((current, Reverse(key)));
            }
            continue;
        }
        if count < min_count {
            report.stopped_early = true;
            break;
        }
        let (a, b) = ((key >> 32) as TokenId, key as TokenId);
        let mut merged = tokens[a as usize].clone();
        merged.extend_from_slice(&tokens[b as usize]);
        let id = match ids.get(&merged) {
            Some(&id) => {
                report.repeated_merges += 1;
                id
            }
            None => {
                let id = tokens.len() as TokenId;
                ids.insert(merged.clone(), id);
                tokens.push(merged);
                id
            }
        };
        report.merges += 1;
        report.last_pair_count = count;

        let mut affected = places.remove(&key).unwrap_or_default();
        affected.sort_unstable();
        affected.dedup();
        touched.clear();
        for w in affected {
            apply_merge(&mut words[w as usize], w, (a, b, id), &mut counts, &mut places, &mut touched);
        }
        counts.remove(&key);
        touched.sort_unstable();
        touched.dedup();
        for &pair in &touched {
            if let Some(&c) = counts.get(&pair)
                && c > 0
            {
                heap.push((c, Reverse(pair)));
            }
        }
    }
    report.ordinary_tokens = tokens.len();
    let first_special = tokens.len() as TokenId;
    let entries = tokens.into_iter().enumerate().map(|(i, t)| (t, i as TokenId)).collect();
    let special_ids = config
        .special_tokens
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), first_special + i as TokenId))
        .collect();
    let tokenizer = Tokenizer::from_ranks(entries, config.pattern, special_ids)?;
    Ok((tokenizer, report))
}

/// Replaces every `a b` in the word by `id`, updating pair counts and recording pairs that involve `id`.
fn apply_merge(
    word: &mut Word,
    w: u32,
    (a, b, id): (TokenId, TokenId, TokenId),
    counts: &mut FxHashMap<u64, u64>,
    places: &mut FxHashMap<u64, Vec<u32>>,
    touched: &mut Vec<u64>,
) {
    let symbols = &word.symbols;
    if !symbols.windows(2).any(|p| p[0] == a && p[1] == b) {
        return;
    }
    for pair in symbols.windows(2) {
        let key = pair_key(pair[0], pair[1]);
        if let Some(c) = counts.get_mut(&key) {
            *c = c.saturating_sub(word.count);
        }
    }
    let mut out = Vec::with_capacity(symbols.len());
    let mut i = 0;
    while i < symbols.len() {
        if i + 1 < symbols.len() && symbols[i] == a && symbols[i + 1] == b {
            out.push(id);
            i += 2;
        } else {
            out.push(symbols[i]);
            i += 1;
        }
    }
    for pair in out.windows(2) {
        let key = pair_key(pair[0], pair[1]);
        *counts.entry(key).or_default() += word.count;
        if pair[0] == id || pair[1] == id {
            places.entry(key).or_default().push(w);
            touched.push(key);
        }
    }
    word.symbols = out;
}

/// Splits the text at special tokens and into pieces; returns the distinct pieces (in byte order) with their
/// counts, and the total number of pieces.
fn count_pieces(text: &[u8], config: &TrainConfig) -> (Vec<Word>, u64) {
    let mut counts: FxHashMap<&[u8], u64> = FxHashMap::default();
    let mut total = 0u64;
    for segment in split_at_specials(text, &config.special_tokens) {
        for piece in config.pattern.split(segment) {
            *counts.entry(piece).or_default() += 1;
            total += 1;
        }
    }
    let mut pieces: Vec<(&[u8], u64)> = counts.into_iter().collect();
    pieces.sort_unstable();
    let words = pieces
        .into_iter()
        .map(|(p, count)| Word { symbols: p.iter().map(|&b| TokenId::from(b)).collect(), count })
        .collect();
    (words, total)
}

/// The parts of `text` between occurrences of any special token.
fn split_at_specials<'a>(text: &'a [u8], specials: &[String]) -> Vec<&'a [u8]> {
    let needles: Vec<&[u8]> = specials.iter().map(String::as_bytes).filter(|s| !s.is_empty()).collect();
    let mut parts = Vec::new();
    let mut start = 0;
    for (at, which) in crate::tokenizer::find_all(text, &needles) {
        parts.push(&text[start..at]);
        start = at + needles[which].len();
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests;
