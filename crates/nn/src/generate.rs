//! Autoregressive generation, with or without the KV cache.
//!
//! The model always conditions on the last `context` tokens (nanoGPT's `generate` crops the same way). Within the
//! context the cache feeds only the new token; past it, learned absolute positions shift with every token, so
//! the window is recomputed in full (the cache cannot help there) and the results stay the same as without it.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::attention::KvCache;
use crate::error::{NnError, Result};
use crate::gpt::Gpt;
use crate::sampling::{Sampler, SamplingConfig};

/// How to generate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GenerateConfig {
    /// Tokens to add after the prompt.
    pub max_new_tokens: usize,
    /// Reuse keys and values of earlier positions instead of recomputing them.
    pub use_kv_cache: bool,
    /// The sampling controls.
    pub sampling: SamplingConfig,
}

/// What generation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The new tokens (without the prompt).
    pub tokens: Vec<u32>,
    /// Forward passes run.
    pub forward_calls: usize,
    /// Token positions computed by those passes (prompt and recomputation included).
    pub positions_computed: usize,
}

/// Generates up to `config.max_new_tokens` tokens after `prompt`.
pub fn generate(model: &Gpt, prompt: &[u32], config: &GenerateConfig) -> Result<Generation> {
    generate_with(model, prompt, config, |_| {})
}

/// Like [`generate`], calling `on_token` with each new token as it is chosen.
pub fn generate_with(
    model: &Gpt,
    prompt: &[u32],
    config: &GenerateConfig,
    mut on_token: impl FnMut(u32),
) -> Result<Generation> {
    check_tokens(model, prompt)?;
    let mut sampler = Sampler::new(config.sampling)?;
    let mut cache = config.use_kv_cache.then(|| KvCache::new(model.config().n_layers));
    let mut seq = prompt.to_vec();
    let mut out = Generation { tokens: Vec::new(), forward_calls: 0, positions_computed: 0 };
    for _ in 0..config.max_new_tokens {
        let (logits, computed) = next_logits(model, cache.as_mut(), &seq)?;
        out.forward_calls += 1;
        out.positions_computed += computed;
        let token = sampler.sample(&logits, &seq);
        seq.push(token);
        out.tokens.push(token);
        on_token(token);
    }
    Ok(out)
}

/// Logits for the token after `seq`, conditioning on its last `context` tokens, and the number of positions
/// computed. With a cache, `seq` must extend what the cache holds; the cache is trimmed to at most
/// `seq.len() - 1` and only the rest is fed.
pub fn next_logits(model: &Gpt, cache: Option<&mut KvCache>, seq: &[u32]) -> Result<(Vec<f32>, usize)> {
    let (rows, computed) = logits_rows(model, cache, seq, 1)?;
    Ok((rows.into_iter().next().expect("one row"), computed))
}

/// Logits after each of the last `n_rows` prefixes of `seq` (row i conditions on `seq[..len - n_rows + 1 + i]`).
/// Also returns the positions computed. Needs `seq.len() <= context` when `n_rows > 1`.
pub(crate) fn logits_rows(
    model: &Gpt,
    cache: Option<&mut KvCache>,
    seq: &[u32],
    n_rows: usize,
) -> Result<(Vec<Vec<f32>>, usize)> {
    let context = model.config().context;
    if seq.is_empty() || n_rows == 0 || n_rows > seq.len() {
        return Err(NnError::NotEnoughData {
            what: "sequence to continue",
            got: seq.len(),
            need: n_rows.max(1),
        });
    }
    if n_rows > 1 && seq.len() > context {
        return Err(NnError::ContextOverflow { len: seq.len(), context });
    }
    let (feed, start) = match cache {
        Some(cache) if seq.len() <= context => {
            cache.truncate(cache.len().min(seq.len() - n_rows))?;
            let start = cache.len();
            (model.forward(&row(model, &seq[start..])?, Some(cache))?, start)
        }
        Some(cache) => {
            cache.truncate(0)?;
            let start = seq.len() - context;
            (model.forward(&row(model, &seq[start..])?, None)?, start)
        }
        None => {
            let start = seq.len().saturating_sub(context);
            (model.forward(&row(model, &seq[start..])?, None)?, start)
        }
    };
    let t = seq.len() - start;
    let last = feed.narrow(1, t - n_rows, n_rows)?.squeeze(0)?.to_dtype(DType::F32)?;
    Ok((last.to_vec2::<f32>()?, t))
}

fn row(model: &Gpt, tokens: &[u32]) -> Result<Tensor> {
    Ok(Tensor::from_slice(tokens, (1, tokens.len()), model.device())?)
}

/// Fails on a token id outside the model's vocabulary or an empty prompt.
pub(crate) fn check_tokens(model: &Gpt, tokens: &[u32]) -> Result<()> {
    if tokens.is_empty() {
        return Err(NnError::NotEnoughData { what: "prompt", got: 0, need: 1 });
    }
    let vocab_size = model.config().vocab_size;
    match tokens.iter().find(|&&t| t as usize >= vocab_size) {
        Some(&id) => Err(NnError::BadToken { id, vocab_size }),
        None => Ok(()),
    }
}
