//! FLOPs per training token and per step, and forward FLOPs per token for inference.
//!
//! Three ways of counting, shown side by side:
//! - `6N` (Kaplan et al. 2020 §2.1): 2N forward + 4N backward per token, N = active parameters; plus the
//!   attention-core term `6·L·s·(d_qk + d_v)·heads` per token (halved when causal) that 6N leaves out.
//! - exact: the GEMM shapes of [`crate::work::layer_work`] and the output head, times 3 for training (forward,
//!   data gradient, weight gradient), as current Megatron-LM's `num_floating_point_operations` counts.
//! - Megatron 2021 (Narayanan et al. SC'21, Appendix): `72·B·s·L·h²·(1 + s/6h + V/12Lh)` without recompute and
//!   `96·B·s·L·h²·(1 + s/6h + V/16Lh)` with full recompute, exact for a dense MHA GPT with a 4h GELU MLP.

use serde::{Deserialize, Serialize};

use crate::memory::Recompute;
use crate::params::param_counts;
use crate::spec::ModelSpec;
use crate::work::{WorkShape, edge_work, layer_work};

/// How to count training FLOPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlopsConfig {
    /// Tokens per sequence.
    pub seq_len: u64,
    /// Halve the attention core for causal masking (Megatron-Core and FlashAttention do; PaLM's MFU does not).
    pub causal: bool,
    /// Recomputation, which adds hardware FLOPs (not model FLOPs).
    pub recompute: Recompute,
}

/// FLOPs per token of one model, by several conventions. All in FLOP per token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FlopsPerToken {
    /// `6 × active parameters`.
    pub six_n: f64,
    /// Training attention-core FLOPs per token: 3 × forward `QKᵀ` and `PV`.
    pub attention: f64,
    /// `six_n + attention`.
    pub six_n_plus_attention: f64,
    /// Exact model FLOPs per training token: 3 × (forward GEMMs + attention core + logits). No recompute.
    pub training: f64,
    /// `training` plus the recomputed forward work (hardware FLOPs).
    pub training_with_recompute: f64,
    /// Exact forward FLOPs per token, averaged over a sequence (prefill).
    pub forward: f64,
    /// Narayanan et al. 2021, no recompute: `72·s·L·h²·(1 + s/6h + V/12Lh) / s`.
    pub megatron: f64,
    /// Narayanan et al. 2021, full recompute: `96·s·L·h²·(1 + s/6h + V/16Lh) / s`.
    pub megatron_full_recompute: f64,
}

/// FLOPs per training token of `spec` under `cfg`.
pub fn flops_per_token(spec: &ModelSpec, cfg: &FlopsConfig) -> FlopsPerToken {
    let shape =
        WorkShape { micro_batch: 1, seq_len: cfg.seq_len, causal: cfg.causal, ..WorkShape::default() };
    let s = cfg.seq_len as f64;
    let mut gemm = 0.0;
    let mut attention = 0.0;
    for layer in 0..spec.n_layers {
        let work = layer_work(spec, &shape, layer);
        gemm += work.gemm_flops();
        attention += work.attention.flops();
    }
    let logits = edge_work(spec, &shape).logits.flops();
    let forward = (gemm + attention + logits) / s;
    let recomputed = match cfg.recompute {
        Recompute::None => 0.0,
        Recompute::Selective => attention / s,
        Recompute::Full => (gemm + attention) / s,
    };
    let six_n = 6.0 * param_counts(spec).active as f64;
    let attention_training = 3.0 * attention / s;
    FlopsPerToken {
        six_n,
        attention: attention_training,
        six_n_plus_attention: six_n + attention_training,
        training: 3.0 * forward,
        training_with_recompute: 3.0 * forward + recomputed,
        forward,
        megatron: megatron_step_flops(spec, 1, cfg.seq_len, false) / s,
        megatron_full_recompute: megatron_step_flops(spec, 1, cfg.seq_len, true) / s,
    }
}

/// Narayanan et al. 2021 (SC'21, Appendix) FLOPs of one step of `batch_seqs` sequences of `seq_len` tokens:
/// `72·B·s·L·h²·(1 + s/6h + V/12Lh)`, or with full recompute `96·B·s·L·h²·(1 + s/6h + V/16Lh)`.
pub fn megatron_step_flops(spec: &ModelSpec, batch_seqs: u64, seq_len: u64, full_recompute: bool) -> f64 {
    let (b, s) = (batch_seqs as f64, seq_len as f64);
    let (l, h, v) = (spec.n_layers as f64, spec.hidden as f64, spec.vocab as f64);
    if full_recompute {
        96.0 * b * s * l * h * h * (1.0 + s / (6.0 * h) + v / (16.0 * l * h))
    } else {
        72.0 * b * s * l * h * h * (1.0 + s / (6.0 * h) + v / (12.0 * l * h))
    }
}

