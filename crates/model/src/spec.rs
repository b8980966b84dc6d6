//! The shape of a decoder-only transformer: dense or mixture-of-experts, MHA/GQA/MQA or MLA attention,
//! plain or gated (SwiGLU) MLP.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// A decoder-only transformer, as far as parameters, FLOPs and memory are concerned.
///
/// Every field is public and may hold any value; [`ModelSpec::validate`] says whether the shape is possible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// A label, e.g. `llama3-8b`.
    pub name: String,
    /// Transformer layers (blocks).
    pub n_layers: u64,
    /// Model (residual stream) width `h`.
    pub hidden: u64,
    /// Query heads `a`.
    pub n_heads: u64,
    /// Key/value heads: equal to `n_heads` for MHA, fewer for GQA, 1 for MQA. Ignored when `mla` is set.
    pub n_kv_heads: u64,
    /// Width of one head. Usually `hidden / n_heads`, but configs may set it (Mistral-Nemo: 128 with h = 5120).
    pub head_dim: u64,
    /// Inner width of the dense MLP (`4h` for GPT, 14336 for Llama-3-8B).
    pub ffn_hidden: u64,
    /// Plain two-matrix MLP (GELU) or gated three-matrix MLP (SwiGLU).
    pub mlp: MlpKind,
    /// Vocabulary size (as stored in the embedding table, padding included).
    pub vocab: u64,
    /// Training sequence length in tokens (also the size of a learned position table).
    pub seq_len: u64,
    /// Whether the output head reuses the input embedding matrix.
    pub tied_embeddings: bool,
    /// Which linear layers carry a bias vector.
    pub biases: Biases,
    /// Learned absolute positions (a `seq_len × hidden` table) or rotary (no parameters).
    pub positions: Positions,
    /// LayerNorm (weight and bias) or RMSNorm (weight only).
    pub norm: NormKind,
    /// Mixture-of-experts MLP; `None` for a dense model.
    pub moe: Option<MoeSpec>,
    /// Multi-head latent attention (DeepSeek-V2/V3); `None` for standard attention.
    pub mla: Option<MlaSpec>,
}

/// The MLP's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MlpKind {
    /// `down(act(up(x)))`: two matrices (GPT-2, GPT-3, GPT-NeoX).
    Plain,
    /// `down(silu(gate(x)) * up(x))`: three matrices (Llama, Mistral, Qwen2, DeepSeek).
    Gated,
}

/// Which linear layers have a bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Biases {
    /// Bias on the Q, K and V projections (GPT-2, GPT-NeoX, Qwen2).
    pub qkv: bool,
    /// Bias on the attention output projection (GPT-2, GPT-NeoX).
    pub attn_out: bool,
    /// Bias on the MLP matrices (GPT-2, GPT-NeoX).
    pub mlp: bool,
}

impl Biases {
    /// Biases on every linear layer (GPT-2, GPT-3, GPT-NeoX, Megatron GPT).
    pub const ALL: Biases = Biases { qkv: true, attn_out: true, mlp: true };
    /// No biases (Llama, Mistral, Mixtral, DeepSeek).
    pub const NONE: Biases = Biases { qkv: false, attn_out: false, mlp: false };
}

/// How positions enter the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positions {
    /// A learned `seq_len × hidden` table added to the token embedding (GPT-2, GPT-3).
    Learned,
    /// Rotary embeddings applied to Q and K: no parameters (Llama, GPT-NeoX).
    Rotary,
}

/// The normalisation layers' form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// LayerNorm: a weight and a bias of `hidden` each.
    LayerNorm,
    /// RMSNorm: a weight of `hidden`.
    RmsNorm,
}

impl NormKind {
    /// Parameters of one norm over `width` features.
    pub fn params(self, width: u64) -> u64 {
        match self {
            NormKind::LayerNorm => 2 * width,
            NormKind::RmsNorm => width,
        }
    }
}

