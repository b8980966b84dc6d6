//! tiktoken's rank-file format: one token per line, `base64(token bytes) rank`, and the base64 codec it needs.

use crate::TokenizerError;
use crate::vocab::TokenId;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes bytes as standard, padded base64 (RFC 4648 §4).
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn sextet(c: u8) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    }))
}

/// Decodes standard, padded base64.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, TokenizerError> {
    let bad = |reason: &str| TokenizerError::BadBase64 {
        text: text.chars().take(40).collect(),
        reason: reason.to_owned(),
    };
    let raw = text.as_bytes();
    if !raw.len().is_multiple_of(4) {
        return Err(bad("length is not a multiple of 4"));
    }
    let mut out = Vec::with_capacity(raw.len() / 4 * 3);
    for (q, quad) in raw.chunks(4).enumerate() {
        let last = q + 1 == raw.len() / 4;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err(bad("misplaced '=' padding"));
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6)
                | sextet(c).ok_or_else(|| bad(&format!("character {:?} is not base64", char::from(c))))?;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Ok(out)
}

/// Parses a tiktoken rank file: lines of `base64 rank`; blank lines are skipped.
pub fn parse_tiktoken(text: &str) -> Result<Vec<(Vec<u8>, TokenId)>, TokenizerError> {
    parse_rank_lines(text, 0)
}

/// Parses rank lines, numbering them from `first_line` + 1 in errors.
pub(crate) fn parse_rank_lines(
    text: &str,
    first_line: usize,
) -> Result<Vec<(Vec<u8>, TokenId)>, TokenizerError> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = first_line + i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let (Some(token), Some(rank), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(TokenizerError::BadRankLine {
                line: line_no,
                reason: format!("{line:?} has not two fields"),
            });
        };
        let bytes = base64_decode(token)
            .map_err(|e| TokenizerError::BadRankLine { line: line_no, reason: e.to_string() })?;
        let rank: TokenId = rank.parse().map_err(|_| TokenizerError::BadRankLine {
            line: line_no,
            reason: format!("rank {rank:?} is not an integer from 0 to {}", TokenId::MAX),
        })?;
        entries.push((bytes, rank));
    }
    Ok(entries)
}

/// Writes `(bytes, rank)` entries as tiktoken rank lines, in the order given.
pub fn write_tiktoken<'a>(entries: impl IntoIterator<Item = (&'a [u8], TokenId)>) -> String {
    let mut out = String::new();
    for (bytes, rank) in entries {
        out.push_str(&base64_encode(bytes));
        out.push(' ');
        out.push_str(&rank.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        // RFC 4648 §10 test vectors.
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn base64_round_trips_every_byte_value() {
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for len in 0..all.len() {
            assert_eq!(base64_decode(&base64_encode(&all[..len])).unwrap(), &all[..len]);
        }
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let err = parse_tiktoken("IQ== 0\nnot-base64! 1\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = parse_tiktoken("IQ== x\n").unwrap_err();
        assert!(err.to_string().contains("rank \"x\""), "{err}");
        let err = parse_tiktoken("IQ==\n").unwrap_err();
        assert!(err.to_string().contains("not two fields"), "{err}");
        assert!(base64_decode("I=Q=").is_err());
    }
}
