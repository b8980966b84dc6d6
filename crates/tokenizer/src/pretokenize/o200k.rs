//! The o200k split pattern as a state machine.
//!
//! ```text
//! [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//! |[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//! |\p{N}{1,3}
//! | ?[^\s\p{L}\p{N}]+[\r\n/]*
//! |\s*[\r\n]+
//! |\s+(?!\S)
//! |\s+
//! ```
//!
//! These quantifiers are not possessive, so the first two alternatives backtrack: the optional prefix is
//! tried taken, then not taken, and the greedy "upper" run gives characters back until a "lower" run can
//! start. The code below follows that search order exactly.

use super::chars::{Char, LETTER, LOWERISH, NUM, UPPERISH, WS, decode, folds_to};
use super::scan::{after_last_newline, at, is_other, other_run, run, ws_run};

/// The length of `(?i:'s|'t|'re|'ve|'m|'ll|'d)` at `i`, or 0.
#[inline]
fn contraction_len(bytes: &[u8], i: usize) -> usize {
    if bytes.get(i) != Some(&b'\'') {
        return 0;
    }
    let Some(c1) = at(bytes, i + 1) else { return 0 };
    if [b's', b't', b'm', b'd'].iter().any(|&l| folds_to(c1, l)) {
        return 1 + c1.len;
    }
    let Some(c2) = at(bytes, i + 1 + c1.len) else { return 0 };
    let pairs = [(b'r', b'e'), (b'v', b'e'), (b'l', b'l')];
    if pairs.iter().any(|&(a, b)| folds_to(c1, a) && folds_to(c2, b)) { 1 + c1.len + c2.len } else { 0 }
}

/// `[^\r\n\p{L}\p{N}]`: the optional one-character prefix of a word.
#[inline]
fn is_prefix(c: Char) -> bool {
    c.class & (LETTER | NUM) == 0 && c.cp != u32::from(b'\r') && c.cp != u32::from(b'\n')
}

/// `U*L+C?` from `s`: the greedy upper run, then the rightmost start from which a lower run can begin.
fn upper_star_lower_plus(bytes: &[u8], s: usize) -> Option<usize> {
    let upper_end = run(bytes, s, UPPERISH);
    if let Some(c) = at(bytes, upper_end)
        && c.class & LOWERISH != 0
    {
        let end = run(bytes, upper_end + c.len, LOWERISH);
        return Some(end + contraction_len(bytes, end));
    }
    // Give back upper-run characters one at a time until one of them can start the lower run. Every
    // character after it in the upper run is then not "lower", so the lower run is that one character.
    let mut k = upper_end;
    while k > s {
        k = prev_char_start(bytes, s, k);
        let c = decode(bytes, k);
        if c.class & LOWERISH != 0 {
            let end = k + c.len;
            return Some(end + contraction_len(bytes, end));
        }
    }
    None
}

/// `U+L*C?` from `s`.
fn upper_plus_lower_star(bytes: &[u8], s: usize) -> Option<usize> {
    let upper_end = run(bytes, s, UPPERISH);
    if upper_end == s {
        return None;
    }
    let end = run(bytes, upper_end, LOWERISH);
    Some(end + contraction_len(bytes, end))
}

/// The start of the character that ends at `end`, no further back than `floor`.
///
/// Only used inside a run of classified (so validly encoded) characters, whose lead bytes are never
/// continuation bytes.
#[inline]
fn prev_char_start(bytes: &[u8], floor: usize, end: usize) -> usize {
    let mut k = end - 1;
    while k > floor && bytes[k] & 0xC0 == 0x80 {
        k -= 1;
    }
    k
}

/// The end of the piece starting at `i`.
pub(super) fn piece_end(bytes: &[u8], i: usize) -> usize {
    let c0 = decode(bytes, i);
    let starts: [Option<usize>; 2] = [is_prefix(c0).then_some(i + c0.len), Some(i)];
    // Alternative 1, prefix taken then not taken; then alternative 2 likewise.
    for s in starts.iter().flatten() {
        if let Some(end) = upper_star_lower_plus(bytes, *s) {
            return end;
        }
    }
    for s in starts.iter().flatten() {
        if let Some(end) = upper_plus_lower_star(bytes, *s) {
            return end;
        }
    }
    // \p{N}{1,3}
    if c0.class & NUM != 0 {
        let mut end = i + c0.len;
        for _ in 0..2 {
            match at(bytes, end) {
                Some(c) if c.class & NUM != 0 => end += c.len,
                _ => break,
            }
        }
        return end;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n/]*
    let other_start = if c0.cp == u32::from(b' ') {
        at(bytes, i + 1).filter(|&c| is_other(c)).map(|_| i + 1)
    } else if is_other(c0) {
        Some(i)
    } else {
        None
    };
    if let Some(start) = other_start {
        let mut end = other_run(bytes, start);
        while end < bytes.len() && matches!(bytes[end], b'\r' | b'\n' | b'/') {
            end += 1;
        }
        return end;
    }
    debug_assert!(c0.class & WS != 0);
    let (ws_end, last_start) = ws_run(bytes, i);
    // \s*[\r\n]+
    if let Some(end) = after_last_newline(bytes, i, ws_end) {
        return end;
    }
    // \s+(?!\S)
    if ws_end == bytes.len() {
        return ws_end;
    }
    if last_start > i {
        return last_start;
    }
    // \s+
    ws_end
}
