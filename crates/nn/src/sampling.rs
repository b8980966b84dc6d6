//! Turning logits into the next token.
//!
//! The order is vLLM's V1 sampler (`vllm/v1/sample/sampler.py`, see shared/reference/core.md §4.1):
//!
//! 1. **repetition penalty** over every token already in the sequence (prompt and generated), each once:
//!    a positive logit is divided by the penalty, a negative one multiplied (Keskar et al. 2019, CTRL; the same
//!    formula in vLLM's `apply_penalties` and Hugging Face's `RepetitionPenaltyLogitsProcessor`);
//! 2. **temperature**: 0 means greedy (the arg-max of the penalised logits, lowest id on ties); otherwise the
//!    logits are divided by it and turned into probabilities with a softmax;
//! 3. **min-p**: drop tokens whose probability is below `min_p` × the largest probability;
//! 4. **top-k**: keep the tokens whose probability is at least the k-th largest (ties with it are kept);
//! 5. **top-p**: in descending order of probability (lower id first on ties), keep a token while the mass of
//!    the tokens before it is below `p` (the smallest prefix reaching `p`; the most likely token always stays);
//! 6. renormalise and draw, with a seeded ChaCha8 generator.
//!
//! Each filter sees the distribution the previous ones left, renormalised.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, bad_config};

/// The sampling controls. The default samples from the model's own distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SamplingConfig {
    /// Divides the logits; 0 = greedy.
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose mass reaches p (1 = off).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` × the most likely one (0 = off).
    pub min_p: f32,
    /// Penalise tokens already in the sequence (1 = off).
    pub repetition_penalty: f32,
    /// Seed of the sampling RNG.
    pub seed: u64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            seed: 1337,
        }
    }
}

/// A seeded sampler: the controls and the RNG state.
#[derive(Debug, Clone)]
pub struct Sampler {
    /// The controls.
    pub config: SamplingConfig,
    rng: ChaCha8Rng,
}

impl SamplingConfig {
    /// Checks the ranges: temperature ≥ 0, top-p in (0, 1], min-p in [0, 1], repetition penalty > 0.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(bad_config(
                "temperature",
                self.temperature,
                "must be a finite number ≥ 0 (0 = greedy)",
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(bad_config("top_p", self.top_p, "must be in (0, 1] (1 = off)"));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(bad_config("min_p", self.min_p, "must be in [0, 1] (0 = off)"));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(bad_config("repetition_penalty", self.repetition_penalty, "must be > 0 (1 = off)"));
        }
        Ok(())
    }
}

impl Sampler {
    /// A sampler seeded with `config.seed`.
    pub fn new(config: SamplingConfig) -> Result<Sampler> {
        config.validate()?;
        Ok(Sampler { config, rng: ChaCha8Rng::seed_from_u64(config.seed) })
    }

    /// Draws the next token from `logits`, given the tokens so far.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let probs = distribution(logits, history, &self.config);
        self.draw(&probs)
    }

    /// Draws an index from a normalised distribution (inverse CDF).
    pub fn draw(&mut self, probs: &[f32]) -> u32 {
        draw(probs, self.rng.random::<f64>())
    }

    /// A uniform number in [0, 1) from the sampler's RNG (speculative decoding's acceptance test).
    pub fn uniform(&mut self) -> f64 {
        self.rng.random::<f64>()
    }
}

/// The distribution the next token is drawn from: the pipeline above applied to `logits`. Greedy gives a one-hot.
pub fn distribution(logits: &[f32], history: &[u32], config: &SamplingConfig) -> Vec<f32> {
    let mut logits = logits.to_vec();
    apply_repetition_penalty(&mut logits, history, config.repetition_penalty);
    if config.temperature == 0.0 {
        let best = argmax(&logits);
        return (0..logits.len()).map(|i| if i == best { 1.0 } else { 0.0 }).collect();
    }
    let scaled: Vec<f32> = logits.iter().map(|l| l / config.temperature).collect();
    let mut probs = softmax(&scaled);
    if config.min_p > 0.0 {
        probs = renormalise(&probs, &min_p_keep(&probs, config.min_p));
    }
    if config.top_k > 0 {
        probs = renormalise(&probs, &top_k_keep(&probs, config.top_k));
    }
    if config.top_p < 1.0 {
        probs = renormalise(&probs, &top_p_keep(&probs, config.top_p));
    }
    probs
}

/// Divides positive logits and multiplies negative ones by `penalty`, once per distinct token in `history`.
pub fn apply_repetition_penalty(logits: &mut [f32], history: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = vec![false; logits.len()];
    for &t in history {
        if let Some(s) = seen.get_mut(t as usize).filter(|s| !**s) {
            *s = true;
            let l = &mut logits[t as usize];
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    }
}

/// Which tokens top-k keeps: those at least as likely as the k-th most likely (ties kept).
pub fn top_k_keep(values: &[f32], k: usize) -> Vec<bool> {
    if k == 0 || k >= values.len() {
        return vec![true; values.len()];
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let kth = sorted[k - 1];
    values.iter().map(|&v| v >= kth).collect()
}

/// Which tokens top-p keeps: in descending order (lower id first on ties), each token whose predecessors' mass is
/// below `p`.
pub fn top_p_keep(probs: &[f32], p: f32) -> Vec<bool> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    let mut keep = vec![false; probs.len()];
    let mut mass_before = 0.0f64;
    for i in order {
        if mass_before >= p as f64 {
            break;
        }
        keep[i] = true;
        mass_before += probs[i] as f64;
    }
    keep
}

/// Which tokens min-p keeps: probability at least `min_p` × the largest.
pub fn min_p_keep(probs: &[f32], min_p: f32) -> Vec<bool> {
    let max = probs.iter().copied().fold(0.0f32, f32::max);
    probs.iter().map(|&p| p >= min_p * max).collect()
}

/// Softmax of a vector (max-subtracted, in f64 for the sum).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| ((l - max) as f64).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

/// Index of the largest value, lowest index on ties.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Zeroes what `keep` drops and rescales the rest to sum to one.
fn renormalise(probs: &[f32], keep: &[bool]) -> Vec<f32> {
    let kept: f64 = probs.iter().zip(keep).filter(|(_, k)| **k).map(|(p, _)| *p as f64).sum();
    probs
        .iter()
        .zip(keep)
        .map(|(&p, &k)| if k && kept > 0.0 { (p as f64 / kept) as f32 } else { 0.0 })
        .collect()
}

/// Inverse-CDF draw of an index of `probs` with the uniform number `u` in [0, 1); never returns a zero-mass
/// index.
pub(crate) fn draw(probs: &[f32], u: f64) -> u32 {
    let total: f64 = probs.iter().map(|&p| p as f64).sum();
    let target = u * total;
    let mut acc = 0.0f64;
    let mut last_nonzero = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            acc += p as f64;
            last_nonzero = i;
            if target < acc {
                return i as u32;
            }
        }
    }
    last_nonzero as u32
}

#[cfg(test)]
#[path = "sampling_tests.rs"]
mod tests;
