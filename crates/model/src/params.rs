//! Exact parameter counts, by part of the model, total and active per token.

use serde::{Deserialize, Serialize};

use crate::spec::{MlpKind, ModelSpec};

/// Parameters of a whole model, by part. Counts are exact (every weight and bias), in parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamCounts {
    /// Token embedding, plus the learned position table if any.
    pub embedding: u64,
    /// Attention projections of all layers, with their biases (and MLA's latent norms).
    pub attention: u64,
    /// MLPs of all layers: dense MLPs, routed and shared experts, routers.
    pub mlp: u64,
    /// The two norms of every layer and the final norm.
    pub norms: u64,
    /// The output head (logits); 0 when it is tied to the embedding.
    pub output_head: u64,
    /// Everything: embedding + attention + mlp + norms + output head.
    pub total: u64,
    /// Parameters one token uses: `total` less the routed experts it does not visit. Equals `total` when dense.
    pub active: u64,
    /// Routed-expert parameters (all experts, all MoE layers); 0 when dense.
    pub routed_experts: u64,
}

impl ParamCounts {
    /// `total` less the embedding table (Kaplan et al. 2020's N counts non-embedding parameters).
    pub fn non_embedding(&self) -> u64 {
        self.total - self.embedding
    }
}

/// Parameters of one transformer layer, split by how tensor parallelism treats them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerParams {
    /// Attention parameters (projections, biases, MLA latent norms).
    pub attention: u64,
    /// MLP parameters (dense MLP, or all experts + shared experts + router).
    pub mlp: u64,
    /// The layer's two norms.
    pub norms: u64,
    /// MLP parameters one token uses (top-k experts + shared + router; all of them when dense).
    pub mlp_active: u64,
    /// Routed-expert parameters (the part expert parallelism shards); 0 for a dense layer.
    pub routed_experts: u64,
    /// Parameters split across tensor-parallel ranks (column- and row-parallel weight matrices, column biases).
    pub tp_sharded: u64,
    /// Parameters every tensor-parallel rank holds whole (norms, row-parallel biases, routers, MLA down-projections).
    pub tp_replicated: u64,
}

impl LayerParams {
    /// All parameters of the layer.
    pub fn total(&self) -> u64 {
        self.attention + self.mlp + self.norms
    }
}

/// Exact parameter counts of `spec`. Assumes `spec.validate()` passed.
pub fn param_counts(spec: &ModelSpec) -> ParamCounts {
    let mut attention = 0;
    let mut mlp = 0;
    let mut norms = spec.norm.params(spec.hidden);
    let mut mlp_active = 0;
    let mut routed_experts = 0;
    for layer in 0..spec.n_layers {
        let p = layer_params(spec, layer);
        attention += p.attention;
        mlp += p.mlp;
        norms += p.norms;
        mlp_active += p.mlp_active;
        routed_experts += p.routed_experts;
    }
    let embedding = embedding_params(spec);
    let output_head = output_head_params(spec);
    let total = embedding + attention + mlp + norms + output_head;
    let active = total - mlp + mlp_active;
    ParamCounts { embedding, attention, mlp, norms, output_head, total, active, routed_experts }
}

/// Token embedding plus learned positions.
pub fn embedding_params(spec: &ModelSpec) -> u64 {
    let positions = match spec.positions {
        crate::spec::Positions::Learned => spec.seq_len * spec.hidden,
        crate::spec::Positions::Rotary => 0,
    };
    spec.vocab * spec.hidden + positions
}

/// Output head (`hidden × vocab`), 0 when tied to the embedding.
pub fn output_head_params(spec: &ModelSpec) -> u64 {
    if spec.tied_embeddings { 0 } else { spec.vocab * spec.hidden }
}

/// Parameters of layer `layer` (0-based): dense or MoE according to `spec.moe.first_dense_layers`.
pub fn layer_params(spec: &ModelSpec, layer: u64) -> LayerParams {
    let (attn_sharded, attn_replicated) = attention_params(spec);
    let norms = 2 * spec.norm.params(spec.hidden);
    let (mlp_sharded, mlp_replicated, mlp_active, routed) = if spec.is_moe_layer(layer) {
        moe_params(spec)
    } else {
        let (s, r) = mlp_params(spec, spec.ffn_hidden);
        (s, r, s + r, 0)
    };
    LayerParams {
        attention: attn_sharded + attn_replicated,
        mlp: mlp_sharded + mlp_replicated,
        norms,
        mlp_active,
        routed_experts: routed,
        tp_sharded: attn_sharded + mlp_sharded,
        tp_replicated: attn_replicated + mlp_replicated + norms,
    }
}