/// A mixture-of-experts MLP, replacing the dense MLP in every layer from `first_dense_layers` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoeSpec {
    /// Routed experts per MoE layer.
    pub n_experts: u64,
    /// Routed experts each token visits.
    pub top_k: u64,
    /// Inner width of one routed expert (same MLP kind as the model).
    pub expert_ffn_hidden: u64,
    /// Shared experts every token visits (DeepSeek: 1).
    pub n_shared_experts: u64,
    /// Inner width of one shared expert.
    pub shared_ffn_hidden: u64,
    /// The first this-many layers keep a dense MLP of `ffn_hidden` (DeepSeek-V3: 3).
    pub first_dense_layers: u64,
    /// Whether the router has a per-expert bias parameter (DeepSeek-V3's `e_score_correction_bias`).
    pub router_bias: bool,
}

/// Multi-head latent attention (DeepSeek-V2/V3, arXiv:2405.04434 §2.1): queries and keys/values pass through
/// low-rank latents; the KV cache holds only the `kv_lora_rank` latent and the shared rotary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlaSpec {
    /// Rank of the query latent; 0 means queries are projected directly (DeepSeek-V2-Lite).
    pub q_lora_rank: u64,
    /// Rank of the key/value latent (the cached part).
    pub kv_lora_rank: u64,
    /// Per-head query/key width without rotary.
    pub qk_nope_head_dim: u64,
    /// Per-head query/key rotary width (the rotary key is shared by all heads).
    pub qk_rope_head_dim: u64,
    /// Per-head value width.
    pub v_head_dim: u64,
}

/// Widths of the attention projections of one layer, in features (whole layer, before tensor parallelism).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnDims {
    /// Query width: `n_heads × qk head width`.
    pub q: u64,
    /// Key width: `n_kv_heads × qk head width` (for MLA, after the up-projection: `n_heads × qk head width`).
    pub k: u64,
    /// Value width: `n_kv_heads × v head width` (for MLA, `n_heads × v_head_dim`).
    pub v: u64,
    /// Width entering the output projection: `n_heads × v head width`.
    pub o: u64,
    /// Width of one query/key head.
    pub qk_head_dim: u64,
    /// Width of one value head.
    pub v_head_dim: u64,
    /// Heads that carry distinct keys/values (what a KV cache without MLA stores).
    pub kv_heads: u64,
}

impl ModelSpec {
    /// Checks that the shape is possible: nothing zero that must not be, GQA groups whole, MoE routing sane.
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("layers", self.n_layers),
            ("hidden", self.hidden),
            ("heads", self.n_heads),
            ("head_dim", self.head_dim),
            ("vocab", self.vocab),
            ("seq_len", self.seq_len),
        ] {
            if value == 0 {
                return Err(bad(field, value, "must be at least 1"));
            }
        }
        if self.mla.is_none() && (self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads)) {
            return Err(bad(
                "kv_heads",
                self.n_kv_heads,
                format!("must be at least 1 and divide heads ({})", self.n_heads),
            ));
        }
        let dense_layers = self.moe.map_or(self.n_layers, |m| m.first_dense_layers.min(self.n_layers));
        if dense_layers > 0 && self.ffn_hidden == 0 {
            return Err(bad("ffn_hidden", 0, "must be at least 1 (the model has dense MLP layers)"));
        }
        if let Some(moe) = &self.moe {
            if moe.n_experts == 0 {
                return Err(bad("experts", 0, "must be at least 1 in a mixture-of-experts model"));
            }
            if moe.top_k == 0 || moe.top_k > moe.n_experts {
                return Err(bad(
                    "top_k",
                    moe.top_k,
                    format!("must be between 1 and experts ({})", moe.n_experts),
                ));
            }
            if moe.expert_ffn_hidden == 0 {
                return Err(bad("expert_ffn_hidden", 0, "must be at least 1"));
            }
            if moe.n_shared_experts > 0 && moe.shared_ffn_hidden == 0 {
                return Err(bad("shared_ffn_hidden", 0, "must be at least 1 when there are shared experts"));
            }
            if moe.first_dense_layers > self.n_layers {
                return Err(bad(
                    "first_dense_layers",
                    moe.first_dense_layers,
                    format!("must not exceed layers ({})", self.n_layers),
                ));
            }
        }
        if let Some(mla) = &self.mla {
            for (field, value) in [
                ("kv_lora_rank", mla.kv_lora_rank),
                ("qk_nope_head_dim", mla.qk_nope_head_dim),
                ("v_head_dim", mla.v_head_dim),
            ] {
                if value == 0 {
                    return Err(bad(field, value, "must be at least 1 in multi-head latent attention"));
                }
            }
        }
        Ok(())
    }

    /// Whether layer `layer` (0-based) has a mixture-of-experts MLP.
    pub fn is_moe_layer(&self, layer: u64) -> bool {
        self.moe.is_some_and(|m| layer >= m.first_dense_layers)
    }

    /// Number of layers with a mixture-of-experts MLP.
    pub fn n_moe_layers(&self) -> u64 {
        self.moe.map_or(0, |m| self.n_layers.saturating_sub(m.first_dense_layers))
    }

    /// Widths of the attention projections.
    pub fn attn_dims(&self) -> AttnDims {
        match &self.mla {
            Some(mla) => {
                let qk = mla.qk_nope_head_dim + mla.qk_rope_head_dim;
                AttnDims {
                    q: self.n_heads * qk,
                    k: self.n_heads * qk,
                    v: self.n_heads * mla.v_head_dim,
                    o: self.n_heads * mla.v_head_dim,
                    qk_head_dim: qk,
                    v_head_dim: mla.v_head_dim,
                    kv_heads: self.n_heads,
                }
            }
            None => AttnDims {
                q: self.n_heads * self.head_dim,
                k: self.n_kv_heads * self.head_dim,
                v: self.n_kv_heads * self.head_dim,
                o: self.n_heads * self.head_dim,
                qk_head_dim: self.head_dim,
                v_head_dim: self.head_dim,
                kv_heads: self.n_kv_heads,
            },
        }
    }

    /// Matrices in one MLP (2 plain, 3 gated).
    pub fn mlp_matrices(&self) -> u64 {
        match self.mlp {
            MlpKind::Plain => 2,
            MlpKind::Gated => 3,
        }
    }
}

