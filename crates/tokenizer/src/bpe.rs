//! Byte-pair merging of one pre-tokenized piece.
//!
//! The rule is tiktoken's: start from single bytes, then repeatedly merge the adjacent pair whose merged
//! token has the lowest rank, the leftmost such pair on ties, until no adjacent pair forms a token. Short
//! pieces use a linear scan over a small array (cache-friendly; most pieces are a few bytes); long pieces use
//! a heap over a linked list, O(n log n), so pathological inputs (long runs of one character) stay fast.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::vocab::{TokenId, Vocab};

/// Pieces at least this long use the heap-based merge.
const LARGE_PIECE_BYTES: usize = 256;

const NONE: TokenId = TokenId::MAX;

/// Reusable buffers for [`encode_piece`], so encoding a text allocates once rather than per piece.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    parts: Vec<TokenId>,
    ranks: Vec<TokenId>,
    next: Vec<u32>,
    prev: Vec<u32>,
    heap: BinaryHeap<Reverse<(TokenId, u32)>>,
}

/// Appends the tokens of `piece` (non-empty) to `out`.
#[inline]
pub(crate) fn encode_piece(vocab: &Vocab, piece: &[u8], out: &mut Vec<TokenId>, scratch: &mut Scratch) {
    if let Some(id) = vocab.id_of(piece) {
        out.push(id);
    } else if piece.len() < LARGE_PIECE_BYTES {
        merge_linear(vocab, piece, out, scratch);
    } else {
        merge_heap(vocab, piece, out, scratch);
    }
}

#[inline]
fn rank(vocab: &Vocab, left: TokenId, right: TokenId) -> TokenId {
    vocab.merge(left, right).unwrap_or(NONE)
}

fn merge_linear(vocab: &Vocab, piece: &[u8], out: &mut Vec<TokenId>, scratch: &mut Scratch) {
    let parts = &mut scratch.parts;
    let ranks = &mut scratch.ranks;
    parts.clear();
    ranks.clear();
    parts.extend(piece.iter().map(|&b| vocab.byte_id(b)));
    ranks.extend(parts.windows(2).map(|w| rank(vocab, w[0], w[1])));
    loop {
        let mut best = NONE;
        let mut at = 0;
        for (i, &r) in ranks.iter().enumerate() {
            if r < best {
                best = r;
                at = i;
            }
        }
        if best == NONE {
            break;
        }
        // The pair's rank is the merged token's id.
        parts[at] = best;
        parts.remove(at + 1);
        ranks.remove(at);
        if at > 0 {
            ranks[at - 1] = rank(vocab, parts[at - 1], parts[at]);
        }
        if at < ranks.len() {
            ranks[at] = rank(vocab, parts[at], parts[at + 1]);
        }
    }
    out.extend_from_slice(parts);
}

fn merge_heap(vocab: &Vocab, piece: &[u8], out: &mut Vec<TokenId>, scratch: &mut Scratch) {
    let n = piece.len();
    let Scratch { parts, next, prev, heap, .. } = scratch;
    parts.clear();
    next.clear();
    prev.clear();
    heap.clear();
    parts.extend(piece.iter().map(|&b| vocab.byte_id(b)));
    next.extend((1..=n as u32).map(|i| if i as usize == n { u32::MAX } else { i }));
    prev.extend((0..n as u32).map(|i| if i == 0 { u32::MAX } else { i - 1 }));
    for i in 0..n - 1 {
        let r = rank(vocab, parts[i], parts[i + 1]);
        if r != NONE {
            heap.push(Reverse((r, i as u32)));
        }
    }
    // A removed part is marked by `parts[i] == NONE`.
    while let Some(Reverse((r, at))) = heap.pop() {
        let at = at as usize;
        let right = next[at];
        // Skip entries made stale by an earlier merge: the part or its right neighbour changed.
        if parts[at] == NONE || right == u32::MAX || rank(vocab, parts[at], parts[right as usize]) != r {
            continue;
        }
        let right = right as usize;
        parts[at] = r;
        parts[right] = NONE;
        next[at] = next[right];
        if next[at] != u32::MAX {
            prev[next[at] as usize] = at as u32;
        }
        if prev[at] != u32::MAX {
            let left = prev[at] as usize;
            let lr = rank(vocab, parts[left], parts[at]);
            if lr != NONE {
                heap.push(Reverse((lr, left as u32)));
            }
        }
        if next[at] != u32::MAX {
            let rr = rank(vocab, parts[at], parts[next[at] as usize]);
            if rr != NONE {
                heap.push(Reverse((rr, at as u32)));
            }
        }
    }
    let mut i = 0usize;
    while i != u32::MAX as usize {
        out.push(parts[i]);
        i = next[i] as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy vocabulary: all bytes, then merges that make "ab", "bc", "abc", "aa", "aaaa".
    fn toy() -> Vocab {
        let mut entries: Vec<(Vec<u8>, TokenId)> = (0..=255u8).map(|b| (vec![b], u32::from(b))).collect();
        for (i, t) in ["aa", "ab", "bc", "abc", "aaaa", "aaa"].iter().enumerate() {
            entries.push((t.as_bytes().to_vec(), 256 + i as u32));
        }
        Vocab::new(entries).unwrap()
    }

    fn encode_with(vocab: &Vocab, piece: &[u8], large: bool) -> Vec<TokenId> {
        let mut out = Vec::new();
        let mut scratch = Scratch::default();
        if large {
            merge_heap(vocab, piece, &mut out, &mut scratch)
        } else {
            merge_linear(vocab, piece, &mut out, &mut scratch)
        }
        out
    }

    #[test]
    fn merges_lowest_rank_first_and_leftmost_on_ties() {
        let v = toy();
        // "abc": "ab" (257) beats "bc" (258), then "ab"+"c" makes "abc" (259).
        assert_eq!(encode_with(&v, b"abc", false), vec![259]);
        // "aaaaa": leftmost "aa" pairs merge first: aa aa a -> "aaaa" a.
        assert_eq!(encode_with(&v, b"aaaaa", false), vec![260, u32::from(b'a')]);
        assert_eq!(encode_with(&v, b"xbcx", false), vec![u32::from(b'x'), 258, u32::from(b'x')]);
    }

    #[test]
    fn heap_and_linear_merges_agree() {
        let v = toy();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for len in 2..300 {
            let piece: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    b"aabcx"[(state % 5) as usize]
                })
                .collect();
            assert_eq!(encode_with(&v, &piece, true), encode_with(&v, &piece, false), "{piece:?}");
        }
    }
}
