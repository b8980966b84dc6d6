//! Activation memory per layer and micro-batch, after Korthikanti et al. 2022 (arXiv:2205.05198, §4, Table 2),
//! generalised to GQA/MLA attention, gated MLPs, mixtures of experts and FlashAttention.
//!
//! Per token of a layer (e = bytes per element, 2 in the paper; masks 1 byte), with `t` = TP size:
//! - kept whole on every TP rank unless sequence parallelism splits them: the two norm inputs (2e·h), the QKV
//!   input (e·h), the MLP input (e·h), and with dropout the two 1-byte masks (2h). For a GPT with dropout that is
//!   the paper's `10·sbh`.
//! - split by `t`: Q, K and V (e·(q + k + v)), the output-projection input (e·o), the MLP intermediates
//!   (2e·ffn plain; 3e·ffn gated: gate, up and their product). For a GPT that is the paper's `24·sbh`.
//! - without FlashAttention, the score matrix: softmax output (e·a·s), and with dropout its mask (a·s) and
//!   output (e·a·s), split by `t`: the paper's `5·a·s²·b`. FlashAttention keeps only the fp32 log-sum-exp
//!   (4 bytes per head per token).
//!
//! Selective recompute drops the score-matrix terms; full recompute keeps only each layer's input (e·h per
//! token, split by `t` with sequence parallelism) plus one layer's full set while that layer is recomputed.

use serde::{Deserialize, Serialize};

use crate::memory::Recompute;
use crate::spec::{MlpKind, ModelSpec};

/// What sets the size of one micro-batch's activations on one rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationConfig {
    /// Sequences per micro-batch `b`.
    pub micro_batch: u64,
    /// Tokens per sequence `s`.
    pub seq_len: u64,
    /// Tensor-parallel size `t`.
    pub tp: u64,
    /// Context-parallel size: each rank keeps `s / cp` tokens.
    pub cp: u64,
    /// Sequence parallelism: the "kept whole" terms are split by `t` too.
    pub sequence_parallel: bool,
    /// Recomputation.
    pub recompute: Recompute,
    /// FlashAttention: no score matrix is stored.
    pub flash_attention: bool,
    /// Dropout masks are stored.
    pub dropout: bool,
    /// Bytes per activation element.
    pub element_bytes: u64,
}

/// Bytes of activations layer `layer` keeps for one micro-batch on one rank (see the module doc).
pub fn activation_bytes_per_layer(spec: &ModelSpec, cfg: &ActivationConfig, layer: u64) -> f64 {
    let t = cfg.tp.max(1) as f64;
    let tokens = (cfg.micro_batch * cfg.seq_len) as f64 / cfg.cp.max(1) as f64;
    let replicated_div = if cfg.sequence_parallel { t } else { 1.0 };
    let h = spec.hidden as f64;
    let e = cfg.element_bytes as f64;
    if cfg.recompute == Recompute::Full {
        return tokens * e * h / replicated_div;
    }
    full_layer_bytes(spec, cfg, layer, tokens, t, replicated_div)
}

/// Activation bytes outside the layers' per-micro-batch sets on one stage: the embedding dropout mask on the first
/// stage (per micro-batch in flight), the final-norm input and fp32 logits on the last stage (one micro-batch), and
/// under full recompute the working set of one recomputed layer (`sample_layer`).
pub fn stage_extra_activation_bytes(
    spec: &ModelSpec,
    cfg: &ActivationConfig,
    first: bool,
    last: bool,
    in_flight: u64,
    sample_layer: u64,
) -> f64 {
    let t = cfg.tp.max(1) as f64;
    let tokens = (cfg.micro_batch * cfg.seq_len) as f64 / cfg.cp.max(1) as f64;
    let replicated_div = if cfg.sequence_parallel { t } else { 1.0 };
    let h = spec.hidden as f64;
    let e = cfg.element_bytes as f64;
    let mut bytes = 0.0;
    if first && cfg.dropout {
        bytes += in_flight as f64 * tokens * h / replicated_div;
    }
    if last {
        bytes += tokens * (e * h / replicated_div + 4.0 * spec.vocab as f64 / t);
    }
    if cfg.recompute == Recompute::Full {
        bytes += full_layer_bytes(spec, cfg, sample_layer, tokens, t, replicated_div);
    }
    bytes
}

/// The layer's activations without full recompute.
fn full_layer_bytes(
    spec: &ModelSpec,
    cfg: &ActivationConfig,
    layer: u64,
    tokens: f64,
    t: f64,
    replicated_div: f64,
) -> f64 {
    let h = spec.hidden as f64;
    let e = cfg.element_bytes as f64;
    let d = spec.attn_dims();
    let masks = if cfg.dropout { 2.0 * h } else { 0.0 };
    let mut replicated = 4.0 * e * h + masks;
    if let Some(mla) = &spec.mla {
        // Latents before and after their norms, and the shared rotary key: kept whole (their projections
        // are replicated across TP).
        replicated += e * (2 * mla.q_lora_rank + 2 * mla.kv_lora_rank + mla.qk_rope_head_dim) as f64;
    }
    let mlp_per_row = |ffn: u64| match spec.mlp {
        MlpKind::Plain => 2.0 * e * ffn as f64,
        MlpKind::Gated => 3.0 * e * ffn as f64,
    };
    let mlp = match (spec.is_moe_layer(layer), &spec.moe) {
        (true, Some(moe)) => {
            let routed = moe.top_k as f64 * (e * h + mlp_per_row(moe.expert_ffn_hidden));
            let shared = mlp_per_row(moe.n_shared_experts * moe.shared_ffn_hidden);
            // Router scores: kept whole on every rank.
            replicated += e * moe.n_experts as f64;
            routed + shared
        }
        _ => mlp_per_row(spec.ffn_hidden),
    };
    let split = e * (d.q + d.k + d.v + d.o) as f64 + mlp;
    let heads = spec.n_heads as f64;
    let scores = if cfg.flash_attention {
        if cfg.recompute == Recompute::Selective { 0.0 } else { 4.0 * heads }
    } else if cfg.recompute == Recompute::Selective {
        0.0
    } else {
        let kv_len = cfg.seq_len as f64;
        let per_score = if cfg.dropout { 2.0 * e + 1.0 } else { e };
        heads * kv_len * per_score
    };
    tokens * (replicated / replicated_div + (split + scores) / t)
}
