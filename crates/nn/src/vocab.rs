//! Vocabularies: characters (nanoGPT's `shakespeare_char`) or a choir byte-level BPE.

use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};

/// The vocabulary a model was trained with.
#[derive(Debug, Clone)]
pub enum Vocab {
    /// One token per character.
    Char(CharVocab),
    /// A choir byte-level BPE tokenizer (`choir tokenize train`).
    Bpe(Box<tokenizer::Tokenizer>),
}

impl Vocab {
    /// Reads a choir BPE file's text (the caller reads the file).
    pub fn bpe_from_text(text: &str) -> Result<Vocab> {
        Ok(Vocab::Bpe(Box::new(
            tokenizer::Tokenizer::load(text).map_err(|e| NnError::Tokenizer(e.to_string()))?,
        )))
    }

    /// `char` or `bpe`.
    pub fn kind(&self) -> &'static str {
        match self {
            Vocab::Char(_) => "char",
            Vocab::Bpe(_) => "bpe",
        }
    }

    /// Rows the embedding table needs (one more than the largest id).
    pub fn size(&self) -> usize {
        match self {
            Vocab::Char(v) => v.len(),
            Vocab::Bpe(t) => t.id_bound(),
        }
    }

    /// Token ids of `text`. BPE treats special-token strings as ordinary text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Vocab::Char(v) => v.encode(text),
            Vocab::Bpe(t) => Ok(t.encode(text)),
        }
    }

    /// The text of `tokens`; invalid UTF-8 from a BPE token split mid-character shows as U+FFFD.
    pub fn decode(&self, tokens: &[u32]) -> Result<String> {
        match self {
            Vocab::Char(v) => v.decode(tokens),
            Vocab::Bpe(t) => t.decode_lossy(tokens).map_err(|e| NnError::Tokenizer(e.to_string())),
        }
    }

    /// A short printable label of one token (attention maps).
    pub fn token_label(&self, id: u32) -> String {
        match self {
            Vocab::Char(v) => v.token_label(id),
            Vocab::Bpe(t) => t.token_bytes(id).map_or_else(|| format!("<{id}>"), tokenizer::display_token),
        }
    }
}

/// A character-level vocabulary: the sorted distinct characters of a text, one token each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharVocab {
    /// The symbols, in token-id order.
    pub chars: Vec<char>,
}

impl CharVocab {
    /// The sorted distinct characters of `text` (nanoGPT's `data/shakespeare_char/prepare.py` does the same, so
    /// Tiny Shakespeare gives its 65 symbols).
    pub fn from_text(text: &str) -> CharVocab {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        CharVocab { chars }
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Whether there are no symbols.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// Token ids of `text`; fails on the first character outside the vocabulary.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars()
            .map(|ch| {
                self.chars.binary_search(&ch).map(|i| i as u32).map_err(|_| NnError::UnknownChar {
                    ch,
                    code: ch as u32,
                    n_symbols: self.chars.len(),
                })
            })
            .collect()
    }

    /// The text of `tokens`; fails on an id outside the vocabulary.
    pub fn decode(&self, tokens: &[u32]) -> Result<String> {
        tokens
            .iter()
            .map(|&id| {
                self.chars
                    .get(id as usize)
                    .copied()
                    .ok_or(NnError::BadToken { id, vocab_size: self.chars.len() })
            })
            .collect()
    }

    /// The display form of one token (for attention maps): the character, with whitespace made visible.
    pub fn token_label(&self, id: u32) -> String {
        match self.chars.get(id as usize) {
            Some('\n') => "\\n".to_string(),
            Some(' ') => "␣".to_string(),
            Some(c) => c.to_string(),
            None => format!("<{id}>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_vocab_round_trips_and_names_unknown_characters() {
        let v = CharVocab::from_text("hello world\n");
        assert_eq!(v.chars, vec!['\n', ' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
        let ids = v.encode("world hello").unwrap();
        assert_eq!(v.decode(&ids).unwrap(), "world hello");
        let err = v.encode("hi").unwrap_err().to_string();
        assert_eq!(err, "character 'i' (U+0069) is not in the 9-symbol vocabulary");
        assert!(v.decode(&[9]).is_err());
    }
}
