//! Memory per GPU for a parallel plan: weights, gradients and optimizer state (by precision and ZeRO stage),
//! activations (by tensor/sequence/context parallelism and recomputation), and the KV cache for inference.
//!
//! Sources: ZeRO (Rajbhandari et al. SC'20, §3 and §5) for model states; Korthikanti et al. 2022
//! ("Reducing Activation Recomputation in Large Transformer Models", arXiv:2205.05198, §4, Table 2) for activations.

use serde::{Deserialize, Serialize};

use crate::activations::{ActivationConfig, activation_bytes_per_layer, stage_extra_activation_bytes};
use crate::error::{ModelError, Result};
use crate::params::{embedding_params, layer_params_per_gpu, output_head_params};
use crate::spec::ModelSpec;

/// A number format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit float.
    Fp32,
    /// 16-bit float.
    Fp16,
    /// bfloat16.
    Bf16,
    /// 8-bit float (E4M3/E5M2).
    Fp8,
}

impl Precision {
    /// Bytes per element.
    pub fn bytes(self) -> u64 {
        match self {
            Precision::Fp32 => 4,
            Precision::Fp16 | Precision::Bf16 => 2,
            Precision::Fp8 => 1,
        }
    }
}

/// Activation recomputation (Korthikanti et al. 2022).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recompute {
    /// Keep every activation the backward pass needs.
    None,
    /// Recompute the attention core (softmax, dropout, score matrix) in the backward pass.
    Selective,
    /// Keep only each layer's input; recompute the whole layer in the backward pass.
    Full,
}

/// The optimizer, which sets the state kept per parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    /// Adam/AdamW: two fp32 moments (8 bytes per parameter).
    Adam,
    /// SGD with momentum: one fp32 moment (4 bytes).
    SgdMomentum,
    /// Plain SGD: no state.
    Sgd,
}

/// Bytes kept per parameter, before any ZeRO sharding.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StateBytes {
    /// The working copy of the weights.
    pub weights: f64,
    /// The gradients.
    pub grads: f64,
    /// Optimizer state: the fp32 master copy (when weights are not fp32) and the moments.
    pub optimizer: f64,
}

impl StateBytes {
    /// All three.
    pub fn total(&self) -> f64 {
        self.weights + self.grads + self.optimizer
    }
}

/// Bytes per parameter for weights in `weights`, gradients in `grads`, and `optimizer`. Mixed-precision Adam
/// (`Bf16`/`Fp16` weights and grads) gives ZeRO's 2 + 2 + 12 = 16 bytes; Megatron's default fp32 main grads
/// give 2 + 4 + 12 = 18. An `Fp8` weight is counted as 1 byte (choose `Bf16` if a 16-bit copy is also kept).
pub fn state_bytes(weights: Precision, grads: Precision, optimizer: Optimizer) -> StateBytes {
    let master = if weights == Precision::Fp32 { 0 } else { 4 };
    let moments = match optimizer {
        Optimizer::Adam => 8,
        Optimizer::SgdMomentum => 4,
        Optimizer::Sgd => 0,
    };
    StateBytes {
        weights: weights.bytes() as f64,
        grads: grads.bytes() as f64,
        optimizer: (master + moments) as f64,
    }
}

/// Model-state bytes on one GPU for `params` parameters replicated across `shard_ranks` data-parallel ranks:
/// ZeRO-1 shards the optimizer state, ZeRO-2 also the gradients, ZeRO-3 also the weights. Returns
/// (weights, grads, optimizer) in bytes.
pub fn model_state_bytes(
    params: f64,
    state: StateBytes,
    zero_stage: u8,
    shard_ranks: u64,
) -> (f64, f64, f64) {
    let n = shard_ranks.max(1) as f64;
    let shard = |stage: u8| if zero_stage >= stage { n } else { 1.0 };
    (params * state.weights / shard(3), params * state.grads / shard(2), params * state.optimizer / shard(1))
}

