//! Tests of the Hugging Face import against the sample configs in `tests/data/hf/` (see its README for sources).

use super::*;
use crate::params::param_counts;
use crate::presets::preset;

fn sample(name: &str) -> &'static str {
    match name {
        "gpt2" => include_str!("../../../tests/data/hf/gpt2.json"),
        "llama3-8b" => include_str!("../../../tests/data/hf/llama3-8b.json"),
        "mistral-7b" => include_str!("../../../tests/data/hf/mistral-7b.json"),
        "mixtral-8x7b" => include_str!("../../../tests/data/hf/mixtral-8x7b.json"),
        "qwen2-0.5b" => include_str!("../../../tests/data/hf/qwen2-0.5b.json"),
        "pythia-160m" => include_str!("../../../tests/data/hf/pythia-160m.json"),
        "deepseek-v3" => include_str!("../../../tests/data/hf/deepseek-v3.json"),
        other => panic!("no sample {other}"),
    }
}

fn total(name: &str) -> u64 {
    param_counts(&from_hf_config(sample(name)).unwrap()).total
}

#[test]
fn published_counts() {
    assert_eq!(total("gpt2"), 124_439_808);
    assert_eq!(total("llama3-8b"), 8_030_261_248);
    assert_eq!(total("mistral-7b"), 7_241_732_096);
    assert_eq!(total("pythia-160m"), 162_322_944);
    assert_eq!(total("qwen2-0.5b"), 494_032_768);
}

#[test]
fn imports_match_presets() {
    for (file, name) in [("gpt2", "gpt2-124m"), ("llama3-8b", "llama3-8b"), ("mixtral-8x7b", "mixtral-8x7b")]
    {
        let mut imported = from_hf_config(sample(file)).unwrap();
        let expected = preset(name).unwrap();
        imported.name = expected.name.clone();
        imported.seq_len = expected.seq_len;
        assert_eq!(param_counts(&imported), param_counts(&expected), "{file}");
    }
    let imported = from_hf_config(sample("deepseek-v3")).unwrap();
    let expected = preset("deepseek-v3").unwrap();
    assert_eq!(imported.mla, expected.mla);
    assert_eq!(imported.moe, expected.moe);
    assert_eq!(param_counts(&imported), param_counts(&expected));
}

#[test]
fn errors_name_the_field() {
    let text = sample("llama3-8b").replace("\"hidden_size\": 4096,", "");
    let err = from_hf_config(&text).unwrap_err().to_string();
    assert_eq!(err, "field `hidden_size`: expected a non-negative integer, it is missing");

    let text = sample("llama3-8b").replace("\"num_hidden_layers\": 32", "\"num_hidden_layers\": \"32\"");
    let err = from_hf_config(&text).unwrap_err().to_string();
    assert_eq!(err, "field `num_hidden_layers`: expected a non-negative integer, found \"32\"");

    let text = sample("llama3-8b").replace("\"llama\"", "\"t5\"");
    let err = from_hf_config(&text).unwrap_err().to_string();
    assert!(err.starts_with("model_type `t5` is not supported: expected one of llama,"), "{err}");

    let err = from_hf_config("[1, 2]").unwrap_err().to_string();
    assert_eq!(err, "not valid JSON: expected a JSON object at the top level, found an array");
    assert!(from_hf_config("{").unwrap_err().to_string().starts_with("not valid JSON"));
}

#[test]
fn impossible_shapes_are_rejected() {
    let text = sample("gpt2").replace("\"n_embd\": 768", "\"n_embd\": 770");
    let err = from_hf_config(&text).unwrap_err().to_string();
    assert_eq!(err, "field `n_embd`: a multiple of n_head (12), found 770");
    let text = sample("llama3-8b").replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 7");
    let err = from_hf_config(&text).unwrap_err().to_string();
    assert!(err.starts_with("kv_heads = 7"), "{err}");
}

#[test]
fn family_details() {
    let qwen = from_hf_config(sample("qwen2-0.5b")).unwrap();
    assert!(qwen.biases.qkv && !qwen.biases.attn_out && qwen.tied_embeddings);
    let neox = from_hf_config(sample("pythia-160m")).unwrap();
    assert_eq!(
        (neox.norm, neox.positions, neox.tied_embeddings),
        (NormKind::LayerNorm, Positions::Rotary, false)
    );
    let mixtral = param_counts(&from_hf_config(sample("mixtral-8x7b")).unwrap());
    assert!(mixtral.active < mixtral.total / 3);
}
