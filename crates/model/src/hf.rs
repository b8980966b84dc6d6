//! Hugging Face `config.json` import for the Llama, Mistral, Mixtral, Qwen2, GPT-2, GPT-NeoX and DeepSeek-V2/V3
//! families. Takes the file's text; the caller reads the file and names it in errors.

use serde_json::{Map, Value};

use crate::error::{ModelError, Result};
use crate::spec::{Biases, MlaSpec, MlpKind, ModelSpec, MoeSpec, NormKind, Positions, derive_head_dim};

/// The `model_type` values [`from_hf_config`] reads.
pub const SUPPORTED_MODEL_TYPES: &[&str] =
    &["llama", "mistral", "mixtral", "qwen2", "gpt2", "gpt_neox", "deepseek_v2", "deepseek_v3"];

/// Reads a Hugging Face `config.json` (its text) into a validated [`ModelSpec`].
///
/// `seq_len` is taken from `max_position_embeddings` (`n_positions` for GPT-2): the longest context the model
/// supports, which callers may want to lower for training estimates.
pub fn from_hf_config(json: &str) -> Result<ModelSpec> {
    let value: Value = serde_json::from_str(json).map_err(|e| ModelError::HfJson(e.to_string()))?;
    let Some(obj) = value.as_object() else {
        return Err(ModelError::HfJson(format!(
            "expected a JSON object at the top level, found {}",
            kind(&value)
        )));
    };
    let cfg = Cfg(obj);
    let model_type = cfg.string("model_type")?;
    let spec = match model_type.as_str() {
        "llama" | "mistral" | "mixtral" | "qwen2" => llama_like(&cfg, &model_type)?,
        "gpt2" => gpt2(&cfg)?,
        "gpt_neox" => gpt_neox(&cfg)?,
        "deepseek_v2" | "deepseek_v3" => deepseek(&cfg, &model_type)?,
        _ => {
            return Err(ModelError::HfModelType { model_type, supported: SUPPORTED_MODEL_TYPES.join(", ") });
        }
    };
    spec.validate()?;
    Ok(spec)
}

/// A config object with typed getters whose errors name the field.
struct Cfg<'a>(&'a Map<String, Value>);

impl Cfg<'_> {
    fn string(&self, field: &str) -> Result<String> {
        match self.0.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            other => Err(field_err(field, "a string", other)),
        }
    }

    fn u64(&self, field: &str) -> Result<u64> {
        self.opt_u64(field)?.ok_or_else(|| field_err(field, "a non-negative integer", None))
    }

    /// `None` when absent or null.
    fn opt_u64(&self, field: &str) -> Result<Option<u64>> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                v.as_u64().map(Some).ok_or_else(|| field_err(field, "a non-negative integer", Some(v)))
            }
        }
    }

    fn bool_or(&self, field: &str, default: bool) -> Result<bool> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(field_err(field, "true or false", Some(v))),
        }
    }

    fn name(&self, model_type: &str) -> String {
        match self.0.get("_name_or_path") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => model_type.to_owned(),
        }
    }

    /// `head_dim` if present, else `hidden / heads` (which must divide).
    fn head_dim(&self, hidden: u64, n_heads: u64) -> Result<u64> {
        match self.opt_u64("head_dim")? {
            Some(d) if d > 0 => Ok(d),
            _ => derive_head_dim(hidden, n_heads).map_err(|_| ModelError::HfField {
                field: "hidden_size".to_owned(),
                expected: format!(
                    "a multiple of num_attention_heads ({n_heads}) when head_dim is not given, found {hidden}"
                ),
            }),
        }
    }
}