/// `hidden / heads`, or an error naming both when `hidden` is not a whole number of heads.
pub fn derive_head_dim(hidden: u64, n_heads: u64) -> Result<u64> {
    if n_heads == 0 {
        return Err(bad("heads", 0, "must be at least 1"));
    }
    if hidden == 0 || !hidden.is_multiple_of(n_heads) {
        return Err(bad(
            "hidden",
            hidden,
            format!(
                "must be a positive multiple of heads ({n_heads}) so that head_dim = hidden / heads is whole"
            ),
        ));
    }
    Ok(hidden / n_heads)
}

fn bad(field: &'static str, value: u64, expected: impl Into<String>) -> ModelError {
    ModelError::BadShape { field, value, expected: expected.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::preset;

    #[test]
    fn presets_are_valid() {
        for info in crate::presets::presets() {
            let spec = preset(info.name).unwrap();
            spec.validate().unwrap_or_else(|e| panic!("{}: {e}", info.name));
        }
    }

    #[test]
    fn impossible_shapes_name_the_value() {
        let mut spec = preset("llama3-8b").unwrap();
        spec.n_kv_heads = 5;
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("kv_heads = 5") && err.contains("divide heads (32)"), "{err}");
        spec.n_kv_heads = 8;
        spec.n_layers = 0;
        assert_eq!(spec.validate().unwrap_err().to_string(), "layers = 0: must be at least 1");
        let err = derive_head_dim(1000, 3).unwrap_err().to_string();
        assert!(err.starts_with("hidden = 1000") && err.contains("heads (3)"), "{err}");
        assert_eq!(derive_head_dim(4096, 32).unwrap(), 128);
    }

    #[test]
    fn moe_routing_is_checked() {
        let mut spec = preset("mixtral-8x7b").unwrap();
        spec.moe.as_mut().unwrap().top_k = 9;
        let err = spec.validate().unwrap_err().to_string();
        assert_eq!(err, "top_k = 9: must be between 1 and experts (8)");
    }

    #[test]
    fn spec_round_trips_through_json() {
        let spec = preset("deepseek-v3").unwrap();
        let text = serde_json::to_string(&spec).unwrap();
        let back: ModelSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(spec, back);
    }
}
