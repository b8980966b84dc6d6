//! Round trips: arbitrary bytes through encode/decode, tokenizers through save/load and rank files.

use tokenizer::{Encoding, Pattern, Tokenizer, TrainConfig, parse_tiktoken, train, write_tiktoken};

const FIXTURE: &str = include_str!("../data/fixture/corpus.txt");

/// xorshift64: a small seeded generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Random bytes of mixed shapes: uniform bytes, ASCII-heavy runs, valid multi-byte characters and slices of
    /// real text, so both invalid and valid UTF-8 occur.
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            match self.next() % 4 {
                0 => out.push(self.next() as u8),
                1 => out.extend_from_slice(b" \n\tab'sZ9."),
                2 => {
                    let c = char::from_u32((self.next() % 0x3_0000) as u32).unwrap_or('\u{FFFD}');
                    out.extend_from_slice(c.to_string().as_bytes());
                }
                _ => {
                    let start = (self.next() as usize) % (FIXTURE.len() - 64);
                    out.extend_from_slice(&FIXTURE.as_bytes()[start..start + (self.next() % 64) as usize]);
                }
            }
        }
        out.truncate(len);
        out
    }
}

fn trained() -> Tokenizer {
    let config = TrainConfig {
        vocab_size: 1000,
        pattern: Pattern::O200k,
        special_tokens: vec!["<|endoftext|>".into()],
        min_pair_count: 2,
    };
    train(&FIXTURE.as_bytes()[..100_000], &config).unwrap().0
}

#[test]
fn arbitrary_bytes_round_trip_exactly() {
    let mut tokenizers: Vec<Tokenizer> = Encoding::ALL.iter().map(|e| e.load().unwrap()).collect();
    tokenizers.push(trained());
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for case in 0..400 {
        let len = (rng.next() % 300) as usize;
        let bytes = rng.bytes(len);
        for tok in &tokenizers {
            let ids = tok.encode_bytes(&bytes);
            assert_eq!(tok.decode(&ids).unwrap(), bytes, "case {case}, pattern {}", tok.pattern());
            if let Ok(text) = std::str::from_utf8(&bytes) {
                assert_eq!(tok.encode(text), ids);
            }
        }
    }
}

#[test]
fn save_and_load_round_trip() {
    let tok = trained();
    let saved = tok.save();
    assert!(saved.starts_with(tokenizer::FILE_MAGIC));
    let loaded = Tokenizer::load(&saved).unwrap();
    assert_eq!(loaded.save(), saved);
    assert_eq!(loaded.pattern(), Pattern::O200k);
    assert_eq!(loaded.special_tokens(), tok.special_tokens());
    let text = &FIXTURE[100_000..140_000];
    assert_eq!(loaded.encode(text), tok.encode(text));
}

#[test]
fn load_reports_what_is_wrong() {
    let err = Tokenizer::load("IQ== 0\n").unwrap_err().to_string();
    assert!(err.contains("line 1") && err.contains("#choir-bpe 1"), "{err}");
    let saved = trained().save();
    let broken = saved.replacen("#pattern o200k", "#pattern bert", 1);
    let err = Tokenizer::load(&broken).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("bert"), "{err}");
    let truncated: String =
        saved.lines().take(100).filter(|l| !l.starts_with("AA")).collect::<Vec<_>>().join("\n");
    let err = Tokenizer::load(&truncated).unwrap_err().to_string();
    assert!(err.contains("single byte"), "{err}");
}

#[test]
fn tiktoken_rank_files_load_and_write_back() {
    let cl100k = Encoding::Cl100kBase.rank_file();
    let entries = parse_tiktoken(cl100k).unwrap();
    assert_eq!(entries.len(), 100_256);
    assert_eq!(entries[0], (b"!".to_vec(), 0));
    let written = write_tiktoken(entries.iter().map(|(b, r)| (b.as_slice(), *r)));
    assert_eq!(written, cl100k);
    let tok = Tokenizer::from_tiktoken(cl100k, Pattern::Cl100k, vec![]).unwrap();
    assert_eq!(tok.encode("hello world"), [15339, 1917]);
    assert_eq!(tok.ordinary_vocab_size(), 100_256);
    // The saved form of a loaded rank file is the same ranks under a header.
    let saved = tok.save();
    assert!(saved.ends_with(cl100k));
}

#[test]
fn a_small_hand_written_rank_file_encodes_as_expected() {
    let mut ranks: Vec<(Vec<u8>, u32)> = (0..=255u8).map(|b| (vec![b], u32::from(b))).collect();
    ranks.push((b"he".to_vec(), 256));
    ranks.push((b"ll".to_vec(), 257));
    ranks.push((b"hell".to_vec(), 258));
    ranks.push((b"hello".to_vec(), 259));
    let text = write_tiktoken(ranks.iter().map(|(b, r)| (b.as_slice(), *r)));
    let tok = Tokenizer::from_tiktoken(&text, Pattern::Gpt2, vec![("<|end|>".into(), 300)]).unwrap();
    assert_eq!(tok.encode("hello"), [259]);
    assert_eq!(tok.encode("hells"), [258, u32::from(b's')]);
    assert_eq!(tok.encode_with_special("hello<|end|>"), [259, 300]);
    // As plain text the special string gets no merges here: one token per byte.
    assert_eq!(tok.encode("<|end|>").len(), "<|end|>".len());
    assert!(tok.decode(&[299]).unwrap_err().to_string().contains("299"));
}

#[test]
fn bad_vocabularies_are_refused_with_the_offending_value() {
    let mut ranks: Vec<(Vec<u8>, u32)> = (0..=255u8).map(|b| (vec![b], u32::from(b))).collect();
    ranks.push((b"a".to_vec(), 256));
    let err = Tokenizer::from_ranks(ranks, Pattern::Gpt2, vec![]).unwrap_err().to_string();
    assert!(err.contains("97") && err.contains("256"), "{err}");
    let ranks: Vec<(Vec<u8>, u32)> = (1..=255u8).map(|b| (vec![b], u32::from(b))).collect();
    let err = Tokenizer::from_ranks(ranks, Pattern::Gpt2, vec![]).unwrap_err().to_string();
    assert!(err.contains("0x00"), "{err}");
    let ranks: Vec<(Vec<u8>, u32)> = (0..=255u8).map(|b| (vec![b], u32::from(b))).collect();
    let err = Tokenizer::from_ranks(ranks, Pattern::Gpt2, vec![("<s>".into(), 5)]).unwrap_err().to_string();
    assert!(err.contains("<s>") && err.contains('5'), "{err}");
}
