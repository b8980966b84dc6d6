//! `choir presets`, `choir model` and `choir scale` as a user runs them: figures, JSON fields and error lines.

use crate::support::choir;
use serde_json::Value;

fn data(name: &str) -> String {
    format!("{}/tests/data/hf/{name}", crate::support::repo_root().display())
}

fn json(args: &[&str]) -> Value {
    let out = choir(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("valid JSON on stdout")
}

fn fails(args: &[&str]) -> String {
    let out = choir(args);
    assert_eq!(out.status.code(), Some(2), "{args:?} should be bad input");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "one clear line, got: {err}");
    err
}

#[test]
fn presets_lists_every_preset_with_its_source() {
    let out = choir(&["presets"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["gpt2-124m", "gpt-1.7b", "gpt-1t", "gpt3-175b", "llama3-405b", "mixtral-8x7b", "deepseek-v3"]
    {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(text.contains("arXiv:2104.04473"));
    let rows = json(&["presets", "--json"]);
    let gpt2 = rows.as_array().unwrap().iter().find(|r| r["name"] == "gpt2-124m").unwrap();
    assert_eq!(gpt2["params_total"], 124_439_808);
}

#[test]
fn preset_parameter_counts_are_exact() {
    for (preset, total) in
        [("gpt2-124m", 124_439_808u64), ("llama3-8b", 8_030_261_248), ("llama3-70b", 70_553_706_496)]
    {
        let v = json(&["model", "--preset", preset, "--json"]);
        assert_eq!(v["params"]["total"], total, "{preset}");
        assert_eq!(v["params"]["active"], total, "{preset}");
    }
    let v = json(&["model", "--preset", "mixtral-8x7b", "--json"]);
    let (total, active) = (v["params"]["total"].as_f64().unwrap(), v["params"]["active"].as_f64().unwrap());
    assert!((total / 1e9 - 46.7).abs() < 0.05 && (active / 1e9 - 12.9).abs() < 0.05);
    for field in ["embedding", "attention", "mlp"] {
        assert!(v["params"][field].as_u64().unwrap() > 0, "{field}");
    }
}

#[test]
fn hf_config_matches_published_count() {
    let v = json(&["model", "--config", &data("llama3-8b.json"), "--json"]);
    assert_eq!(v["params"]["total"], 8_030_261_248u64);
    let v = json(&["model", "--config", &data("pythia-160m.json"), "--json"]);
    assert_eq!(v["params"]["total"], 162_322_944u64);
}

#[test]
fn flops_and_memory_fields() {
    let v = json(&[
        "model",
        "--preset",
        "llama3-8b",
        "--tp",
        "2",
        "--dp",
        "8",
        "--zero",
        "1",
        "--micro-batch",
        "1",
        "--seq",
        "8192",
        "--recompute",
        "selective",
        "--json",
    ]);
    let training = v["flops_per_token"]["training"].as_f64().unwrap();
    let six_n = 6.0 * 8_030_261_248.0;
    assert!(training > six_n * 0.9 && training < six_n * 1.3, "{training}");
    let m = &v["memory"];
    let parts: f64 = ["weights_bytes", "grads_bytes", "optimizer_bytes", "activations_bytes"]
        .iter()
        .map(|k| m[k].as_f64().unwrap())
        .sum();
    assert!((parts - m["total_bytes"].as_f64().unwrap()).abs() < 1.0);
    // bf16 weights, split over tp = 2 (the embedding and head are vocab-parallel).
    assert!((m["weights_bytes"].as_f64().unwrap() - 8_030_261_248.0).abs() / 8e9 < 0.01);
    // Without plan flags there is no memory section.
    assert!(json(&["model", "--preset", "llama3-8b", "--json"]).get("memory").is_none());
}

#[test]
fn model_by_flags_and_text_report() {
    let out = choir(&["model", "--layers", "12", "--hidden", "768", "--heads", "12", "--seq", "1024"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    // The GPT style with GPT-2's vocabulary and 1024 positions is GPT-2 124M.
    assert!(text.contains("124,439,808"), "{text}");
    assert!(text.contains("12·h²·L"));
}

#[test]
fn bad_inputs_exit_2_with_one_line() {
    let err = fails(&["model", "--preset", "llama9"]);
    assert!(err.contains("llama9") && err.contains("llama3-8b") && err.contains("deepseek-v3"), "{err}");
    let err = fails(&["model", "--layers", "12", "--hidden", "1000", "--heads", "3"]);
    assert!(err.contains("--hidden 1000") && err.contains("--heads 3"), "{err}");
    let err = fails(&["model", "--layers", "0", "--hidden", "768", "--heads", "12"]);
    assert!(err.contains("--layers 0"), "{err}");
    let err = fails(&["model", "--preset", "llama3-8b", "--tp", "3"]);
    assert!(err.contains("--tp 3: must divide heads (32)"), "{err}");
    let err = fails(&["model", "--preset", "llama3-8b", "--tp", "16"]);
    assert!(err.contains("--tp 16: must divide kv_heads (8)"), "{err}");
    let err = fails(&["model", "--config", "/no/such/config.json"]);
    assert!(err.contains("/no/such/config.json"), "{err}");
    let err = fails(&["scale", "--params", "lots"]);
    assert!(err.contains("--params lots"), "{err}");
}

#[test]
fn bad_config_names_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(data("llama3-8b.json")).unwrap().replace("\"hidden_size\": 4096,", "");
    std::fs::write(&path, text).unwrap();
    let err = fails(&["model", "--config", path.to_str().unwrap()]);
    assert!(err.contains("config.json") && err.contains("`hidden_size`"), "{err}");
}

#[test]
fn scale_fields() {
    let v = json(&["scale", "--params", "70B", "--tokens-per-param", "20", "--json"]);
    assert!((v["flops"].as_f64().unwrap() - 5.88e23).abs() / 5.88e23 < 1e-9);
    assert_eq!(v["tokens"].as_f64().unwrap(), 1.4e12);
    assert_eq!(v["regime"], "compute-optimal");
    let loss = v["loss"].as_f64().unwrap();
    // Chinchilla fit at N = 70B, D = 1.4T: 1.69 + 406.4/N^0.34 + 410.7/D^0.28.
    let expected = 1.69 + 406.4 / 70e9f64.powf(0.34) + 410.7 / 1.4e12f64.powf(0.28);
    assert!((loss - expected).abs() < 1e-12);
    for key in ["gpu_hours", "gpu_years"] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}");
    }
    let opt = &v["optimal"];
    let c = 6.0 * opt["params"].as_f64().unwrap() * opt["tokens"].as_f64().unwrap();
    assert!((c / 5.88e23 - 1.0).abs() < 1e-9);
    let v = json(&["scale", "--params", "8B", "--tokens", "15T", "--json"]);
    assert_eq!(v["regime"], "over-trained");
}
