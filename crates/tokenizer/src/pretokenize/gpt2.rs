//! The GPT-2 (r50k, p50k) split pattern as a state machine.
//!
//! `'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s`
//!
//! Alternatives are tried in order at each position; the first that matches wins.

use super::chars::{LETTER, NUM, WS};
use super::scan::{at, is_other, other_run, run, ws_run};

/// The length of a case-sensitive GPT-2 contraction starting at `i` (which holds `'`), if any.
#[inline]
fn contraction_len(bytes: &[u8], i: usize) -> Option<usize> {
    let rest = &bytes[i + 1..];
    match rest.first()? {
        b's' | b'd' | b'm' | b't' => Some(2),
        b'l' if rest.get(1) == Some(&b'l') => Some(3),
        b'v' | b'r' if rest.get(1) == Some(&b'e') => Some(3),
        _ => None,
    }
}

/// The end of the piece starting at `i`.
pub(super) fn piece_end(bytes: &[u8], i: usize) -> usize {
    let c0 = super::chars::decode(bytes, i);
    if c0.cp == u32::from(b'\'')
        && let Some(len) = contraction_len(bytes, i)
    {
        return i + len;
    }
    // ` ?X++` for X in letters, numbers, other: an optional leading space, then a maximal run of one class.
    let (body_start, body) = if c0.cp == u32::from(b' ') {
        match at(bytes, i + 1) {
            Some(c1) if c1.class & WS == 0 => (i + 1, c1),
            _ => (i, c0),
        }
    } else {
        (i, c0)
    };
    if body.class & LETTER != 0 {
        return run(bytes, body_start + body.len, LETTER);
    }
    if body.class & NUM != 0 {
        return run(bytes, body_start + body.len, NUM);
    }
    if is_other(body) {
        return other_run(bytes, body_start + body.len);
    }
    debug_assert!(c0.class & WS != 0);
    let (ws_end, last_start) = ws_run(bytes, i);
    // \s++$
    if ws_end == bytes.len() {
        return ws_end;
    }
    // \s+(?!\S)
    if last_start > i {
        return last_start;
    }
    // \s
    i + c0.len
}