fn field_err(field: &str, expected: &str, found: Option<&Value>) -> ModelError {
    let found = found.map_or_else(|| "it is missing".to_owned(), |v| format!("found {v}"));
    ModelError::HfField { field: field.to_owned(), expected: format!("expected {expected}, {found}") }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Llama, Mistral, Mixtral and Qwen2: RMSNorm, rotary, SwiGLU, optional GQA.
fn llama_like(cfg: &Cfg<'_>, model_type: &str) -> Result<ModelSpec> {
    let hidden = cfg.u64("hidden_size")?;
    let n_heads = cfg.u64("num_attention_heads")?;
    let ffn_hidden = cfg.u64("intermediate_size")?;
    let biases = match model_type {
        // Qwen2 has biases on q, k and v only (transformers' Qwen2Attention).
        "qwen2" => Biases { qkv: true, attn_out: false, mlp: false },
        _ => {
            let attention = cfg.bool_or("attention_bias", false)?;
            Biases { qkv: attention, attn_out: attention, mlp: cfg.bool_or("mlp_bias", false)? }
        }
    };
    let moe = if model_type == "mixtral" {
        Some(MoeSpec {
            n_experts: cfg.u64("num_local_experts")?,
            top_k: cfg.u64("num_experts_per_tok")?,
            expert_ffn_hidden: ffn_hidden,
            n_shared_experts: 0,
            shared_ffn_hidden: 0,
            first_dense_layers: 0,
            router_bias: false,
        })
    } else {
        None
    };
    Ok(ModelSpec {
        name: cfg.name(model_type),
        n_layers: cfg.u64("num_hidden_layers")?,
        hidden,
        n_heads,
        n_kv_heads: cfg.opt_u64("num_key_value_heads")?.unwrap_or(n_heads),
        head_dim: cfg.head_dim(hidden, n_heads)?,
        ffn_hidden,
        mlp: MlpKind::Gated,
        vocab: cfg.u64("vocab_size")?,
        seq_len: cfg.u64("max_position_embeddings")?,
        tied_embeddings: cfg.bool_or("tie_word_embeddings", false)?,
        biases,
        positions: Positions::Rotary,
        norm: NormKind::RmsNorm,
        moe,
        mla: None,
    })
}

/// GPT-2: learned positions, LayerNorm, biases everywhere, GELU MLP of `n_inner` (default 4h), tied head.
fn gpt2(cfg: &Cfg<'_>) -> Result<ModelSpec> {
    let hidden = cfg.u64("n_embd")?;
    let n_heads = cfg.u64("n_head")?;
    let seq_len = match cfg.opt_u64("n_positions")? {
        Some(n) => n,
        None => cfg.u64("n_ctx")?,
    };
    Ok(ModelSpec {
        name: cfg.name("gpt2"),
        n_layers: cfg.u64("n_layer")?,
        hidden,
        n_heads,
        n_kv_heads: n_heads,
        head_dim: derive_head_dim(hidden, n_heads).map_err(|_| ModelError::HfField {
            field: "n_embd".to_owned(),
            expected: format!("a multiple of n_head ({n_heads}), found {hidden}"),
        })?,
        ffn_hidden: cfg.opt_u64("n_inner")?.unwrap_or(4 * hidden),
        mlp: MlpKind::Plain,
        vocab: cfg.u64("vocab_size")?,
        seq_len,
        tied_embeddings: cfg.bool_or("tie_word_embeddings", true)?,
        biases: Biases::ALL,
        positions: Positions::Learned,
        norm: NormKind::LayerNorm,
        moe: None,
        mla: None,
    })
}

/// GPT-NeoX (Pythia): rotary (partial, no parameters), LayerNorm, biases, GELU MLP, untied head by default.
fn gpt_neox(cfg: &Cfg<'_>) -> Result<ModelSpec> {
    let hidden = cfg.u64("hidden_size")?;
    let n_heads = cfg.u64("num_attention_heads")?;
    let attention_bias = cfg.bool_or("attention_bias", true)?;
    Ok(ModelSpec {
        name: cfg.name("gpt_neox"),
        n_layers: cfg.u64("num_hidden_layers")?,
        hidden,
        n_heads,
        n_kv_heads: n_heads,
        head_dim: cfg.head_dim(hidden, n_heads)?,
        ffn_hidden: cfg.u64("intermediate_size")?,
        mlp: MlpKind::Plain,
        vocab: cfg.u64("vocab_size")?,
        seq_len: cfg.u64("max_position_embeddings")?,
        tied_embeddings: cfg.bool_or("tie_word_embeddings", false)?,
        biases: Biases { qkv: attention_bias, attn_out: attention_bias, mlp: true },
        positions: Positions::Rotary,
        norm: NormKind::LayerNorm,
        moe: None,
        mla: None,
    })
}

/// DeepSeek-V2/V3: MLA, fine-grained MoE with shared experts, first `first_k_dense_replace` layers dense.
fn deepseek(cfg: &Cfg<'_>, model_type: &str) -> Result<ModelSpec> {
    let n_heads = cfg.u64("num_attention_heads")?;
    if let Some(freq) = cfg.opt_u64("moe_layer_freq")?
        && freq != 1
    {
        return Err(field_err(
            "moe_layer_freq",
            "1 (every layer after the dense ones is MoE)",
            Some(&freq.into()),
        ));
    }
    let expert_ffn = cfg.u64("moe_intermediate_size")?;
    let router_bias = matches!(cfg.0.get("topk_method"), Some(Value::String(m)) if m == "noaux_tc");
    let mla = MlaSpec {
        q_lora_rank: cfg.opt_u64("q_lora_rank")?.unwrap_or(0),
        kv_lora_rank: cfg.u64("kv_lora_rank")?,
        qk_nope_head_dim: cfg.u64("qk_nope_head_dim")?,
        qk_rope_head_dim: cfg.u64("qk_rope_head_dim")?,
        v_head_dim: cfg.u64("v_head_dim")?,
    };
    let moe = match cfg.opt_u64("n_routed_experts")? {
        Some(n) if n > 0 => Some(MoeSpec {
            n_experts: n,
            top_k: cfg.u64("num_experts_per_tok")?,
            expert_ffn_hidden: expert_ffn,
            n_shared_experts: cfg.opt_u64("n_shared_experts")?.unwrap_or(0),
            shared_ffn_hidden: expert_ffn,
            first_dense_layers: cfg.opt_u64("first_k_dense_replace")?.unwrap_or(0),
            router_bias,
        }),
        _ => None,
    };
    Ok(ModelSpec {
        name: cfg.name(model_type),
        n_layers: cfg.u64("num_hidden_layers")?,
        hidden: cfg.u64("hidden_size")?,
        n_heads,
        n_kv_heads: n_heads,
        head_dim: mla.qk_nope_head_dim + mla.qk_rope_head_dim,
        ffn_hidden: cfg.u64("intermediate_size")?,
        mlp: MlpKind::Gated,
        vocab: cfg.u64("vocab_size")?,
        seq_len: cfg.u64("max_position_embeddings")?,
        tied_embeddings: cfg.bool_or("tie_word_embeddings", false)?,
        biases: Biases::NONE,
        positions: Positions::Rotary,
        norm: NormKind::RmsNorm,
        moe,
        mla: Some(mla),
    })
}

#[cfg(test)]
#[path = "hf_tests.rs"]
mod tests;