/// A parallel training plan, as far as memory is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryPlan {
    /// Tensor-parallel size.
    pub tp: u64,
    /// Pipeline-parallel size (stages).
    pub pp: u64,
    /// Data-parallel size.
    pub dp: u64,
    /// Context-parallel size (splits every sequence).
    pub cp: u64,
    /// Expert-parallel size (splits the routed experts; must divide `dp · cp`).
    pub ep: u64,
    /// ZeRO stage 0-3 over the data-parallel (× context-parallel) ranks.
    pub zero_stage: u8,
    /// Sequences per micro-batch.
    pub micro_batch: u64,
    /// Tokens per sequence.
    pub seq_len: u64,
    /// Micro-batches per step per pipeline; under 1F1B stage `i` holds `min(pp − i, this)` in flight.
    pub n_micro_batches: u64,
    /// Sequence parallelism (with TP).
    pub sequence_parallel: bool,
    /// Activation recomputation.
    pub recompute: Recompute,
    /// Weight and activation precision.
    pub precision: Precision,
    /// Gradient precision.
    pub grad_precision: Precision,
    /// Optimizer.
    pub optimizer: Optimizer,
    /// FlashAttention: no `s × s` score matrix is stored.
    pub flash_attention: bool,
    /// Dropout (1-byte masks); off in most current LLM training.
    pub dropout: bool,
}

impl Default for MemoryPlan {
    fn default() -> Self {
        MemoryPlan {
            tp: 1,
            pp: 1,
            dp: 1,
            cp: 1,
            ep: 1,
            zero_stage: 0,
            micro_batch: 1,
            seq_len: 2048,
            n_micro_batches: 1,
            sequence_parallel: false,
            recompute: Recompute::None,
            precision: Precision::Bf16,
            grad_precision: Precision::Bf16,
            optimizer: Optimizer::Adam,
            flash_attention: true,
            dropout: false,
        }
    }
}

impl MemoryPlan {
    /// Checks the plan against the model: every size at least 1, TP divides heads and KV heads, PP at most the
    /// layers, CP divides the sequence, EP divides the experts and `dp · cp`, ZeRO stage 0-3.
    pub fn validate(&self, spec: &ModelSpec) -> Result<()> {
        for (field, value) in [
            ("tp", self.tp),
            ("pp", self.pp),
            ("dp", self.dp),
            ("cp", self.cp),
            ("ep", self.ep),
            ("micro_batch", self.micro_batch),
            ("seq_len", self.seq_len),
            ("micro_batches", self.n_micro_batches),
        ] {
            if value == 0 {
                return Err(bad(field, value, "must be at least 1".to_owned()));
            }
        }
        if !spec.n_heads.is_multiple_of(self.tp) {
            return Err(bad("tp", self.tp, format!("must divide heads ({})", spec.n_heads)));
        }
        let kv_heads = spec.attn_dims().kv_heads;
        if !kv_heads.is_multiple_of(self.tp) {
            return Err(bad("tp", self.tp, format!("must divide kv_heads ({kv_heads})")));
        }
        if self.pp > spec.n_layers {
            return Err(bad("pp", self.pp, format!("must not exceed layers ({})", spec.n_layers)));
        }
        if !self.seq_len.is_multiple_of(self.cp) {
            return Err(bad("cp", self.cp, format!("must divide seq_len ({})", self.seq_len)));
        }
        if self.zero_stage > 3 {
            return Err(bad("zero_stage", u64::from(self.zero_stage), "must be 0, 1, 2 or 3".to_owned()));
        }
        if self.ep > 1 {
            let n_experts = spec.moe.map_or(0, |m| m.n_experts);
            if !n_experts.is_multiple_of(self.ep) || n_experts == 0 {
                return Err(bad("ep", self.ep, format!("must divide the routed experts ({n_experts})")));
            }
            if !(self.dp * self.cp).is_multiple_of(self.ep) {
                return Err(bad("ep", self.ep, format!("must divide dp × cp ({})", self.dp * self.cp)));
            }
        }
        Ok(())
    }

    /// Layers on pipeline stage `stage`: an even split, the remainder going to the first stages.
    pub fn stage_layers(&self, n_layers: u64, stage: u64) -> std::ops::Range<u64> {
        let pp = self.pp.max(1);
        let (base, extra) = (n_layers / pp, n_layers % pp);
        let start = stage * base + stage.min(extra);
        let len = base + u64::from(stage < extra);
        start..start + len
    }

    fn activation_config(&self) -> ActivationConfig {
        ActivationConfig {
            micro_batch: self.micro_batch,
            seq_len: self.seq_len,
            tp: self.tp,
            cp: self.cp,
            sequence_parallel: self.sequence_parallel,
            recompute: self.recompute,
            flash_attention: self.flash_attention,
            dropout: self.dropout,
            element_bytes: self.precision.bytes().max(2),
        }
    }
}

