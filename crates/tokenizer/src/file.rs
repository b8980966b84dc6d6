//! Saving and loading a tokenizer as text: a short header, then tiktoken rank lines.
//!
//! ```text
//! #choir-bpe 1
//! #pattern cl100k
//! #special PHxlbmRvZnRleHR8Pg== 100257
//! IQ== 0
//! Ig== 1
//! ...
//! ```
//!
//! Special tokens are base64-encoded like ordinary ones, so any string survives. Dropping the `#` lines leaves
//! a plain tiktoken rank file.

use crate::TokenizerError;
use crate::pretokenize::Pattern;
use crate::rankfile::{base64_decode, base64_encode, parse_rank_lines, write_tiktoken};
use crate::tokenizer::Tokenizer;

/// The first line of a saved tokenizer.
pub const FILE_MAGIC: &str = "#choir-bpe 1";

impl Tokenizer {
    /// Serialises the tokenizer in choir's text format (see the module docs); [`Tokenizer::load`] reads it back.
    pub fn save(&self) -> String {
        let mut out = format!("{FILE_MAGIC}\n#pattern {}\n", self.pattern().name());
        for (text, id) in self.special_tokens() {
            out.push_str(&format!("#special {} {id}\n", base64_encode(text.as_bytes())));
        }
        out.push_str(&write_tiktoken(self.entries()));
        out
    }

    /// Reads a tokenizer saved by [`Tokenizer::save`].
    pub fn load(text: &str) -> Result<Self, TokenizerError> {
        let bad = |line: usize, reason: String| TokenizerError::BadFile { line, reason };
        let mut lines = text.lines();
        match lines.next() {
            Some(first) if first.trim_end() == FILE_MAGIC => {}
            other => {
                let seen: String = other.unwrap_or("").chars().take(40).collect();
                return Err(bad(
                    1,
                    format!(
                        "found {seen:?}; expected {FILE_MAGIC:?} (a file written by `choir tokenize train`)"
                    ),
                ));
            }
        }
        let mut pattern = None;
        let mut specials = Vec::new();
        let mut header_lines = 1;
        let mut body_start = text.find('\n').map_or(text.len(), |p| p + 1);
        for line in lines {
            let Some(rest) = line.strip_prefix('#') else { break };
            header_lines += 1;
            body_start += line.len() + 1;
            let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
            match fields.as_slice() {
                ["pattern", name] => {
                    pattern = Some(name.parse::<Pattern>().map_err(|e| bad(header_lines, e.to_string()))?);
                }
                ["special", encoded, id] => {
                    let bytes = base64_decode(encoded).map_err(|e| bad(header_lines, e.to_string()))?;
                    let text = String::from_utf8(bytes)
                        .map_err(|_| bad(header_lines, "special token is not UTF-8".to_owned()))?;
                    let id = id
                        .parse()
                        .map_err(|_| bad(header_lines, format!("special id {id:?} is not an integer")))?;
                    specials.push((text, id));
                }
                _ => {
                    return Err(bad(
                        header_lines,
                        format!("unknown header {line:?}; expected `#pattern NAME` or `#special BASE64 ID`"),
                    ));
                }
            }
        }
        let pattern =
            pattern.ok_or_else(|| bad(header_lines, "no `#pattern` line; expected one".to_owned()))?;
        let body = text.get(body_start.min(text.len())..).unwrap_or("");
        let entries = parse_rank_lines(body, header_lines)?;
        Tokenizer::from_ranks(entries, pattern, specials)
    }
}
