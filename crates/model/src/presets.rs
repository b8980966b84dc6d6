//! Named models with published shapes, each with its source.

use crate::error::{ModelError, Result};
use crate::spec::{Biases, MlaSpec, MlpKind, ModelSpec, MoeSpec, NormKind, Positions};

/// A preset's name, where its shape comes from, and what is approximated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetInfo {
    /// The name `preset` accepts, e.g. `llama3-8b`.
    pub name: &'static str,
    /// Where the shape is published (paper and table, or repository and file).
    pub source: &'static str,
    /// What the preset assumes or approximates.
    pub notes: &'static str,
}

const NARAYANAN: &str = "Narayanan et al. SC21 (arXiv:2104.04473) Table 1";
const NARAYANAN_NOTES: &str = "Megatron GPT: MHA, GELU MLP 4h, learned positions, biases, LayerNorm, tied embeddings, V = 51200, s = 2048";

static PRESETS: [PresetInfo; 17] = [
    PresetInfo {
        name: "gpt2-124m",
        source: "Radford et al. 2019 (GPT-2); huggingface.co/openai-community/gpt2 config.json",
        notes: "12 layers, h 768, 12 heads, V 50257, 1024 learned positions, tied embeddings",
    },
    PresetInfo { name: "gpt-1.7b", source: NARAYANAN, notes: NARAYANAN_NOTES },
    PresetInfo { name: "gpt-3.6b", source: NARAYANAN, notes: NARAYANAN_NOTES },
    PresetInfo { name: "gpt-7.5b", source: NARAYANAN, notes: NARAYANAN_NOTES },
    PresetInfo { name: "gpt-18b", source: NARAYANAN, notes: NARAYANAN_NOTES },
    PresetInfo { name: "gpt-39b", source: NARAYANAN, notes: NARAYANAN_NOTES },
    PresetInfo { name: "gpt-76b", source: NARAYANAN, notes: NARAYANAN_NOTES },
    PresetInfo { name: "gpt-145b", source: NARAYANAN, notes: NARAYANAN_NOTES },
    PresetInfo { name: "gpt-310b", source: NARAYANAN, notes: NARAYANAN_NOTES },
    PresetInfo { name: "gpt-530b", source: NARAYANAN, notes: NARAYANAN_NOTES },
    PresetInfo { name: "gpt-1t", source: NARAYANAN, notes: NARAYANAN_NOTES },
    PresetInfo {
        name: "gpt3-175b",
        source: "Brown et al. 2020 (arXiv:2005.14165) Table 2.1",
        notes: "96 layers, h 12288, 96 heads of 128, s 2048, GPT-2 vocabulary (50257), tied; dense attention assumed \
                (the paper alternates dense and locally banded sparse layers, same parameters)",
    },
    PresetInfo {
        name: "llama3-8b",
        source: "Llama 3 Herd (arXiv:2407.21783) Table 3; huggingface.co/meta-llama/Meta-Llama-3-8B config.json",
        notes: "GQA 32/8 heads, SwiGLU 14336, RMSNorm, rotary, V 128256, untied, s 8192",
    },
    PresetInfo {
        name: "llama3-70b",
        source: "Llama 3 Herd (arXiv:2407.21783) Table 3; huggingface.co/meta-llama/Meta-Llama-3-70B config.json",
        notes: "GQA 64/8 heads, SwiGLU 28672, RMSNorm, rotary, V 128256, untied, s 8192",
    },
    PresetInfo {
        name: "llama3-405b",
        source: "Llama 3 Herd (arXiv:2407.21783) Table 3; huggingface.co/meta-llama/Llama-3.1-405B config.json",
        notes: "126 layers, GQA 128/8 heads, SwiGLU 53248, RMSNorm, rotary, V 128256, untied, s 8192",
    },
    PresetInfo {
        name: "mixtral-8x7b",
        source: "Jiang et al. 2024 (arXiv:2401.04088) Table 1; huggingface.co/mistralai/Mixtral-8x7B-v0.1 config.json",
        notes: "8 SwiGLU experts of 14336, top-2, GQA 32/8, V 32000, untied; s 4096 for training estimates \
                (the model's context is 32768)",
    },
    PresetInfo {
        name: "deepseek-v3",
        source: "DeepSeek-V3 report (arXiv:2412.19437) §4.2; huggingface.co/deepseek-ai/DeepSeek-V3 config.json",
        notes: "MLA counted with its real projections (q_lora 1536, kv_lora 512, rope 64, nope 128, v 128); \
                256 routed experts of 2048 top-8 + 1 shared, first 3 layers dense (18432); router bias counted; \
                the multi-token-prediction module is EXCLUDED (671B total, ~37B active); s 4096",
    },
];

/// Every preset, in the order `choir presets` lists them.
pub fn presets() -> &'static [PresetInfo] {
    &PRESETS
}

