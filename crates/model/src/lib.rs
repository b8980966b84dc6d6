//! Model specs, presets, Hugging Face import, exact parameter counts, FLOPs, memory per GPU and scaling laws.
//!
//! Everything here is closed-form arithmetic on a [`ModelSpec`]: no IO, no clock, no randomness. Units are in the
//! names: `_bytes`, `_flops` (floating-point operations, a multiply-add counts 2), `_s`, `_per_s`.
//!
//! - [`spec`]: the shape ([`ModelSpec`]) and its validation.
//! - [`mod@presets`]: named published models with their sources.
//! - [`hf`]: Hugging Face `config.json` import.
//! - [`params`]: exact parameter counts.
//! - [`flops`]: FLOPs per token and per step (6N, exact, Megatron's formula), decode FLOPs.
//! - [`memory`]: memory per GPU for a parallel plan; [`activations`]: activation bytes per layer; KV cache.
//! - [`work`]: GEMM shapes, attention-core FLOPs and element-wise bytes of one layer, for a step simulator.
//! - [`scaling`]: C = 6ND, the Chinchilla loss fit, compute-optimal sizes, GPU-hours.

pub mod activations;
pub mod error;
pub mod flops;
pub mod hf;
pub mod memory;
pub mod params;
pub mod presets;
pub mod scaling;
pub mod spec;
pub mod work;

pub use activations::{ActivationConfig, activation_bytes_per_layer};
pub use error::ModelError;
pub use flops::{FlopsConfig, FlopsPerToken, decode_flops_per_token, flops_per_token, megatron_step_flops};
pub use hf::from_hf_config;
pub use memory::{
    MemoryBreakdown, MemoryPlan, Optimizer, Precision, Recompute, StateBytes, kv_cache_bytes_per_token,
    memory_per_gpu, model_state_bytes, state_bytes,
};
pub use params::{
    LayerParams, ParamCounts, layer_params, layer_params_per_gpu, param_counts, rule_of_thumb_params,
};
pub use presets::{PresetInfo, preset, presets};
pub use spec::{
    AttnDims, Biases, MlaSpec, MlpKind, ModelSpec, MoeSpec, NormKind, Positions, derive_head_dim,
};
pub use work::{
    AttentionCore, EdgeWork, Elementwise, Gemm, GemmKind, LayerWork, WorkShape, edge_work, layer_work,
};
