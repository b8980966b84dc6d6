//! What a person wants to see of an encoding: each token's id and text, and summary counts.

use crate::tokenizer::Tokenizer;
use crate::vocab::TokenId;

/// One token of an encoding, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The token id.
    pub id: TokenId,
    /// The token's bytes.
    pub bytes: Vec<u8>,
    /// The bytes made printable by [`display_token`].
    pub text: String,
    /// Whether the token is a special token.
    pub special: bool,
}

/// The tokens of `ids` with their bytes and printable text; unknown ids show as `<unknown>`.
pub fn pieces(tokenizer: &Tokenizer, ids: &[TokenId]) -> Vec<Piece> {
    ids.iter()
        .map(|&id| {
            let special = tokenizer.special_text(id).is_some();
            let bytes = tokenizer.token_bytes(id).map(<[u8]>::to_vec);
            let text = bytes.as_deref().map_or_else(|| "<unknown>".to_owned(), display_token);
            Piece { id, bytes: bytes.unwrap_or_default(), text, special }
        })
        .collect()
}

/// Makes token bytes printable: valid UTF-8 is kept, except `\` and control characters, which are escaped
/// (`\n`, `\t`, `\u{7f}`); bytes that are not valid UTF-8 (a character split across tokens) show as `\xE2`.
pub fn display_token(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' || c.is_control() {
                out.extend(c.escape_debug());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// Summary counts of an encoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncodeStats {
    /// Number of tokens.
    pub tokens: usize,
    /// Number of Unicode characters (invalid bytes count one each, as U+FFFD).
    pub characters: usize,
    /// Number of bytes.
    pub bytes: usize,
    /// Compression: bytes per token (0 for no tokens).
    pub bytes_per_token: f64,
    /// Characters per token (0 for no tokens).
    pub characters_per_token: f64,
}

impl EncodeStats {
    /// The counts of encoding `input` into `token_count` tokens.
    pub fn new(input: &[u8], token_count: usize) -> Self {
        let characters = input.utf8_chunks().map(|c| c.valid().chars().count() + c.invalid().len()).sum();
        let per_token = |n: usize| if token_count == 0 { 0.0 } else { n as f64 / token_count as f64 };
        EncodeStats {
            tokens: token_count,
            characters,
            bytes: input.len(),
            bytes_per_token: per_token(input.len()),
            characters_per_token: per_token(characters),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_escapes_controls_and_invalid_bytes() {
        assert_eq!(display_token(b" hello"), " hello");
        assert_eq!(display_token(b"\n\t"), "\\n\\t");
        assert_eq!(display_token("é€".as_bytes()), "é€");
        assert_eq!(display_token(&[0xE2, 0x82]), "\\xE2\\x82");
        assert_eq!(display_token(b"a\\b"), "a\\\\b");
    }

    #[test]
    fn stats_count_characters_and_ratio() {
        let s = EncodeStats::new("héllo".as_bytes(), 2);
        assert_eq!((s.tokens, s.characters, s.bytes), (2, 5, 6));
        assert!((s.bytes_per_token - 3.0).abs() < 1e-12);
        assert_eq!(EncodeStats::new(b"", 0).bytes_per_token, 0.0);
    }
}