/// Exact model FLOPs of one training step over `tokens` tokens (global batch × sequence length).
pub fn training_step_flops(spec: &ModelSpec, cfg: &FlopsConfig, tokens: u64) -> f64 {
    flops_per_token(spec, cfg).training * tokens as f64
}

/// Forward FLOPs to decode one token with `context_len` tokens already in the KV cache: every GEMM on one row,
/// the logits, and attention over the context. MLA is counted in its training form (not the absorbed-weight
/// inference form).
pub fn decode_flops_per_token(spec: &ModelSpec, context_len: u64) -> f64 {
    let shape = WorkShape { micro_batch: 1, seq_len: 1, causal: false, ..WorkShape::default() };
    let d = spec.attn_dims();
    let per_layer_attention =
        2.0 * spec.n_heads as f64 * context_len as f64 * (d.qk_head_dim + d.v_head_dim) as f64;
    let mut total = edge_work(spec, &shape).logits.flops();
    for layer in 0..spec.n_layers {
        total += layer_work(spec, &shape, layer).gemm_flops() + per_layer_attention;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::preset;

    fn cfg(seq_len: u64, causal: bool) -> FlopsConfig {
        FlopsConfig { seq_len, causal, recompute: Recompute::None }
    }

    /// A GPT without biases and with untied embeddings, so that the exact count is the formula's.
    fn bare_gpt() -> ModelSpec {
        let mut spec = preset("gpt-145b").unwrap();
        spec.biases = crate::spec::Biases::NONE;
        spec
    }

    #[test]
    fn exact_count_equals_narayanan_formula_for_gpt() {
        let spec = bare_gpt();
        let f = flops_per_token(&spec, &cfg(2048, false));
        assert!((f.training / f.megatron - 1.0).abs() < 1e-12, "{} vs {}", f.training, f.megatron);
    }

    #[test]
    fn full_recompute_matches_96_form() {
        // 96·B·s·L·h²·(1 + s/6h + V/16Lh) = 4 passes of the layers, 3 of the logits.
        let spec = bare_gpt();
        let c = FlopsConfig { seq_len: 2048, causal: false, recompute: Recompute::Full };
        let f = flops_per_token(&spec, &c);
        assert!((f.training_with_recompute / f.megatron_full_recompute - 1.0).abs() < 1e-12);
    }

    #[test]
    fn causal_halving_halves_only_attention() {
        let spec = preset("llama3-8b").unwrap();
        let full = flops_per_token(&spec, &cfg(8192, false));
        let causal = flops_per_token(&spec, &cfg(8192, true));
        assert!((full.attention / causal.attention - 2.0).abs() < 1e-12);
        let diff = full.training - causal.training;
        assert!((diff - causal.attention).abs() / diff < 1e-12);
        // Attention core per token, causal: 6·L·s·(d_qk + d_v)·heads / 2 = 3·32·8192·256·32.
        assert_eq!(causal.attention, 3.0 * 32.0 * 8192.0 * 256.0 * 32.0);
    }

    #[test]
    fn six_n_is_close_to_exact_gemm_count() {
        // 6N counts the embedding table as if it were a GEMM; the exact count does not. For Llama-3-8B:
        // exact GEMMs = 6·(N − V·h) per token.
        let spec = preset("llama3-8b").unwrap();
        let f = flops_per_token(&spec, &cfg(8192, true));
        let gemm = f.training - f.attention;
        let n = param_counts(&spec).total as f64;
        let norms = (2 * 32 + 1) as f64 * 4096.0;
        assert!((gemm - 6.0 * (n - 128_256.0 * 4096.0 - norms)).abs() < 1.0, "{gemm}");
    }

    #[test]
    fn moe_uses_active_parameters() {
        let spec = preset("mixtral-8x7b").unwrap();
        let f = flops_per_token(&spec, &cfg(4096, true));
        let active = param_counts(&spec).active as f64;
        let gemm = f.training - f.attention;
        // Only embedding lookup and norms separate the exact GEMM count from 6·active.
        assert!((gemm / (6.0 * active) - 1.0).abs() < 0.025, "{}", gemm / (6.0 * active));
    }

    #[test]
    fn decode_is_about_2n() {
        let spec = preset("llama3-70b").unwrap();
        let flops = decode_flops_per_token(&spec, 0);
        let n = param_counts(&spec).total as f64 - 128_256.0 * 8192.0;
        assert!((flops / (2.0 * n) - 1.0).abs() < 1e-3);
        let with_ctx = decode_flops_per_token(&spec, 8192);
        assert_eq!(with_ctx - flops, 80.0 * 2.0 * 64.0 * 8192.0 * 256.0);
    }
}
