//! Tests of memory per GPU against the ZeRO paper's example and Korthikanti et al.'s Table 2.

use super::*;
use crate::activations::{ActivationConfig, activation_bytes_per_layer};
use crate::presets::preset;

#[test]
fn zero_paper_7_5b_on_64_gpus() {
    // Rajbhandari et al., ZeRO (SC20, arXiv:1910.02054) Figure 1: Ψ = 7.5B, N_d = 64, mixed-precision Adam
    // (K = 12): 120 GB, 31.4 GB, 16.6 GB and 1.9 GB per GPU for stages 0-3 (exact 120, 31.41, 16.64, 1.875).
    let state = state_bytes(Precision::Fp16, Precision::Fp16, Optimizer::Adam);
    assert_eq!(state.total(), 16.0);
    let expected_gb = [120.0, 31.4, 16.6, 1.9];
    let exact_gb = [120.0, 31.406_25, 16.640_625, 1.875];
    for stage in 0..4u8 {
        let (w, g, o) = model_state_bytes(7.5e9, state, stage, 64);
        let gb = (w + g + o) / 1e9;
        assert!((gb - exact_gb[stage as usize]).abs() < 1e-9, "stage {stage}: {gb}");
        assert!((gb - expected_gb[stage as usize]).abs() < 0.05, "stage {stage}: {gb}");
    }
}

#[test]
fn megatron_bytes_per_parameter() {
    // Megatron-LM docs (dist_optimizer.md): bf16 params with fp32 main grads take 18 B/param, or 6 + 12/d
    // with the distributed optimizer.
    let state = state_bytes(Precision::Bf16, Precision::Fp32, Optimizer::Adam);
    assert_eq!(state.total(), 18.0);
    let (w, g, o) = model_state_bytes(1.0, state, 1, 8);
    assert_eq!(w + g + o, 6.0 + 12.0 / 8.0);
    let fp32 = state_bytes(Precision::Fp32, Precision::Fp32, Optimizer::Adam);
    assert_eq!(fp32.total(), 16.0);
}

fn korthikanti(tp: u64, sp: bool, recompute: Recompute) -> ActivationConfig {
    ActivationConfig {
        micro_batch: 1,
        seq_len: 2048,
        tp,
        cp: 1,
        sequence_parallel: sp,
        recompute,
        flash_attention: false,
        dropout: true,
        element_bytes: 2,
    }
}

#[test]
fn korthikanti_table_2() {
    // GPT-3 175B shape (s = 2048, h = 12288, a = 96), one layer, b = 1.
    let spec = preset("gpt3-175b").unwrap();
    let (s, b, h, a) = (2048.0, 1.0, 12288.0, 96.0);
    let sbh = s * b * h;
    let score = 5.0 * a * s / h;
    let t = 8.0;
    let cases = [
        (korthikanti(1, false, Recompute::None), sbh * (34.0 + score)),
        (korthikanti(8, false, Recompute::None), sbh * (10.0 + 24.0 / t + score / t)),
        (korthikanti(8, true, Recompute::None), sbh * (34.0 / t + score / t)),
        (korthikanti(8, false, Recompute::Selective), sbh * (10.0 + 24.0 / t)),
        (korthikanti(8, true, Recompute::Selective), sbh * 34.0 / t),
        (korthikanti(1, false, Recompute::Full), 2.0 * sbh),
    ];
    for (cfg, expected) in cases {
        let got = activation_bytes_per_layer(&spec, &cfg, 0);
        assert!((got / expected - 1.0).abs() < 1e-12, "{cfg:?}: {got} vs {expected}");
    }
}

#[test]
fn flash_attention_stores_no_score_matrix() {
    let spec = preset("gpt3-175b").unwrap();
    let mut cfg = korthikanti(8, true, Recompute::None);
    cfg.flash_attention = true;
    let flash = activation_bytes_per_layer(&spec, &cfg, 0);
    cfg.recompute = Recompute::Selective;
    cfg.flash_attention = false;
    let selective = activation_bytes_per_layer(&spec, &cfg, 0);
    // Flash keeps only 4 bytes of log-sum-exp per head and token beyond selective recompute.
    assert_eq!(flash - selective, 2048.0 * 4.0 * 96.0 / 8.0);
}