/// Parameters of layer `layer` held by one GPU with tensor-parallel size `tp` and expert-parallel size `ep`,
/// as (non-expert, routed-expert) parameters. Routed experts are split by `tp · ep` (expert tensor parallelism
/// equal to `tp`); everything else as [`LayerParams`] says.
pub fn layer_params_per_gpu(spec: &ModelSpec, layer: u64, tp: u64, ep: u64) -> (f64, f64) {
    let p = layer_params(spec, layer);
    let (tp, ep) = (tp.max(1) as f64, ep.max(1) as f64);
    let (routed_sharded, routed_replicated) =
        if spec.is_moe_layer(layer) { routed_split(spec) } else { (0, 0) };
    let dense = (p.tp_sharded - routed_sharded) as f64 / tp + (p.tp_replicated - routed_replicated) as f64;
    let experts = routed_sharded as f64 / (tp * ep) + routed_replicated as f64 / ep;
    (dense, experts)
}

/// (TP-sharded, TP-replicated) parameters of the routed experts of one MoE layer.
fn routed_split(spec: &ModelSpec) -> (u64, u64) {
    let Some(moe) = &spec.moe else { return (0, 0) };
    let (s, r) = mlp_params(spec, moe.expert_ffn_hidden);
    (moe.n_experts * s, moe.n_experts * r)
}

/// The `12·h²·L` rule of thumb (4h² attention + 8h² MLP per layer; Kaplan et al. 2020 §2.1).
pub fn rule_of_thumb_params(spec: &ModelSpec) -> u64 {
    12 * spec.hidden * spec.hidden * spec.n_layers
}

/// (tensor-parallel sharded, replicated) attention parameters of one layer.
fn attention_params(spec: &ModelSpec) -> (u64, u64) {
    let h = spec.hidden;
    let d = spec.attn_dims();
    let out_bias = if spec.biases.attn_out { h } else { 0 };
    match &spec.mla {
        None => {
            let weights = h * (d.q + d.k + d.v) + d.o * h;
            let qkv_bias = if spec.biases.qkv { d.q + d.k + d.v } else { 0 };
            (weights + qkv_bias, out_bias)
        }
        Some(mla) => {
            // DeepSeek-V3 modeling: q_a_proj, q_a_layernorm, q_b_proj (or q_proj), kv_a_proj_with_mqa,
            // kv_a_layernorm, kv_b_proj, o_proj. The down-projections and latent norms are replicated across TP.
            let (q_sharded, q_replicated) = if mla.q_lora_rank > 0 {
                (mla.q_lora_rank * d.q, h * mla.q_lora_rank + spec.norm.params(mla.q_lora_rank))
            } else {
                (h * d.q, 0)
            };
            let kv_down = h * (mla.kv_lora_rank + mla.qk_rope_head_dim) + spec.norm.params(mla.kv_lora_rank);
            let kv_up = mla.kv_lora_rank * spec.n_heads * (mla.qk_nope_head_dim + mla.v_head_dim);
            let out = d.o * h;
            (q_sharded + kv_up + out, q_replicated + kv_down + out_bias)
        }
    }
}

/// (sharded, replicated) parameters of one MLP of inner width `ffn`.
fn mlp_params(spec: &ModelSpec, ffn: u64) -> (u64, u64) {
    let weights = spec.mlp_matrices() * spec.hidden * ffn;
    if !spec.biases.mlp {
        return (weights, 0);
    }
    let up_bias = match spec.mlp {
        MlpKind::Plain => ffn,
        MlpKind::Gated => 2 * ffn,
    };
    (weights + up_bias, spec.hidden)
}