/// The named preset's shape, or an error listing the valid names.
pub fn preset(name: &str) -> Result<ModelSpec> {
    let key = name.trim().to_ascii_lowercase();
    let spec = match key.as_str() {
        "gpt2-124m" => gpt(&key, 12, 768, 12, 50257, 1024),
        "gpt-1.7b" => gpt(&key, 24, 2304, 24, 51200, 2048),
        "gpt-3.6b" => gpt(&key, 30, 3072, 32, 51200, 2048),
        "gpt-7.5b" => gpt(&key, 36, 4096, 32, 51200, 2048),
        "gpt-18b" => gpt(&key, 40, 6144, 48, 51200, 2048),
        "gpt-39b" => gpt(&key, 48, 8192, 64, 51200, 2048),
        "gpt-76b" => gpt(&key, 60, 10240, 80, 51200, 2048),
        "gpt-145b" => gpt(&key, 80, 12288, 96, 51200, 2048),
        "gpt-310b" => gpt(&key, 96, 16384, 128, 51200, 2048),
        "gpt-530b" => gpt(&key, 105, 20480, 128, 51200, 2048),
        "gpt-1t" => gpt(&key, 128, 25600, 160, 51200, 2048),
        "gpt3-175b" => gpt(&key, 96, 12288, 96, 50257, 2048),
        "llama3-8b" => llama(&key, 32, 4096, 32, 14336),
        "llama3-70b" => llama(&key, 80, 8192, 64, 28672),
        "llama3-405b" => llama(&key, 126, 16384, 128, 53248),
        "mixtral-8x7b" => mixtral_8x7b(),
        "deepseek-v3" => deepseek_v3(),
        _ => {
            let valid = PRESETS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ");
            return Err(ModelError::UnknownPreset { name: name.to_owned(), valid });
        }
    };
    Ok(spec)
}

/// GPT-2/GPT-3/Megatron GPT: MHA, GELU MLP of 4h, learned positions, biases everywhere, LayerNorm, tied.
fn gpt(name: &str, n_layers: u64, hidden: u64, n_heads: u64, vocab: u64, seq_len: u64) -> ModelSpec {
    ModelSpec {
        name: name.to_owned(),
        n_layers,
        hidden,
        n_heads,
        n_kv_heads: n_heads,
        head_dim: hidden / n_heads,
        ffn_hidden: 4 * hidden,
        mlp: MlpKind::Plain,
        vocab,
        seq_len,
        tied_embeddings: true,
        biases: Biases::ALL,
        positions: Positions::Learned,
        norm: NormKind::LayerNorm,
        moe: None,
        mla: None,
    }
}

/// Llama 3: GQA with 8 KV heads of 128, SwiGLU, RMSNorm, rotary, V 128256, untied, s 8192.
fn llama(name: &str, n_layers: u64, hidden: u64, n_heads: u64, ffn_hidden: u64) -> ModelSpec {
    ModelSpec {
        name: name.to_owned(),
        n_layers,
        hidden,
        n_heads,
        n_kv_heads: 8,
        head_dim: hidden / n_heads,
        ffn_hidden,
        mlp: MlpKind::Gated,
        vocab: 128_256,
        seq_len: 8192,
        tied_embeddings: false,
        biases: Biases::NONE,
        positions: Positions::Rotary,
        norm: NormKind::RmsNorm,
        moe: None,
        mla: None,
    }
}

fn mixtral_8x7b() -> ModelSpec {
    ModelSpec {
        name: "mixtral-8x7b".to_owned(),
        n_layers: 32,
        hidden: 4096,
        n_heads: 32,
        n_kv_heads: 8,
        head_dim: 128,
        ffn_hidden: 14336,
        mlp: MlpKind::Gated,
        vocab: 32000,
        seq_len: 4096,
        tied_embeddings: false,
        biases: Biases::NONE,
        positions: Positions::Rotary,
        norm: NormKind::RmsNorm,
        moe: Some(MoeSpec {
            n_experts: 8,
            top_k: 2,
            expert_ffn_hidden: 14336,
            n_shared_experts: 0,
            shared_ffn_hidden: 0,
            first_dense_layers: 0,
            router_bias: false,
        }),
        mla: None,
    }
}

fn deepseek_v3() -> ModelSpec {
    ModelSpec {
        name: "deepseek-v3".to_owned(),
        n_layers: 61,
        hidden: 7168,
        n_heads: 128,
        n_kv_heads: 128,
        head_dim: 128,
        ffn_hidden: 18432,
        mlp: MlpKind::Gated,
        vocab: 129_280,
        seq_len: 4096,
        tied_embeddings: false,
        biases: Biases::NONE,
        positions: Positions::Rotary,
        norm: NormKind::RmsNorm,
        moe: Some(MoeSpec {
            n_experts: 256,
            top_k: 8,
            expert_ffn_hidden: 2048,
            n_shared_experts: 1,
            shared_ffn_hidden: 2048,
            first_dense_layers: 3,
            router_bias: true,
        }),
        mla: Some(MlaSpec {
            q_lora_rank: 1536,
            kv_lora_rank: 512,
            qk_nope_head_dim: 128,
            qk_rope_head_dim: 64,
            v_head_dim: 128,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_preset_lists_valid_names() {
        let err = preset("llama9").unwrap_err().to_string();
        assert!(err.starts_with("unknown preset `llama9`"), "{err}");
        for info in presets() {
            assert!(err.contains(info.name), "{err} lacks {}", info.name);
        }
    }

    #[test]
    fn names_are_unique_and_case_insensitive() {
        let mut names: Vec<_> = presets().iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), presets().len());
        assert_eq!(preset("Llama3-8B").unwrap().name, "llama3-8b");
    }
}
