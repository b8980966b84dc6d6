//! Model specs, presets, Hugging Face import, exact parameter counts, FLOPs, memory per GPU and scaling laws.
//!
//! Everything here is closed-form arithmetic on a [`ModelSpec`]: no IO, no clock, no randomness. Units are in the
//! names: `_bytes`, `_flops` (floating-point operations, a multiply-add counts 2), `_s`, `_per_s`.
//!
//! - [`spec`]: the shape ([`ModelSpec`]) and its validation.
//! - [`presets`]: named published models with their sources.
//! - [`hf`]: Hugging Face `config.json` import.
//! - [`params`]: exact parameter counts.

pub mod error;
pub mod hf;
pub mod params;
pub mod presets;
pub mod spec;

pub use error::ModelError;
pub use hf::from_hf_config;
pub use params::{LayerParams, ParamCounts, layer_params, param_counts, rule_of_thumb_params};
pub use presets::{PresetInfo, preset, presets};
pub use spec::{
    AttnDims, Biases, MlaSpec, MlpKind, ModelSpec, MoeSpec, NormKind, Positions, derive_head_dim,
};
