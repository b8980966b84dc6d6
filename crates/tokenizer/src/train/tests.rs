//! Tests of training.

use super::*;

const TEXT: &str = "the cat sat on the mat. the cat ate the rat; the rat sat on the hat.\n\
                    <|endoftext|>a dog, a log, a frog: the dog sat on the log.";

fn config(vocab_size: usize) -> TrainConfig {
    TrainConfig {
        vocab_size,
        pattern: Pattern::Cl100k,
        special_tokens: vec!["<|endoftext|>".to_owned()],
        min_pair_count: 2,
    }
}

#[test]
fn first_merges_are_the_most_frequent_pairs() {
    let (tok, report) = train(TEXT.as_bytes(), &config(258)).unwrap();
    // Count the pairs independently (a NUL stands in for the special token, which no piece may cross).
    let mut pair_counts = std::collections::BTreeMap::new();
    for piece in Pattern::Cl100k.split(TEXT.replace("<|endoftext|>", "\u{0}").as_bytes()) {
        for w in piece.windows(2) {
            if !w.contains(&0) {
                *pair_counts.entry((w[0], w[1])).or_insert(0u64) += 1;
            }
        }
    }
    let best = pair_counts.iter().max_by_key(|(pair, c)| (**c, Reverse(**pair))).unwrap();
    let first = tok.token_bytes(256).unwrap();
    assert_eq!(first, &[best.0.0, best.0.1], "counts {best:?}");
    assert_eq!(report.merges, 1);
    assert_eq!(tok.special_id("<|endoftext|>"), Some(257));
    assert_eq!(tok.vocab_size(), 258);
}

#[test]
fn training_is_deterministic() {
    let a = train(TEXT.as_bytes(), &config(300)).unwrap().0.save();
    let b = train(TEXT.as_bytes(), &config(300)).unwrap().0.save();
    assert_eq!(a, b);
}

#[test]
fn training_stops_when_no_pair_repeats() {
    let (tok, report) = train(TEXT.as_bytes(), &config(5000)).unwrap();
    assert!(report.stopped_early);
    assert!(report.last_pair_count >= 2);
    assert_eq!(tok.ordinary_vocab_size(), report.ordinary_tokens);
    assert!(tok.ordinary_vocab_size() < 5000);
}

#[test]
fn special_tokens_are_not_learned_from() {
    let (tok, _) = train(TEXT.as_bytes(), &config(400)).unwrap();
    let id = tok.special_id("<|endoftext|>").unwrap();
    for t in 256..id {
        let bytes = tok.token_bytes(t).unwrap();
        assert!(!bytes.windows(2).any(|w| w == b"<|" || w == b"|>"), "{:?}", String::from_utf8_lossy(bytes));
    }
    let ids = tok.encode_with_special("the cat<|endoftext|>the dog");
    assert!(ids.contains(&id));
    assert_eq!(tok.decode(&ids).unwrap(), b"the cat<|endoftext|>the dog");
}

#[test]
fn trained_tokenizer_compresses_its_training_text() {
    let (tok, _) = train(TEXT.as_bytes(), &config(400)).unwrap();
    let ids = tok.encode(TEXT);
    assert!(ids.len() * 2 < TEXT.len(), "{} tokens for {} bytes", ids.len(), TEXT.len());
    assert_eq!(tok.decode(&ids).unwrap(), TEXT.as_bytes());
}

#[test]
fn too_small_a_vocabulary_is_refused() {
    let err = train(b"abc", &config(200)).unwrap_err();
    assert!(err.to_string().contains("200") && err.to_string().contains("257"), "{err}");
}

#[test]
fn merges_equal_a_naive_trainer() {
    // A slow, obviously correct trainer: recount every pair from scratch after each merge.
    let text = "low lower lowest newer newest wider widest low low newest";
    let cfg =
        TrainConfig { vocab_size: 280, pattern: Pattern::Gpt2, special_tokens: vec![], min_pair_count: 1 };
    let (tok, _) = train(text.as_bytes(), &cfg).unwrap();
    let mut words: Vec<Vec<Vec<u8>>> =
        Pattern::Gpt2.split(text.as_bytes()).map(|p| p.iter().map(|&b| vec![b]).collect()).collect();
    let mut id_of: std::collections::BTreeMap<Vec<u8>, u32> =
        (0..=255u8).map(|b| (vec![b], u32::from(b))).collect();
    let mut expected = Vec::new();
    while expected.len() < tok.ordinary_vocab_size() - 256 {
        let mut counts: std::collections::BTreeMap<(u32, u32), u64> = std::collections::BTreeMap::new();
        for w in &words {
            for p in w.windows(2) {
                *counts.entry((id_of[&p[0]], id_of[&p[1]])).or_default() += 1;
            }
        }
        let Some((&(a, b), _)) = counts.iter().max_by_key(|(pair, c)| (**c, Reverse(**pair))) else { break };
        let (ta, tb) = (tok_bytes(&id_of, a), tok_bytes(&id_of, b));
        let merged = [ta.clone(), tb.clone()].concat();
        let next = id_of.len() as u32;
        id_of.entry(merged.clone()).or_insert(next);
        if !expected.contains(&merged) {
            expected.push(merged.clone());
        }
        for w in &mut words {
            let mut out = Vec::new();
            let mut i = 0;
            while i < w.len() {
                if i + 1 < w.len() && w[i] == ta && w[i + 1] == tb {
                    out.push(merged.clone());
                    i += 2;
                } else {
                    out.push(w[i].clone());
                    i += 1;
                }
            }
            *w = out;
        }
    }
    let ours: Vec<Vec<u8>> =
        (256..tok.ordinary_vocab_size() as u32).map(|id| tok.token_bytes(id).unwrap().to_vec()).collect();
    assert_eq!(ours, expected);
}

fn tok_bytes(id_of: &std::collections::BTreeMap<Vec<u8>, u32>, id: u32) -> Vec<u8> {
    id_of.iter().find(|(_, i)| **i == id).unwrap().0.clone()
}
