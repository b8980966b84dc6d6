//! Token-for-token equality with `tiktoken-rs` (and `bpe-openai`) on real text.
//!
//! The committed fixture (`data/fixture/corpus.txt`, 322 KB) always runs. With `CHOIR_HEAVY_TESTS=1` the
//! comparison also runs on several MB gathered from this machine (`tests/support/corpus.rs`).

#[path = "support/corpus.rs"]
mod corpus;

use std::sync::OnceLock;

use tokenizer::{Encoding, Tokenizer};

const FIXTURE: &str = include_str!("../data/fixture/corpus.txt");

fn ours(e: Encoding) -> &'static Tokenizer {
    static CACHE: [OnceLock<Tokenizer>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = Encoding::ALL.iter().position(|x| *x == e).unwrap();
    CACHE[i].get_or_init(|| e.load().unwrap())
}

fn reference(e: Encoding) -> &'static tiktoken_rs::CoreBPE {
    static CACHE: [OnceLock<tiktoken_rs::CoreBPE>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = Encoding::ALL.iter().position(|x| *x == e).unwrap();
    CACHE[i].get_or_init(|| match e {
        Encoding::R50kBase => tiktoken_rs::r50k_base().unwrap(),
        Encoding::Cl100kBase => tiktoken_rs::cl100k_base().unwrap(),
        Encoding::O200kBase => tiktoken_rs::o200k_base().unwrap(),
    })
}

/// Compares whole-text encodings; on a mismatch, names the first differing token and the text around it.
fn assert_same(e: Encoding, label: &str, text: &str) {
    let expected = reference(e).encode_ordinary(text);
    let got = ours(e).encode(text);
    if got != expected {
        let at = got.iter().zip(&expected).position(|(a, b)| a != b).unwrap_or(got.len().min(expected.len()));
        let byte_at = ours(e).decode(&got[..at]).unwrap().len();
        let context =
            String::from_utf8_lossy(&text.as_bytes()[byte_at..(byte_at + 60).min(text.len())]).into_owned();
        panic!(
            "{} on {label}: first difference at token {at} (byte {byte_at}, text {context:?}): ours {:?} vs tiktoken {:?}",
            e.name(),
            &got[at..(at + 5).min(got.len())],
            &expected[at..(at + 5).min(expected.len())]
        );
    }
}

#[test]
fn fixture_matches_tiktoken_for_every_encoding() {
    for e in Encoding::ALL {
        assert_same(e, "fixture", FIXTURE);
        let n = ours(e).encode(FIXTURE).len();
        assert!(n > FIXTURE.len() / 8, "{}: only {n} tokens", e.name());
    }
}

#[test]
fn fixture_lines_match_tiktoken_one_by_one() {
    // Encoding each line alone moves every "end of text" rule (`\s++$`, `\s+(?!\S)`) to a new place.
    for e in [Encoding::Cl100kBase, Encoding::O200kBase] {
        for (i, line) in FIXTURE.split_inclusive('\n').enumerate().step_by(3) {
            assert_same(e, &format!("fixture line {}", i + 1), line);
            assert_same(e, &format!("fixture line {} without newline", i + 1), line.trim_end_matches('\n'));
        }
    }
}

#[test]
fn fixture_matches_bpe_openai() {
    let expected = bpe_openai::cl100k_base().encode(FIXTURE);
    assert_eq!(ours(Encoding::Cl100kBase).encode(FIXTURE), expected);
    let expected = bpe_openai::o200k_base().encode(FIXTURE);
    assert_eq!(ours(Encoding::O200kBase).encode(FIXTURE), expected);
}

#[test]
fn tiktoken_published_vectors() {
    // openai/tiktoken tests/test_encoding.py.
    let r50k = ours(Encoding::R50kBase);
    let cl100k = ours(Encoding::Cl100kBase);
    assert_eq!(r50k.encode("hello world"), [31373, 995]);
    assert_eq!(cl100k.encode("hello world"), [15339, 1917]);
    assert_eq!(r50k.encode_with_special("hello <|endoftext|>"), [31373, 220, 50256]);
    assert_eq!(cl100k.encode_with_special("hello <|endoftext|>"), [15339, 220, 100257]);
    let zeros = [15, 405, 830, 2388, 20483, 10535, 24598, 8269];
    for (k, id) in zeros.iter().enumerate() {
        assert_eq!(r50k.encode(&"0".repeat(k + 1)), [*id]);
    }
    assert_eq!(r50k.encode(&"0".repeat(9)), [10535, 830]);
    assert_eq!(r50k.encode(&"0".repeat(16)), [25645]);
    assert_eq!(cl100k.encode("rer"), [38149]);
    assert_eq!(cl100k.encode("'rer"), [2351, 81]);
    assert_eq!(cl100k.encode("today\n "), [31213, 198, 220]);
    assert_eq!(cl100k.encode("today\n \n"), [31213, 27907]);
    assert_eq!(cl100k.encode("today\n  \n"), [31213, 14211]);
    assert_eq!(cl100k.encode(" \u{850}"), reference(Encoding::Cl100kBase).encode_ordinary(" \u{850}"));
}

#[test]
fn special_tokens_match_tiktoken() {
    let text = "doc one<|endoftext|>doc two <|fim_prefix|>x<|fim_suffix|>y<|fim_middle|>z<|endofprompt|>";
    for e in [Encoding::Cl100kBase, Encoding::O200kBase] {
        assert_eq!(
            ours(e).encode_with_special(text),
            reference(e).encode_with_special_tokens(text),
            "{}",
            e.name()
        );
    }
}

#[test]
fn long_repetitive_pieces_match_tiktoken() {
    // Long single pieces take the heap-based merge; tiktoken is quadratic here, so keep them moderate.
    let cases = ["a".repeat(3000), " ".repeat(2000), "!?".repeat(800), "ab1".repeat(500), "😀".repeat(400)];
    for e in Encoding::ALL {
        for text in &cases {
            assert_same(e, &format!("{}x{:?}", text.len(), &text[..4]), text);
        }
    }
}

#[test]
fn machine_corpus_matches_tiktoken_when_heavy_tests_are_on() {
    if std::env::var("CHOIR_HEAVY_TESTS").as_deref() != Ok("1") {
        return;
    }
    let sources = corpus::machine_corpus(8_000_000);
    let total: usize = sources.iter().map(|s| s.text.len()).sum();
    assert!(total > 2_000_000, "only {total} bytes of text found on this machine");
    for e in Encoding::ALL {
        for s in &sources {
            assert_same(e, &s.label, &s.text);
        }
    }
}
