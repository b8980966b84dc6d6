//! The cl100k split pattern as a state machine.
//!
//! `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s`
//!
//! The alternatives are tried in order at each position and the first that matches wins, as in a backtracking
//! regex engine. Each branch below is commented with the alternative it implements.

use super::chars::{Char, LETTER, NUM, WS, folds_to};
use super::scan::{after_last_newline, at, is_other, other_run, run, ws_run};

/// The length of a cl100k contraction (`'s`, `'LL`, ...) starting at `i` (which holds `'`), if any.
#[inline]
pub(super) fn contraction_len(bytes: &[u8], i: usize) -> Option<usize> {
    let c1 = at(bytes, i + 1)?;
    if [b's', b'd', b'm', b't'].iter().any(|&l| folds_to(c1, l)) {
        return Some(1 + c1.len);
    }
    let c2 = at(bytes, i + 1 + c1.len)?;
    let pairs = [(b'l', b'l'), (b'v', b'e'), (b'r', b'e')];
    pairs.iter().any(|&(a, b)| folds_to(c1, a) && folds_to(c2, b)).then_some(1 + c1.len + c2.len)
}

#[inline]
fn is_newline(c: Char) -> bool {
    c.cp == u32::from(b'\r') || c.cp == u32::from(b'\n')
}

/// The end of the piece starting at `i`.
pub(super) fn piece_end(bytes: &[u8], i: usize) -> usize {
    let c0 = super::chars::decode(bytes, i);
    // '(?i:[sdmt]|ll|ve|re)
    if c0.cp == u32::from(b'\'')
        && let Some(len) = contraction_len(bytes, i)
    {
        return i + len;
    }
    // [^\r\n\p{L}\p{N}]?+\p{L}++
    if c0.class & LETTER != 0 {
        return run(bytes, i + c0.len, LETTER);
    }
    if c0.class & NUM == 0
        && !is_newline(c0)
        && let Some(c1) = at(bytes, i + c0.len)
        && c1.class & LETTER != 0
    {
        return run(bytes, i + c0.len + c1.len, LETTER);
    }
    // \p{N}{1,3}+
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
    //  ?[^\s\p{L}\p{N}]++[\r\n]*+
    let other_start = if c0.cp == u32::from(b' ') {
        at(bytes, i + 1).filter(|&c| is_other(c)).map(|_| i + 1)
    } else if is_other(c0) {
        Some(i)
    } else {
        None
    };
    if let Some(start) = other_start {
        let mut end = other_run(bytes, start);
        while end < bytes.len() && (bytes[end] == b'\r' || bytes[end] == b'\n') {
            end += 1;
        }
        return end;
    }
    // What is left starts with white space.
    debug_assert!(c0.class & WS != 0);
    let (ws_end, last_start) = ws_run(bytes, i);
    // \s++$
    if ws_end == bytes.len() {
        return ws_end;
    }
    // \s*[\r\n]
    if let Some(end) = after_last_newline(bytes, i, ws_end) {
        return end;
    }
    // \s+(?!\S): all but the last white-space character, if that leaves at least one.
    if last_start > i {
        return last_start;
    }
    // \s
    i + c0.len
}