/// Memory of the most loaded GPU under a plan, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemoryBreakdown {
    /// The pipeline stage (0-based) this breakdown is for: the one with the largest total.
    pub stage: u64,
    /// Layers on that stage.
    pub layers: u64,
    /// Parameters held on that GPU before ZeRO sharding.
    pub params: f64,
    /// Weights.
    pub weights_bytes: f64,
    /// Gradients.
    pub grads_bytes: f64,
    /// Optimizer state.
    pub optimizer_bytes: f64,
    /// Activations kept for the backward pass (all micro-batches in flight).
    pub activations_bytes: f64,
    /// Micro-batches in flight on that stage.
    pub micro_batches_in_flight: u64,
    /// Everything above.
    pub total_bytes: f64,
}

/// Memory per GPU of `spec` under `plan`: every pipeline stage is costed and the largest returned.
///
/// Not counted: framework workspace, communication buffers, ZeRO-3's gathered-layer buffers, fragmentation.
pub fn memory_per_gpu(spec: &ModelSpec, plan: &MemoryPlan) -> Result<MemoryBreakdown> {
    spec.validate()?;
    plan.validate(spec)?;
    let state = state_bytes(plan.precision, plan.grad_precision, plan.optimizer);
    let act = plan.activation_config();
    let mut best: Option<MemoryBreakdown> = None;
    for stage in 0..plan.pp {
        let layers = plan.stage_layers(spec.n_layers, stage);
        let (mut dense, mut experts) = (0.0, 0.0);
        let mut per_microbatch = 0.0;
        for layer in layers.clone() {
            let (d, e) = layer_params_per_gpu(spec, layer, plan.tp, plan.ep);
            dense += d;
            experts += e;
            per_microbatch += activation_bytes_per_layer(spec, &act, layer);
        }
        let first = stage == 0;
        let last = stage + 1 == plan.pp;
        if first {
            dense += embedding_params(spec) as f64 / plan.tp as f64;
        }
        if last {
            dense += spec.norm.params(spec.hidden) as f64;
            // A tied head still needs the embedding matrix on the last stage when it differs from the first.
            let head = if spec.tied_embeddings && !first {
                embedding_params(spec)
            } else {
                output_head_params(spec)
            };
            dense += head as f64 / plan.tp as f64;
        }
        let dense_shards = plan.dp * plan.cp;
        let (w1, g1, o1) = model_state_bytes(dense, state, plan.zero_stage, dense_shards);
        let (w2, g2, o2) = model_state_bytes(experts, state, plan.zero_stage, dense_shards / plan.ep);
        let in_flight = (plan.pp - stage).min(plan.n_micro_batches);
        let extra = stage_extra_activation_bytes(spec, &act, first, last, in_flight, layers.start);
        let activations = in_flight as f64 * per_microbatch + extra;
        let (weights, grads, optimizer) = (w1 + w2, g1 + g2, o1 + o2);
        let total = weights + grads + optimizer + activations;
        let candidate = MemoryBreakdown {
            stage,
            layers: layers.end - layers.start,
            params: dense + experts,
            weights_bytes: weights,
            grads_bytes: grads,
            optimizer_bytes: optimizer,
            activations_bytes: activations,
            micro_batches_in_flight: in_flight,
            total_bytes: total,
        };
        if best.is_none_or(|b| candidate.total_bytes > b.total_bytes) {
            best = Some(candidate);
        }
    }
    best.ok_or_else(|| bad("pp", plan.pp, "must be at least 1".to_owned()))
}

/// KV-cache bytes per token of context for the whole model: `2 · L · kv_heads · head_dim · element_bytes`, or
/// for MLA `L · (kv_lora_rank + qk_rope_head_dim) · element_bytes` (the latent and the shared rotary key).
pub fn kv_cache_bytes_per_token(spec: &ModelSpec, element_bytes: u64) -> u64 {
    let per_layer = match &spec.mla {
        Some(mla) => mla.kv_lora_rank + mla.qk_rope_head_dim,
        None => 2 * spec.n_kv_heads * spec.head_dim,
    };
    spec.n_layers * per_layer * element_bytes
}

fn bad(field: &'static str, value: u64, expected: String) -> ModelError {
    ModelError::BadPlan { field, value, expected }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
