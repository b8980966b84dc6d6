//! `choir train`, `choir generate` and `choir attention` as a user runs them: a tiny model trained on a small
//! text, then sampled and inspected.

use std::path::Path;

use crate::support::choir;
use serde_json::Value;

fn json_of(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// Trains a small model for a few seconds on a repetitive text; returns the train report.
fn train_tiny(dir: &Path) -> Value {
    let data = dir.join("text.txt");
    std::fs::write(&data, "to be or not to be, that is the question.\n".repeat(60)).unwrap();
    let out = choir(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        dir.join("ck").to_str().unwrap(),
        "--layers",
        "1",
        "--d-model",
        "32",
        "--heads",
        "2",
        "--context",
        "32",
        "--iters",
        "60",
        "--batch",
        "8",
        "--lr",
        "1e-2",
        "--warmup",
        "5",
        "--eval-interval",
        "30",
        "--eval-iters",
        "4",
        "--json",
    ]);
    json_of(&out)
}

#[test]
fn train_generate_attention_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let report = train_tiny(dir.path());
    let evals = report["evals"].as_array().unwrap();
    assert_eq!(evals.len(), 3, "steps 0, 30, 60");
    let first = evals[0]["val_loss"].as_f64().unwrap();
    let last = report["final_val_loss"].as_f64().unwrap();
    assert!(last < first - 1.0, "validation loss {first} -> {last}");
    let ck = dir.path().join("ck");
    for file in ["model.safetensors", "config.json", "loss.svg"] {
        assert!(ck.join(file).exists(), "{file} missing");
    }
    assert!(std::fs::read_to_string(ck.join("loss.svg")).unwrap().starts_with("<svg"));
    let ck = ck.to_str().unwrap();

    // Greedy generation is deterministic and identical with and without the KV cache.
    let greedy = |extra: &[&str]| {
        let mut args = vec!["generate", "--checkpoint", ck, "--prompt", "to be", "--tokens", "40"];
        args.extend_from_slice(&["--temperature", "0", "--json"]);
        args.extend_from_slice(extra);
        json_of(&choir(&args))["text"].as_str().unwrap().to_string()
    };
    let with_cache = greedy(&[]);
    assert_eq!(with_cache, greedy(&["--no-kv-cache"]));
    assert_eq!(with_cache.chars().count(), 40);
    // The text is learned: the continuation reuses the training text's words.
    assert!(with_cache.contains("be") || with_cache.contains("the"), "{with_cache:?}");

    // Speculative decoding with the model as its own draft accepts everything at temperature 0.
    let spec = json_of(&choir(&[
        "generate",
        "--checkpoint",
        ck,
        "--draft",
        ck,
        "--prompt",
        "to",
        "--tokens",
        "20",
        "--temperature",
        "0",
        "--json",
    ]));
    assert_eq!(spec["speculative"]["acceptance_rate"].as_f64(), Some(1.0));

    // Attention rows are causal distributions.
    let svg = dir.path().join("att.svg");
    let att = json_of(&choir(&[
        "attention",
        "--checkpoint",
        ck,
        "--text",
        "to be or not",
        "--head",
        "1",
        "--svg",
        svg.to_str().unwrap(),
        "--json",
    ]));
    let weights = att["weights"].as_array().unwrap();
    assert_eq!(weights.len(), 12);
    for (q, row) in weights.iter().enumerate() {
        let row: Vec<f64> = row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-4, "row {q}: {row:?}");
        assert!(row[q + 1..].iter().all(|&w| w == 0.0), "row {q} attends to the future: {row:?}");
    }
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<rect"));

    // Unusable input exits with 2 and names the problem.
    let bad = choir(&["attention", "--checkpoint", ck, "--text", "xyz", "--svg", svg.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("'x'"), "{}", String::from_utf8_lossy(&bad.stderr));
    let bad = choir(&["generate", "--checkpoint", ck, "--top-p", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("top_p = 0"));
}

#[test]
fn a_resumed_run_writes_the_same_checkpoint_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("text.txt");
    std::fs::write(&data, "to be or not to be, that is the question.\n".repeat(60)).unwrap();
    let train = |out: &str, extra: &[&str]| {
        let out_dir = dir.path().join(out);
        let mut args = vec!["train", "--data", data.to_str().unwrap(), "--out", out_dir.to_str().unwrap()];
        args.extend_from_slice(&[
            "--layers",
            "1",
            "--d-model",
            "32",
            "--heads",
            "2",
            "--context",
            "32",
            "--batch",
            "4",
            "--warmup",
            "3",
            "--decay-iters",
            "24",
            "--eval-interval",
            "8",
            "--eval-iters",
            "2",
            "--json",
        ]);
        args.extend_from_slice(extra);
        json_of(&choir(&args))
    };
    let whole = train("whole", &["--iters", "24"]);
    train("half", &["--iters", "12"]);
    let half = dir.path().join("half");
    let resumed = choir(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        half.to_str().unwrap(),
        "--resume",
        half.to_str().unwrap(),
        "--iters",
        "24",
        "--json",
    ]);
    let resumed = json_of(&resumed);
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let a = std::fs::read(dir.path().join("whole").join(file)).unwrap();
        let b = std::fs::read(half.join(file)).unwrap();
        assert!(a == b, "{file} differs between the uninterrupted and the resumed run");
    }
    // The same evaluations, none repeated, plus the one the first half made when it stopped at step 12.
    let mut evals = resumed["evals"].as_array().unwrap().clone();
    let at_stop = evals.iter().position(|e| e["step"] == 12).expect("the first half's last evaluation");
    evals.remove(at_stop);
    assert_eq!(whole["evals"].as_array().unwrap(), &evals);
    // Nothing left to train, and a checkpoint without optimizer state, are bad input that says why.
    let again = choir(&["train", "--data", data.to_str().unwrap(), "--resume", half.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing left to train"));
    std::fs::remove_file(half.join("optimizer.safetensors")).unwrap();
    let torn = choir(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--resume",
        half.to_str().unwrap(),
        "--iters",
        "30",
    ]);
    assert_eq!(torn.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&torn.stderr).contains("optimizer.safetensors"));
}

#[test]
fn missing_checkpoint_is_bad_input() {
    let out = choir(&["generate", "--checkpoint", "/nonexistent/choir-ck"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/choir-ck/config.json"));
}

/// The nanoGPT anchor: the CPU character-level config on Tiny Shakespeare reaches ≈ 1.88 validation loss
/// (karpathy/nanoGPT README, "quick start", CPU run). Takes minutes, so it runs only with CHOIR_HEAVY_TESTS=1;
/// the text is read from CHOIR_TINYSHAKESPEARE or /work/shared/data/tinyshakespeare.txt.
#[test]
fn nanogpt_cpu_char_anchor_within_five_percent() {
    if std::env::var("CHOIR_HEAVY_TESTS").as_deref() != Ok("1") {
        return;
    }
    let data = std::env::var("CHOIR_TINYSHAKESPEARE")
        .unwrap_or_else(|_| "/work/shared/data/tinyshakespeare.txt".to_string());
    let dir = tempfile::tempdir().unwrap();
    let out = choir(&["train", "--data", &data, "--out", dir.path().join("ck").to_str().unwrap(), "--json"]);
    let report = json_of(&out);
    assert_eq!(report["vocab_size"].as_u64(), Some(65));
    assert_eq!(report["train_tokens"].as_u64(), Some(1_003_854));
    let val = report["final_val_loss"].as_f64().unwrap();
    assert!(val <= 1.88 * 1.05, "validation loss {val}, anchor 1.88 (+5% = 1.974)");
}