#[test]
fn plan_errors_name_the_value() {
    let spec = preset("llama3-8b").unwrap();
    let plan = MemoryPlan { tp: 3, ..MemoryPlan::default() };
    assert_eq!(plan.validate(&spec).unwrap_err().to_string(), "tp = 3: must divide heads (32)");
    let plan = MemoryPlan { tp: 16, ..MemoryPlan::default() };
    assert_eq!(plan.validate(&spec).unwrap_err().to_string(), "tp = 16: must divide kv_heads (8)");
    let plan = MemoryPlan { pp: 33, ..MemoryPlan::default() };
    assert_eq!(plan.validate(&spec).unwrap_err().to_string(), "pp = 33: must not exceed layers (32)");
    let plan = MemoryPlan { zero_stage: 4, ..MemoryPlan::default() };
    assert_eq!(plan.validate(&spec).unwrap_err().to_string(), "zero_stage = 4: must be 0, 1, 2 or 3");
    let plan = MemoryPlan { ep: 2, dp: 2, ..MemoryPlan::default() };
    assert!(
        plan.validate(&spec)
            .unwrap_err()
            .to_string()
            .starts_with("ep = 2: must divide the routed experts (0)")
    );
}

#[test]
fn kv_cache_per_token() {
    // Llama-3-8B: 2 (K, V) × 32 layers × 8 heads × 128 × 2 bytes = 128 KiB per token.
    assert_eq!(kv_cache_bytes_per_token(&preset("llama3-8b").unwrap(), 2), 131_072);
    // DeepSeek-V3 MLA: 61 layers × (512 + 64) × 2 bytes.
    assert_eq!(kv_cache_bytes_per_token(&preset("deepseek-v3").unwrap(), 2), 61 * 576 * 2);
}

#[test]
fn whole_model_state_is_sharded_by_tp_pp_and_zero() {
    let spec = preset("gpt-7.5b").unwrap();
    let total = crate::params::param_counts(&spec).total as f64;
    let one = memory_per_gpu(&spec, &MemoryPlan::default()).unwrap();
    assert!((one.params - total).abs() < 1.0, "{} vs {total}", one.params);
    assert_eq!(one.weights_bytes, 2.0 * one.params);
    let plan = MemoryPlan { tp: 4, pp: 4, dp: 8, zero_stage: 1, ..MemoryPlan::default() };
    let split = memory_per_gpu(&spec, &plan).unwrap();
    // The heaviest stage holds its layers' share plus the embedding (or the tied head's copy).
    assert!(split.params > total / 16.0 && split.params < total / 16.0 * 1.2, "{}", split.params);
    assert_eq!(split.optimizer_bytes, 12.0 * split.params / 8.0);
}

#[test]
fn first_stage_holds_pp_micro_batches_under_1f1b() {
    let spec = preset("gpt-7.5b").unwrap();
    let plan = MemoryPlan { pp: 4, n_micro_batches: 16, ..MemoryPlan::default() };
    let mem = memory_per_gpu(&spec, &plan).unwrap();
    assert_eq!((mem.stage, mem.micro_batches_in_flight, mem.layers), (0, 4, 9));
    let cfg = plan.activation_config();
    let per_layer = activation_bytes_per_layer(&spec, &cfg, 0);
    assert!((mem.activations_bytes - 4.0 * 9.0 * per_layer).abs() < 1.0);
    // With fewer micro-batches than stages, fewer are in flight.
    let few = memory_per_gpu(&spec, &MemoryPlan { n_micro_batches: 2, ..plan }).unwrap();
    assert_eq!(few.micro_batches_in_flight, 2);
}

#[test]
fn expert_parallelism_shards_experts() {
    let spec = preset("mixtral-8x7b").unwrap();
    let plan = MemoryPlan { dp: 8, ..MemoryPlan::default() };
    let no_ep = memory_per_gpu(&spec, &plan).unwrap();
    let ep8 = memory_per_gpu(&spec, &MemoryPlan { ep: 8, ..plan }).unwrap();
    let counts = crate::params::param_counts(&spec);
    let saved = counts.routed_experts as f64 * 7.0 / 8.0;
    assert!((no_ep.params - ep8.params - saved).abs() < 1.0);
}
