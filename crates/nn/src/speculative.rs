//! Speculative decoding (Leviathan, Kalman & Matias, ICML 2023, arXiv:2211.17192, Algorithm 1).
//!
//! A cheap draft model proposes γ tokens, each drawn from its distribution `q`; the target model scores all of
//! them in one forward pass, giving its distribution `p` at every drafted position. Drafted token `x` is accepted
//! with probability `min(1, p(x) / q(x))`; at the first rejection a token is drawn from `norm(max(0, p − q))` and
//! the remaining drafts are discarded; if all γ are accepted, one more token is drawn from `p` (the bonus). The
//! output is distributed exactly as sampling from `p` token by token. `p` and `q` are the distributions after
//! the sampling controls ([`crate::sampling::distribution`]), so temperature, top-k, top-p, min-p and the
//! repetition penalty apply to both and the guarantee covers them.
//!
//! The draft is only used while the whole round fits in the context: past it, learned positions shift with
//! every token, and the target samples alone, one token at a time.

use serde::{Deserialize, Serialize};

use crate::attention::KvCache;
use crate::error::{Result, bad_config};
use crate::generate::{check_tokens, logits_rows, next_logits};
use crate::gpt::Gpt;
use crate::sampling::{Sampler, SamplingConfig, distribution};

/// How to decode speculatively.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpeculativeConfig {
    /// Tokens to add after the prompt.
    pub max_new_tokens: usize,
    /// Tokens the draft proposes per round (γ).
    pub draft_tokens: usize,
    /// The sampling controls, applied to both models.
    pub sampling: SamplingConfig,
}

/// What speculative decoding did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SpeculativeStats {
    /// Rounds that used the draft.
    pub rounds: usize,
    /// Tokens the draft proposed.
    pub drafted: usize,
    /// Drafted tokens the target accepted.
    pub accepted: usize,
    /// Drafted tokens the target rejected (at most one per round; the drafts after it are never evaluated).
    pub rejected: usize,
    /// Target forward passes (one per round, plus one per token sampled without the draft).
    pub target_calls: usize,
    /// Draft forward passes.
    pub draft_calls: usize,
}

impl SpeculativeStats {
    /// Accepted / evaluated drafts: the empirical α of the paper (the probability that a draft the target looks
    /// at is accepted), 0 if nothing was evaluated.
    pub fn acceptance_rate(&self) -> f64 {
        let evaluated = self.accepted + self.rejected;
        if evaluated == 0 { 0.0 } else { self.accepted as f64 / evaluated as f64 }
    }

    /// Tokens emitted per target forward pass.
    pub fn tokens_per_target_call(&self, n_tokens: usize) -> f64 {
        if self.target_calls == 0 { 0.0 } else { n_tokens as f64 / self.target_calls as f64 }
    }
}

/// Leviathan et al. eq. (1): expected tokens per target call, `(1 − α^{γ+1}) / (1 − α)`.
pub fn expected_tokens_per_call(alpha: f64, gamma: usize) -> f64 {
    if (1.0 - alpha).abs() < 1e-12 {
        (gamma + 1) as f64
    } else {
        (1.0 - alpha.powi(gamma as i32 + 1)) / (1.0 - alpha)
    }
}

/// Leviathan et al. Theorem 3.8: expected wall-time speedup, `(1 − α^{γ+1}) / ((1 − α)(γ c + 1))`, where `c` is
/// the cost of a draft step relative to a target step.
pub fn expected_speedup(alpha: f64, gamma: usize, cost_ratio: f64) -> f64 {
    expected_tokens_per_call(alpha, gamma) / (gamma as f64 * cost_ratio + 1.0)
}

/// One verification round on given distributions: `q[i]` is the draft's distribution that `drafted[i]` was drawn
/// from, `p[i]` the target's at the same position, and `p[γ]` the target's after all drafts. Returns the tokens
/// to emit: the accepted drafts, then a correction (after a rejection) or the bonus token.
pub fn verify(p: &[Vec<f32>], q: &[Vec<f32>], drafted: &[u32], sampler: &mut Sampler) -> Vec<u32> {
    let mut out = Vec::with_capacity(drafted.len() + 1);
    for (i, &x) in drafted.iter().enumerate() {
        let (px, qx) = (p[i][x as usize] as f64, q[i][x as usize] as f64);
        if qx > 0.0 && sampler.uniform() < (px / qx).min(1.0) {
            out.push(x);
            continue;
        }
        let residual: Vec<f32> = p[i].iter().zip(&q[i]).map(|(a, b)| (a - b).max(0.0)).collect();
        // With p = q exactly the residual is empty; any draw from p is then correct (this only happens on ties).
        let from = if residual.iter().any(|&r| r > 0.0) { &residual } else { &p[i] };
        out.push(sampler.draw(from));
        return out;
    }
    out.push(sampler.draw(&p[drafted.len()]));
    out
}

/// Generates after `prompt` with `target`, proposing tokens with `draft` (which must share the vocabulary).
pub fn generate_speculative(
    target: &Gpt,
    draft: &Gpt,
    prompt: &[u32],
    config: &SpeculativeConfig,
) -> Result<(Vec<u32>, SpeculativeStats)> {
    check_tokens(target, prompt)?;
    if draft.config().vocab_size != target.config().vocab_size {
        let expected = format!("the target's vocabulary size ({})", target.config().vocab_size);
        return Err(bad_config("draft vocab", draft.config().vocab_size, expected));
    }
    if config.draft_tokens == 0 {
        return Err(bad_config("draft_tokens", 0, "must be at least 1"));
    }
    let mut sampler = Sampler::new(config.sampling)?;
    let mut target_cache = KvCache::new(target.config().n_layers);
    let mut draft_cache = KvCache::new(draft.config().n_layers);
    let context = target.config().context.min(draft.config().context);
    let mut seq = prompt.to_vec();
    let end = prompt.len() + config.max_new_tokens;
    let mut stats = SpeculativeStats::default();
    while seq.len() < end {
        let gamma = config.draft_tokens.min(end - seq.len() - 1).min(context.saturating_sub(seq.len() + 1));
        if gamma == 0 {
            let (logits, _) = next_logits(target, Some(&mut target_cache), &seq)?;
            stats.target_calls += 1;
            let token = sampler.sample(&logits, &seq);
            seq.push(token);
            continue;
        }
        let mut drafted = Vec::with_capacity(gamma);
        let mut q = Vec::with_capacity(gamma);
        let mut draft_seq = seq.clone();
        for _ in 0..gamma {
            let (logits, _) = next_logits(draft, Some(&mut draft_cache), &draft_seq)?;
            stats.draft_calls += 1;
            let qi = distribution(&logits, &draft_seq, &config.sampling);
            let x = sampler.draw(&qi);
            draft_seq.push(x);
            drafted.push(x);
            q.push(qi);
        }
        let (rows, _) = logits_rows(target, Some(&mut target_cache), &draft_seq, gamma + 1)?;
        stats.target_calls += 1;
        let p: Vec<Vec<f32>> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| distribution(r, &draft_seq[..seq.len() + i], &config.sampling))
            .collect();
        let emitted = verify(&p, &q, &drafted, &mut sampler);
        stats.rounds += 1;
        stats.drafted += gamma;
        // Every round emits its accepted drafts plus one token (a correction or the bonus).
        stats.accepted += emitted.len() - 1;
        stats.rejected += usize::from(emitted.len() <= gamma);
        seq.extend_from_slice(&emitted);
    }
    seq.truncate(end);
    Ok((seq[prompt.len()..].to_vec(), stats))
}

#[cfg(test)]
#[path = "speculative_tests.rs"]
mod tests;
