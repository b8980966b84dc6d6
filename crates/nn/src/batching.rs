//! Serving many requests: static batching against continuous (iteration-level) batching, under a KV-cache budget.
//!
//! Both policies run the same engine. A decode iteration advances every sequence in the batch by one token with
//! *selective batching* (Orca, Yu et al., OSDI '22, §4.2): the dense parts of each block (QKV, output projection,
//! MLP, head) run as one `[batch, d]` matrix product, and attention runs per sequence against its own KV cache,
//! since the sequences have different lengths. A request reserves `prompt + max_new_tokens` cache slots when it
//! is admitted, and admission waits while the reservations would exceed the budget (no preemption).
//!
//! - **Static**: take the next requests that fit, prefill them, decode until the *longest* finishes; a finished
//!   sequence keeps its slot and computes padding steps (as a fixed-shape batch does), then the next batch starts.
//! - **Continuous**: after every iteration, finished sequences leave and waiting requests that fit are prefilled
//!   and join (Orca's iteration-level scheduling).
//!
//! Each request samples with its own RNG (seeded by the sampling seed plus its id), so both policies produce the
//! same completions; only the work and time differ.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::attention::KvCache;
use crate::error::{NnError, Result, bad_config};
use crate::generate::{check_tokens, next_logits};
use crate::gpt::Gpt;
use crate::sampling::{Sampler, SamplingConfig};

/// A generation request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Caller's id (also offsets the request's sampling seed).
    pub id: u64,
    /// The prompt's tokens.
    pub prompt: Vec<u32>,
    /// Tokens to generate.
    pub max_new_tokens: usize,
}

/// Static or continuous batching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Fixed batches that run until their longest request finishes.
    Static,
    /// Requests join and leave the batch at every iteration.
    Continuous,
}

/// How to serve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BatchingConfig {
    /// The scheduling policy.
    pub policy: Policy,
    /// Most sequences in a batch.
    pub max_batch: usize,
    /// KV-cache budget, in token slots (over all sequences).
    pub kv_budget_tokens: usize,
    /// Sampling controls (each request seeds its own RNG with `seed + id`).
    pub sampling: SamplingConfig,
}

/// One finished request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The request's id.
    pub id: u64,
    /// The generated tokens.
    pub tokens: Vec<u32>,
}

/// The work a policy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchingStats {
    /// Decode iterations (batched forward passes).
    pub iterations: usize,
    /// Prefill forward passes (one per request).
    pub prefills: usize,
    /// Tokens generated for requests.
    pub generated_tokens: usize,
    /// Sequence slots computed in decode iterations (useful and padding).
    pub slot_steps: usize,
    /// Slots computed for sequences that had already finished (static batching's waste).
    pub padding_steps: usize,
    /// Largest sum of reservations at any time, in token slots.
    pub peak_reserved_tokens: usize,
}

struct Running {
    id: u64,
    seq: Vec<u32>,
    generated: Vec<u32>,
    target: usize,
    reserved: usize,
    cache: KvCache,
    sampler: Sampler,
}

/// Serves `requests` in order under `config`; completions come back in finishing order.
pub fn serve(
    model: &Gpt,
    requests: &[Request],
    config: &BatchingConfig,
) -> Result<(Vec<Completion>, BatchingStats)> {
    if config.max_batch == 0 {
        return Err(bad_config("max_batch", 0, "must be at least 1"));
    }
    let context = model.config().context;
    for r in requests {
        check_tokens(model, &r.prompt)?;
        let need = r.prompt.len() + r.max_new_tokens;
        if need > context {
            return Err(NnError::ContextOverflow { len: need, context });
        }
        if need > config.kv_budget_tokens {
            let expected = format!("at least request {}'s prompt + max_new_tokens ({need})", r.id);
            return Err(bad_config("kv_budget_tokens", config.kv_budget_tokens, expected));
        }
    }
    let mut stats = BatchingStats::default();
    let mut done = Vec::with_capacity(requests.len());
    let mut queue = requests.iter().peekable();
    let mut running: Vec<Running> = Vec::new();
    let mut reserved = 0;
    loop {
        let may_admit = config.policy == Policy::Continuous || running.is_empty();
        while may_admit && running.len() < config.max_batch {
            let Some(&r) = queue.peek() else { break };
            let need = r.prompt.len() + r.max_new_tokens;
            if reserved + need > config.kv_budget_tokens {
                break;
            }
            queue.next();
            reserved += need;
            stats.peak_reserved_tokens = stats.peak_reserved_tokens.max(reserved);
            running.push(prefill(model, r, config, need, &mut stats)?);
        }
        if config.policy == Policy::Continuous {
            // A request may finish at prefill (one new token); it leaves before the next iteration.
            retire(&mut running, &mut reserved, &mut done);
        }
        if running.is_empty() {
            if queue.peek().is_none() {
                break;
            }
            continue;
        }
        let active: Vec<bool> = running.iter().map(|s| s.generated.len() < s.target).collect();
        if active.iter().any(|&a| a) {
            let logits = decode_iteration(model, &mut running, &active)?;
            stats.iterations += 1;
            stats.slot_steps += running.len();
            for ((s, row), &a) in running.iter_mut().zip(logits).zip(&active) {
                if a {
                    let token = s.sampler.sample(&row, &s.seq);
                    s.seq.push(token);
                    s.generated.push(token);
                    stats.generated_tokens += 1;
                } else {
                    stats.padding_steps += 1;
                }
            }
        }
        let batch_done = running.iter().all(|s| s.generated.len() >= s.target);
        if config.policy == Policy::Continuous || batch_done {
            retire(&mut running, &mut reserved, &mut done);
        }
    }
    Ok((done, stats))
}

