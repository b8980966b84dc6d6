//! A small GPT that really trains, on candle (CPU by default; the `cuda` feature runs it on a GPU).
//!
//! - [`config`]: the shape ([`config::GptConfig`]), built from or turned into a `model::ModelSpec`, with a
//!   parameter count that agrees exactly with `model::param_counts`.
//! - [`params`]: seeded initialisation, trainable variables, safetensors bytes.
//! - [`gpt`]: the model ([`gpt::Gpt`]): forward with a KV cache, loss, attention weights.
//! - [`attention`]: causal MHA/GQA attention and the [`attention::KvCache`].
//! - [`checkpoint`]: checkpoint files (safetensors weights, tokenizer, `config.json`) as bytes.
//! - [`vocab`]: character-level and BPE vocabularies.
//! - [`data`]: train/validation split and seeded batches.
//! - [`train`]: AdamW with nanoGPT's schedule, gradient clipping, evaluation.
//! - [`sampling`]: repetition penalty, temperature, min-p, top-k, top-p, seeded sampling.
//! - [`generate`]: autoregressive generation with or without the KV cache.
//! - [`speculative`]: speculative decoding with a draft model (exact rejection sampling).
//! - [`batching`]: static and continuous (iteration-level) batching under a KV-cache budget.
//!
//! The crate is pure: it takes text and bytes and returns data. It reads no files and no clock; all randomness
//! is seeded.

pub mod attention;
pub mod batching;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod generate;
pub mod gpt;
mod layers;
mod moe;
pub mod optim;
pub mod params;
pub mod sampling;
pub mod speculative;
pub mod train;
pub mod vocab;

#[cfg(test)]
mod gpt_tests;

pub use error::{NnError, Result};
// The tensor types in this crate's signatures, so that callers need not depend on candle themselves.
pub use candle_core::{DType, Device};

/// The device to run on: the first CUDA GPU when built with the `cuda` feature and one is present, else the CPU.
pub fn default_device() -> Result<Device> {
    Ok(Device::cuda_if_available(0)?)
}
