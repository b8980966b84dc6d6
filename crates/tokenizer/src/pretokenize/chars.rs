//! Character classes for the pre-tokenizers, and a UTF-8 decoder that never fails.
//!
//! The tables come from `regex-syntax`, the same Unicode data that `regex` and `fancy-regex` (and so tiktoken)
//! use, so `\p{L}`, `\p{N}`, `\s` and friends mean exactly what they mean in the reference patterns. They are
//! built once, on first use, into a two-level table: the code point's high bits pick a 128-entry block, and
//! identical blocks are stored once (about 60 KB in all).
//!
//! Bytes that are not valid UTF-8 decode as one-byte characters of no class (like U+FFFD, a symbol), so every
//! byte string splits into pieces that cover it exactly.

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Uppercase letter, `\p{Lu}`.
pub(crate) const LU: u8 = 1;
/// Lowercase letter, `\p{Ll}`.
pub(crate) const LL: u8 = 2;
/// Titlecase letter, `\p{Lt}`.
pub(crate) const LT: u8 = 4;
/// Modifier letter, `\p{Lm}`.
pub(crate) const LM: u8 = 8;
/// Other letter, `\p{Lo}`.
pub(crate) const LO: u8 = 16;
/// Mark, `\p{M}`.
pub(crate) const MARK: u8 = 32;
/// Number, `\p{N}`.
pub(crate) const NUM: u8 = 64;
/// White space, `\s` (the Unicode `White_Space` property).
pub(crate) const WS: u8 = 128;
/// Any letter, `\p{L}`.
pub(crate) const LETTER: u8 = LU | LL | LT | LM | LO;
/// o200k's "upper" class, `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`.
pub(crate) const UPPERISH: u8 = LU | LT | LM | LO | MARK;
/// o200k's "lower" class, `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`.
pub(crate) const LOWERISH: u8 = LL | LM | LO | MARK;

const BLOCK: usize = 128;

/// The class table: `blocks[index[cp / 128] * 128 + cp % 128]`.
struct Table {
    index: Vec<u16>,
    blocks: Vec<u8>,
}

static TABLE: OnceLock<Table> = OnceLock::new();

/// The Unicode ranges of a one-class pattern such as `\p{Lu}`, from regex-syntax.
fn class_ranges(pattern: &str) -> Vec<(u32, u32)> {
    use regex_syntax::hir::{Class, HirKind};
    // The patterns are constants of this file; a test checks that each parses to a Unicode class.
    let Ok(hir) = regex_syntax::Parser::new().parse(pattern) else { return Vec::new() };
    match hir.kind() {
        HirKind::Class(Class::Unicode(class)) => {
            class.ranges().iter().map(|r| (u32::from(r.start()), u32::from(r.end()))).collect()
        }
        _ => Vec::new(),
    }
}

fn build_table() -> Table {
    let mut flags = vec![0u8; 0x11_0000];
    let classes = [
        (r"\p{Lu}", LU),
        (r"\p{Ll}", LL),
        (r"\p{Lt}", LT),
        (r"\p{Lm}", LM),
        (r"\p{Lo}", LO),
        (r"\p{M}", MARK),
        (r"\p{N}", NUM),
        (r"\s", WS),
    ];
    for (pattern, bit) in classes {
        for (start, end) in class_ranges(pattern) {
            for f in &mut flags[start as usize..=end as usize] {
                *f |= bit;
            }
        }
    }
    let mut seen: BTreeMap<&[u8], u16> = BTreeMap::new();
    let mut index = Vec::with_capacity(flags.len() / BLOCK);
    let mut blocks = Vec::new();
    for chunk in flags.chunks(BLOCK) {
        let next = u16::try_from(seen.len()).unwrap_or(u16::MAX);
        let id = *seen.entry(chunk).or_insert_with(|| {
            blocks.extend_from_slice(chunk);
            next
        });
        index.push(id);
    }
    Table { index, blocks }
}

/// The class flags of a code point (0 for anything that is not a letter, mark, number or white space).
#[inline]
pub(crate) fn class_of(cp: u32) -> u8 {
    let table = TABLE.get_or_init(build_table);
    let block = table.index[(cp as usize) / BLOCK] as usize;
    table.blocks[block * BLOCK + (cp as usize) % BLOCK]
}

/// Class flags of the 128 ASCII characters, computed once.
#[inline]
fn ascii_class(b: u8) -> u8 {
    static ASCII: OnceLock<[u8; 128]> = OnceLock::new();
    let table = ASCII.get_or_init(|| {
        let mut t = [0u8; 128];
        for (cp, slot) in t.iter_mut().enumerate() {
            *slot = class_of(cp as u32);
        }
        t
    });
    table[usize::from(b & 0x7f)]
}

/// One decoded character: its code point (U+FFFD for an invalid byte), class flags and length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Char {
    /// The code point; an invalid byte decodes as U+FFFD.
    pub(crate) cp: u32,
    /// The class flags (`LU`, `NUM`, ...); 0 for an invalid byte.
    pub(crate) class: u8,
    /// Length in bytes, 1 to 4.
    pub(crate) len: usize,
}

