//! Tests of the per-layer work against parameter counts and the published FLOP formulas.

use super::*;
use crate::params::layer_params;
use crate::presets::preset;

fn shape(tp: u64) -> WorkShape {
    WorkShape {
        micro_batch: 2,
        seq_len: 4096,
        tp,
        cp: 1,
        sequence_parallel: false,
        causal: true,
        element_bytes: 2,
    }
}

#[test]
fn gemm_flops_are_2_tokens_weights() {
    // Without biases, each weight is used once per token: forward GEMM FLOPs = 2 · tokens · weights.
    for name in ["llama3-8b", "llama3-70b"] {
        let spec = preset(name).unwrap();
        let s = shape(1);
        let work = layer_work(&spec, &s, 0);
        let p = layer_params(&spec, 0);
        let weights = (p.total() - p.norms) as f64;
        assert_eq!(work.gemm_flops(), 2.0 * s.tokens() as f64 * weights, "{name}");
    }
}

#[test]
fn tensor_parallelism_splits_work_evenly() {
    let spec = preset("llama3-70b").unwrap();
    let one = layer_work(&spec, &shape(1), 5);
    let eight = layer_work(&spec, &shape(8), 5);
    assert_eq!(one.gemm_flops(), 8.0 * eight.gemm_flops());
    assert_eq!(one.attention.flops(), 8.0 * eight.attention.flops());
    let names: Vec<_> = one.gemms.iter().map(|g| g.kind).collect();
    assert_eq!(names, [GemmKind::Qkv, GemmKind::AttnOut, GemmKind::MlpUp, GemmKind::MlpDown]);
    // GQA: Q 8192 + K 1024 + V 1024 output features, over 8 ranks.
    assert_eq!((eight.gemms[0].n, eight.gemms[0].k), (10240 / 8, 8192));
    assert_eq!(eight.gemms[2].n, 2 * 28672 / 8);
}

#[test]
fn attention_core_matches_4_b_s2_h() {
    // Narayanan et al. 2021: attention core forward is 4·b·s²·h per layer (no causal halving).
    let spec = preset("gpt3-175b").unwrap();
    let s = WorkShape { causal: false, ..shape(1) };
    let work = layer_work(&spec, &s, 0);
    let (b, seq, h) = (2.0, 4096.0, 12288.0);
    assert_eq!(work.attention.flops(), 4.0 * b * seq * seq * h);
    let causal = layer_work(&spec, &shape(1), 0);
    assert_eq!(causal.attention.flops() * 2.0, work.attention.flops());
}

#[test]
fn moe_layers_route_top_k_rows() {
    let spec = preset("deepseek-v3").unwrap();
    let s = shape(1);
    let dense = layer_work(&spec, &s, 0);
    let moe = layer_work(&spec, &s, 3);
    assert!(!dense.moe && moe.moe);
    assert_eq!(moe.routed_tokens, 8 * s.tokens());
    let up = moe.gemms.iter().find(|g| g.kind == GemmKind::ExpertUp).unwrap();
    assert_eq!((up.m, up.n, up.k, up.groups), (8 * s.tokens(), 2 * 2048, 7168, 256));
    // Active-parameter FLOPs: each token uses top-k experts, the shared expert and the router.
    let p = layer_params(&spec, 3);
    let active_weights = (p.attention + p.mlp_active - 256) as f64; // less the router bias (not a GEMM)
    let mla_norms = (1536 + 512) as f64;
    assert_eq!(moe.gemm_flops(), 2.0 * s.tokens() as f64 * (active_weights - mla_norms));
}

#[test]
fn sequence_parallel_shrinks_norm_traffic() {
    let spec = preset("llama3-8b").unwrap();
    let plain = layer_work(&spec, &shape(4), 0);
    let sp = layer_work(&spec, &WorkShape { sequence_parallel: true, ..shape(4) }, 0);
    let norm =
        |w: &LayerWork| w.elementwise.iter().find(|e| e.kind == ElementwiseKind::InputNorm).unwrap().bytes;
    assert_eq!(norm(&plain), 4 * norm(&sp));
    assert_eq!(norm(&plain), 2 * 8192 * 4096 * 2);
}

#[test]
fn edge_work_logits() {
    let spec = preset("gpt2-124m").unwrap();
    let edge = edge_work(&spec, &shape(1));
    assert_eq!(edge.logits.flops(), 2.0 * 8192.0 * 50257.0 * 768.0);
    assert!(edge.embedding.bytes > 0 && edge.loss.bytes > 0);
}
