//! `choir tokenize` as a user runs it: train, encode (stdin, --text, --input), decode, and bad input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::support::{choir, choir_bin};

/// Runs `choir` with `stdin` piped in.
fn choir_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(choir_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting choir");
    child.stdin.take().expect("stdin").write_all(stdin).expect("writing stdin");
    child.wait_with_output().expect("waiting for choir")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "choir failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[test]
fn encode_stdin_as_json_gives_cl100k_tokens() {
    // openai/tiktoken tests/test_encoding.py: cl100k "hello world" -> [15339, 1917].
    let v = json(&choir_with_stdin(
        &["tokenize", "encode", "--encoding", "cl100k_base", "--json"],
        b"hello world",
    ));
    assert_eq!(v["tokens"], serde_json::json!([15339, 1917]));
    assert_eq!(v["count"], 2);
    assert_eq!(v["bytes"], 11);
    assert_eq!(v["characters"], 11);
}

#[test]
fn encode_human_view_lists_pieces_and_counts() {
    let out = choir(&["tokenize", "encode", "--encoding", "o200k_base", "--text", "Hello, world!"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\"Hello\""), "{text}");
    assert!(text.contains("\" world\""), "{text}");
    assert!(text.contains("4 tokens · 13 characters · 13 bytes · 3.25 bytes/token"), "{text}");
}

#[test]
fn train_then_encode_and_decode_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.txt");
    let model = dir.path().join("tok.bpe");
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(200)
        + "<|endoftext|>"
        + &"pack my box with five dozen liquor jugs. ".repeat(200);
    std::fs::write(&corpus, &text).unwrap();
    let trained = json(&choir(&[
        "tokenize",
        "train",
        "--input",
        corpus.to_str().unwrap(),
        "--vocab-size",
        "300",
        "--pattern",
        "gpt2",
        "--special",
        "<|endoftext|>",
        "--output",
        model.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(trained["vocab_size"], 300);
    assert_eq!(trained["special_tokens"][0]["id"], 299);
    let tok = model.to_str().unwrap();
    let encoded = json(&choir_with_stdin(
        &["tokenize", "encode", "--tokenizer", tok, "--allow-special", "--json"],
        text.as_bytes(),
    ));
    let count = encoded["count"].as_u64().unwrap() as usize;
    assert!(count * 3 < text.len(), "{count} tokens for {} bytes", text.len());
    assert!(encoded["tokens"].as_array().unwrap().contains(&serde_json::json!(299)));
    let decoded =
        choir_with_stdin(&["tokenize", "decode", "--tokenizer", tok], &encoded.to_string().into_bytes());
    assert!(decoded.status.success(), "{}", String::from_utf8_lossy(&decoded.stderr));
    assert_eq!(String::from_utf8(decoded.stdout).unwrap(), text);
}

#[test]
fn invalid_utf8_round_trips_through_encode_and_decode() {
    let bytes: Vec<u8> = vec![b'a', 0xFF, 0xE2, 0x82, b' ', 0xC3, 0xA9, 0x80, b'\n'];
    let encoded = json(&choir_with_stdin(&["tokenize", "encode", "--json"], &bytes));
    let ids: Vec<String> = encoded["tokens"].as_array().unwrap().iter().map(|v| v.to_string()).collect();
    let mut args = vec!["tokenize", "decode"];
    args.extend(ids.iter().map(String::as_str));
    let out = choir(&args);
    assert!(out.status.success());
    assert_eq!(out.stdout, bytes);
}

#[test]
fn bad_input_exits_with_code_2_and_names_the_value() {
    let out = choir(&["tokenize", "encode", "--encoding", "bert", "--text", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"bert\""));
    let out = choir(&["tokenize", "decode", "--encoding", "cl100k_base", "12", "99999999"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("99999999"));
    let out = choir(&["tokenize", "decode", "12", "x7"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"x7\""));
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.txt");
    std::fs::write(&corpus, "abc").unwrap();
    let out = choir(&[
        "tokenize",
        "train",
        "--input",
        corpus.to_str().unwrap(),
        "--vocab-size",
        "100",
        "--output",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("vocabulary size 100"));
}