/// Decodes the character starting at `bytes[i]` (which must be in bounds).
///
/// Valid UTF-8 decodes as `str` would; any other byte decodes as a one-byte character of no class.
#[inline]
pub(crate) fn decode(bytes: &[u8], i: usize) -> Char {
    let b0 = bytes[i];
    if b0 < 0x80 {
        return Char { cp: u32::from(b0), class: ascii_class(b0), len: 1 };
    }
    decode_multibyte(bytes, i)
}

const INVALID: Char = Char { cp: 0xFFFD, class: 0, len: 1 };

fn decode_multibyte(bytes: &[u8], i: usize) -> Char {
    let b0 = bytes[i];
    let cont = |k: usize| -> Option<u32> {
        let b = *bytes.get(i + k)?;
        (b & 0xC0 == 0x80).then_some(u32::from(b & 0x3F))
    };
    // Ranges of the second byte follow the Unicode standard's table of well-formed UTF-8 (Table 3-7).
    let (len, second_ok): (usize, fn(u8) -> bool) = match b0 {
        0xC2..=0xDF => (2, |b| (0x80..=0xBF).contains(&b)),
        0xE0 => (3, |b| (0xA0..=0xBF).contains(&b)),
        0xE1..=0xEC | 0xEE..=0xEF => (3, |b| (0x80..=0xBF).contains(&b)),
        0xED => (3, |b| (0x80..=0x9F).contains(&b)),
        0xF0 => (4, |b| (0x90..=0xBF).contains(&b)),
        0xF1..=0xF3 => (4, |b| (0x80..=0xBF).contains(&b)),
        0xF4 => (4, |b| (0x80..=0x8F).contains(&b)),
        _ => return INVALID,
    };
    match bytes.get(i + 1) {
        Some(&b1) if second_ok(b1) => {}
        _ => return INVALID,
    }
    let mut cp = u32::from(b0) & (0x7F >> len);
    for k in 1..len {
        match cont(k) {
            Some(bits) => cp = (cp << 6) | bits,
            None => return INVALID,
        }
    }
    Char { cp, class: class_of(cp), len }
}

/// Whether `c` folds to the ASCII lowercase letter `lower` under Unicode simple case folding, as the
/// `(?i:...)` groups of the reference patterns match it. Only `s` (`ſ`, U+017F) and `k` (the Kelvin sign,
/// U+212A) have a non-ASCII variant among ASCII letters.
#[inline]
pub(crate) fn folds_to(c: Char, lower: u8) -> bool {
    let cp = c.cp;
    if cp < 0x80 {
        return (cp as u8).to_ascii_lowercase() == lower;
    }
    (lower == b's' && cp == 0x17F) || (lower == b'k' && cp == 0x212A)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code point's class must agree with the `regex` crate's reading of the same class.
    #[test]
    fn classes_agree_with_regex_for_every_code_point() {
        let checks = [
            (r"^\p{Lu}$", LU),
            (r"^\p{Ll}$", LL),
            (r"^\p{Lt}$", LT),
            (r"^\p{Lm}$", LM),
            (r"^\p{Lo}$", LO),
            (r"^\p{M}$", MARK),
            (r"^\p{N}$", NUM),
            (r"^\s$", WS),
            (r"^\p{L}$", LETTER),
        ];
        let regexes: Vec<(regex::Regex, u8)> =
            checks.iter().map(|(p, bit)| (regex::Regex::new(p).unwrap(), *bit)).collect();
        let mut buf = [0u8; 4];
        let mut letters = 0usize;
        for cp in (0..0x11_0000u32).step_by(1) {
            let Some(ch) = char::from_u32(cp) else { continue };
            let s = ch.encode_utf8(&mut buf);
            let class = decode(s.as_bytes(), 0).class;
            for (re, bit) in &regexes {
                assert_eq!(re.is_match(s), class & bit != 0, "U+{cp:04X} class {bit:#x}");
            }
            letters += usize::from(class & LETTER != 0);
        }
        assert!(letters > 100_000, "only {letters} letters found");
    }

    #[test]
    fn case_folding_agrees_with_regex() {
        let mut buf = [0u8; 4];
        for lower in *b"sdmtlvrek" {
            let re = regex::Regex::new(&format!("^(?i:{})$", lower as char)).unwrap();
            for cp in 0..0x11_0000u32 {
                let Some(ch) = char::from_u32(cp) else { continue };
                let s = ch.encode_utf8(&mut buf);
                assert_eq!(re.is_match(s), folds_to(decode(s.as_bytes(), 0), lower), "U+{cp:04X} vs {lower}");
            }
        }
    }

    #[test]
    fn decoding_matches_std_on_valid_text_and_flags_invalid_bytes() {
        let text = "aé€😀\u{10FFFF}";
        let mut i = 0;
        for ch in text.chars() {
            let c = decode(text.as_bytes(), i);
            assert_eq!((c.cp, c.len), (u32::from(ch), ch.len_utf8()));
            i += c.len;
        }
        for bad in [
            &[0x80u8][..],
            &[0xC0, 0x80],
            &[0xE0, 0x80, 0x80],
            &[0xED, 0xA0, 0x80],
            &[0xF4, 0x90],
            &[0xE2, 0x82],
        ] {
            let c = decode(bad, 0);
            assert_eq!((c.cp, c.class, c.len), (0xFFFD, 0, 1), "{bad:?}");
        }
    }
}