/// Moves finished sequences out of the batch, releasing their reservations.
fn retire(running: &mut Vec<Running>, reserved: &mut usize, done: &mut Vec<Completion>) {
    let (finished, still): (Vec<Running>, Vec<Running>) =
        std::mem::take(running).into_iter().partition(|s| s.generated.len() >= s.target);
    *running = still;
    for s in finished {
        *reserved -= s.reserved;
        done.push(Completion { id: s.id, tokens: s.generated });
    }
}

/// Runs a request's prompt through the model and samples its first token.
fn prefill(
    model: &Gpt,
    r: &Request,
    config: &BatchingConfig,
    need: usize,
    stats: &mut BatchingStats,
) -> Result<Running> {
    let sampling = SamplingConfig { seed: config.sampling.seed.wrapping_add(r.id), ..config.sampling };
    let mut s = Running {
        id: r.id,
        seq: r.prompt.clone(),
        generated: Vec::new(),
        target: r.max_new_tokens,
        reserved: need,
        cache: KvCache::new(model.config().n_layers),
        sampler: Sampler::new(sampling)?,
    };
    if s.target > 0 {
        let (logits, _) = next_logits(model, Some(&mut s.cache), &s.seq)?;
        let token = s.sampler.sample(&logits, &s.seq);
        s.seq.push(token);
        s.generated.push(token);
        stats.generated_tokens += 1;
    }
    stats.prefills += 1;
    Ok(s)
}

/// One decode step for every sequence of the batch (each feeds its last token); `active[i]` false marks a
/// padding row, computed but not stored in its cache. Returns each row's logits.
fn decode_iteration(model: &Gpt, batch: &mut [Running], active: &[bool]) -> Result<Vec<Vec<f32>>> {
    let tokens: Vec<u32> = batch.iter().map(|s| *s.seq.last().expect("prefilled")).collect();
    let positions: Vec<u32> = batch.iter().map(|s| s.cache.len() as u32).collect();
    let mut x = model.embed_at(&tokens, &positions)?;
    for (layer, block) in model.blocks().iter().enumerate() {
        let (q, k, v) = block.attn.project(&block.ln1.forward(&x)?)?;
        let mut outs = Vec::with_capacity(batch.len());
        for (i, s) in batch.iter_mut().enumerate() {
            let (qi, ki, vi) = (q.narrow(0, i, 1)?, k.narrow(0, i, 1)?, v.narrow(0, i, 1)?);
            let offset = s.cache.len();
            let (k_all, v_all) = if active[i] {
                s.cache.append(layer, &ki, &vi)?
            } else {
                s.cache.peek_appended(layer, &ki, &vi)?
            };
            outs.push(block.attn.attend(&qi, &k_all, &v_all, offset, None)?.0);
        }
        let a = Tensor::cat(&outs, 0)?;
        x = (x + block.attn.o.forward(&a)?)?;
        x = (&x + block.ffn_forward(&x, &mut Vec::new(), &mut Vec::new())?)?;
    }
    Ok(model.head(&x)?.squeeze(1)?.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::generate::{GenerateConfig, generate};
    use crate::gpt_tests::tiny_config;
    use crate::params::init_params;

    fn requests(n: usize, seed: u64) -> Vec<Request> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n as u64)
            .map(|id| Request {
                id,
                prompt: (0..rng.random_range(1..5)).map(|_| rng.random_range(0..8)).collect(),
                max_new_tokens: rng.random_range(1..11),
            })
            .collect()
    }

    #[test]
    fn both_policies_give_the_same_completions_as_plain_generation() {
        let config = tiny_config(8);
        let model = Gpt::new(&config, &init_params(&config, 4, DType::F32, &Device::Cpu).unwrap()).unwrap();
        let reqs = requests(12, 7);
        let sampling = SamplingConfig { temperature: 0.8, seed: 100, ..Default::default() };
        let mut results = Vec::new();
        for policy in [Policy::Static, Policy::Continuous] {
            let bc = BatchingConfig { policy, max_batch: 4, kv_budget_tokens: 40, sampling };
            let (mut done, stats) = serve(&model, &reqs, &bc).unwrap();
            assert!(stats.peak_reserved_tokens <= 40);
            assert_eq!(stats.generated_tokens, reqs.iter().map(|r| r.max_new_tokens).sum::<usize>());
            done.sort_by_key(|c| c.id);
            results.push((done, stats));
        }
        for r in &reqs {
            let gc = GenerateConfig {
                max_new_tokens: r.max_new_tokens,
                use_kv_cache: true,
                sampling: SamplingConfig { seed: 100 + r.id, ..sampling },
            };
            let plain = generate(&model, &r.prompt, &gc).unwrap().tokens;
            for (done, _) in &results {
                assert_eq!(done[r.id as usize].tokens, plain, "request {}", r.id);
            }
        }
        let (stat, cont) = (results[0].1, results[1].1);
        assert!(stat.padding_steps > 0 && cont.padding_steps == 0, "{stat:?} {cont:?}");
        assert!(cont.iterations < stat.iterations, "{stat:?} {cont:?}");
    }

    #[test]
    fn requests_that_cannot_fit_are_rejected() {
        let config = tiny_config(8);
        let model = Gpt::new(&config, &init_params(&config, 4, DType::F32, &Device::Cpu).unwrap()).unwrap();
        let r = vec![Request { id: 3, prompt: vec![1, 2], max_new_tokens: 10 }];
        let bc = BatchingConfig {
            policy: Policy::Continuous,
            max_batch: 2,
            kv_budget_tokens: 8,
            sampling: SamplingConfig::default(),
        };
        let err = serve(&model, &r, &bc).unwrap_err().to_string();
        assert_eq!(err, "kv_budget_tokens = 8: at least request 3's prompt + max_new_tokens (12)");
    }
}