/// (sharded, replicated, active, routed) parameters of one MoE MLP.
fn moe_params(spec: &ModelSpec) -> (u64, u64, u64, u64) {
    let Some(moe) = &spec.moe else { return (0, 0, 0, 0) };
    let (expert_s, expert_r) = mlp_params(spec, moe.expert_ffn_hidden);
    let expert = expert_s + expert_r;
    let (shared_s, shared_r) = mlp_params(spec, moe.shared_ffn_hidden);
    let shared = moe.n_shared_experts * (shared_s + shared_r);
    let router = spec.hidden * moe.n_experts + if moe.router_bias { moe.n_experts } else { 0 };
    let routed = moe.n_experts * expert;
    let sharded = moe.n_experts * expert_s + moe.n_shared_experts * shared_s;
    let replicated = moe.n_experts * expert_r + moe.n_shared_experts * shared_r + router;
    let active = moe.top_k * expert + shared + router;
    (sharded, replicated, active, routed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::preset;

    fn counts(name: &str) -> ParamCounts {
        param_counts(&preset(name).unwrap())
    }

    #[test]
    fn gpt2_124m_is_exact() {
        let c = counts("gpt2-124m");
        assert_eq!(c.total, 124_439_808);
        assert_eq!(c.embedding, 50257 * 768 + 1024 * 768);
        assert_eq!(c.output_head, 0);
        assert_eq!(c.active, c.total);
    }

    #[test]
    fn llama3_are_exact() {
        assert_eq!(counts("llama3-8b").total, 8_030_261_248);
        assert_eq!(counts("llama3-70b").total, 70_553_706_496);
        let c405 = counts("llama3-405b").total as f64;
        assert!((c405 / 1e9 - 405.8).abs() < 0.1, "{c405}");
    }

    #[test]
    fn gpt3_175b_is_174_6b() {
        let c = counts("gpt3-175b").total as f64 / 1e9;
        assert!((c - 174.6).abs() < 0.05, "{c}");
    }

    #[test]
    fn mixtral_total_and_active() {
        let c = counts("mixtral-8x7b");
        assert!((c.total as f64 / 1e9 - 46.7).abs() < 0.05, "{}", c.total);
        assert!((c.active as f64 / 1e9 - 12.9).abs() < 0.05, "{}", c.active);
        assert_eq!(c.routed_experts, 32 * 8 * 3 * 4096 * 14336);
    }

    #[test]
    fn deepseek_v3_total_and_active() {
        // The report (arXiv:2412.19437, abstract): 671B total, 37B activated per token, MTP excluded.
        let c = counts("deepseek-v3");
        assert!((c.total as f64 / 1e9 - 671.0).abs() < 0.5, "{}", c.total);
        assert!((c.active as f64 / 1e9 - 37.5).abs() < 0.6, "{}", c.active);
    }

    #[test]
    fn narayanan_table1_sizes_match_printed_values() {
        // Printed parameter counts (billions) of Narayanan et al. 2021 Table 1.
        for (name, printed) in [
            ("gpt-1.7b", 1.7),
            ("gpt-3.6b", 3.6),
            ("gpt-7.5b", 7.5),
            ("gpt-18b", 18.4),
            ("gpt-39b", 39.1),
            ("gpt-76b", 76.1),
            ("gpt-145b", 145.6),
            ("gpt-310b", 310.1),
            ("gpt-530b", 529.6),
            ("gpt-1t", 1008.0),
        ] {
            let total = counts(name).total as f64 / 1e9;
            assert!((total - printed).abs() / printed < 0.03, "{name}: {total} vs {printed}");
        }
    }

    #[test]
    fn parts_add_up_and_tp_split_is_complete() {
        for info in crate::presets::presets() {
            let spec = preset(info.name).unwrap();
            let c = param_counts(&spec);
            assert_eq!(c.total, c.embedding + c.attention + c.mlp + c.norms + c.output_head);
            for layer in [0, spec.n_layers - 1] {
                let p = layer_params(&spec, layer);
                assert_eq!(p.total(), p.tp_sharded + p.tp_replicated, "{}", info.name);
            }
        }
    }

    #[test]
    fn rule_of_thumb_is_close_for_gpt_shapes() {
        let spec = preset("gpt-145b").unwrap();
        let exact = param_counts(&spec).non_embedding() as f64;
        let rough = rule_of_thumb_params(&spec) as f64;
        assert!((exact / rough - 1.0).abs() < 0.01);
    }
}
