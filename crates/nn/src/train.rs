//! Training: AdamW with nanoGPT's learning-rate schedule, weight-decay groups and gradient clipping.
//!
//! The defaults are nanoGPT's CPU character-level run (`karpathy/nanoGPT` README "quick start" and
//! `config/train_shakespeare_char.py`): lr 1e-3 with 100 warmup steps and cosine decay to 1e-4 over 2,000
//! steps, β₂ = 0.99, weight decay 0.1 on matrices only, gradient clipping at 1.0, batch 12, 20 evaluation
//! batches every 250 steps.

use candle_core::{DType, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::GptConfig;
use crate::data::{Split, sample_batch};
use crate::error::{Result, bad_config};
use crate::gpt::Gpt;
use crate::optim::{AdamW, AdamWParams};
use crate::params::{Tensors, Vars, to_vars, var_tensors};

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Optimiser steps.
    pub iters: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning rate at the end of the cosine decay.
    pub min_lr: f64,
    /// Linear warmup steps.
    pub warmup_iters: usize,
    /// Steps over which the cosine decays to `min_lr`.
    pub lr_decay_iters: usize,
    /// AdamW β₁.
    pub beta1: f64,
    /// AdamW β₂.
    pub beta2: f64,
    /// Decoupled weight decay, applied to matrices and embeddings only.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0 = no clipping).
    pub grad_clip: f64,
    /// Evaluate every this-many steps (and after the last).
    pub eval_interval: usize,
    /// Batches per loss estimate.
    pub eval_iters: usize,
    /// Coefficient of the MoE load-balancing loss (Switch Transformer's α).
    pub balance_loss_coef: f64,
    /// Seed of the initial weights and of batch sampling.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            iters: 2000,
            batch_size: 12,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_iters: 100,
            lr_decay_iters: 2000,
            beta1: 0.9,
            beta2: 0.99,
            weight_decay: 0.1,
            grad_clip: 1.0,
            eval_interval: 250,
            eval_iters: 20,
            balance_loss_coef: 0.01,
            seed: 1337,
        }
    }
}

/// What one optimiser step did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// 0-based step index.
    pub step: usize,
    /// Cross-entropy of the step's batch, before the update.
    pub loss: f32,
    /// MoE load-balancing loss (0 when dense).
    pub balance_loss: f32,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
}

/// A loss estimate on both splits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalStats {
    /// Steps taken when it was measured.
    pub step: usize,
    /// Mean cross-entropy over `eval_iters` training batches.
    pub train_loss: f32,
    /// Mean cross-entropy over `eval_iters` validation batches.
    pub val_loss: f32,
}

/// Reported while training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrainEvent {
    /// A step finished.
    Step(StepStats),
    /// A loss estimate finished.
    Eval(EvalStats),
}

/// Everything a run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainHistory {
    /// Every step.
    pub steps: Vec<StepStats>,
    /// Every evaluation.
    pub evals: Vec<EvalStats>,
}

/// A model being trained: its variables, optimisers and data RNG.
pub struct TrainState {
    /// The model, whose weights are the variables' tensors.
    pub model: Gpt,
    /// The trainable variables by name.
    pub vars: Vars,
    /// Steps taken.
    pub step: usize,
    decay: AdamW,
    no_decay: AdamW,
    rng: ChaCha8Rng,
}

impl std::fmt::Debug for TrainState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainState").field("config", self.model.config()).field("step", &self.step).finish()
    }
}

/// nanoGPT's `get_lr`: linear warmup, cosine decay to `min_lr`, then constant.
pub fn lr_at(config: &TrainConfig, step: usize) -> f64 {
    if step < config.warmup_iters {
        return config.lr * (step + 1) as f64 / (config.warmup_iters + 1) as f64;
    }
    if step > config.lr_decay_iters {
        return config.min_lr;
    }
    let span = config.lr_decay_iters.saturating_sub(config.warmup_iters).max(1) as f64;
    let ratio = (step - config.warmup_iters) as f64 / span;
    let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
    config.min_lr + coeff * (config.lr - config.min_lr)
}

/// Where a run stopped, beyond its weights and optimizer moments: what [`resume`] needs to go on exactly as
/// if it had not stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// Steps taken.
    pub step: usize,
    /// Optimizer steps taken (equal to `step`; kept apart so that a mismatch is caught).
    pub adam_steps: usize,
    /// Position of the batch sampler's ChaCha8 stream, in 32-bit words (a decimal string in JSON: it is a u128).
    #[serde(with = "u128_string")]
    pub rng_word_pos: u128,
}

mod u128_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &u128, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u128, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|_| serde::de::Error::custom(format!("{text:?}: expected a decimal u128")))
    }
}

/// Starts training from `tensors` (fresh from `params::init_params`, or a checkpoint's).
pub fn start(gpt: &GptConfig, config: &TrainConfig, tensors: &Tensors) -> Result<TrainState> {
    if config.batch_size == 0 {
        return Err(bad_config("batch", 0, "must be at least 1"));
    }
    let vars = to_vars(tensors)?;
    let model = Gpt::new(gpt, &var_tensors(&vars))?;
    let adam = |wd| AdamWParams {
        lr: config.lr,
        beta1: config.beta1,
        beta2: config.beta2,
        eps: 1e-8,
        weight_decay: wd,
    };
    // nanoGPT's configure_optimizers: tensors of rank ≥ 2 decay, biases and norm weights do not.
    let (matrices, vectors): (Vec<_>, Vec<_>) =
        vars.iter().map(|(k, v)| (k.clone(), v.clone())).partition(|(_, v)| v.rank() >= 2);
    Ok(TrainState {
        model,
        decay: AdamW::new(matrices, adam(config.weight_decay))?,
        no_decay: AdamW::new(vectors, adam(0.0))?,
        vars,
        step: 0,
        rng: ChaCha8Rng::seed_from_u64(config.seed),
    })
}

/// Picks a run up where [`TrainState::resume_point`] and [`TrainState::optimizer_state`] left it: the same
/// weights, moments, step and batch stream, so that it continues bit for bit as the uninterrupted run would.
pub fn resume(
    gpt: &GptConfig,
    config: &TrainConfig,
    tensors: &Tensors,
    optimizer: &Tensors,
    at: ResumePoint,
) -> Result<TrainState> {
    if at.adam_steps != at.step {
        return Err(crate::NnError::Checkpoint(format!(
            "resume point: {} optimizer steps for {} training steps (they must agree)",
            at.adam_steps, at.step
        )));
    }
    let mut state = start(gpt, config, tensors)?;
    state.decay.load_state(optimizer, at.adam_steps)?;
    state.no_decay.load_state(optimizer, at.adam_steps)?;
    let expected = 2 * state.vars.len();
    if optimizer.len() != expected {
        return Err(crate::NnError::Checkpoint(format!(
            "optimizer state: {} tensors, expected {expected} (two per variable)",
            optimizer.len()
        )));
    }
    state.step = at.step;
    state.rng.set_word_pos(at.rng_word_pos);
    Ok(state)
}

impl TrainState {
    /// The optimizer moments of every variable (copies).
    pub fn optimizer_state(&self) -> Result<Tensors> {
        let mut all = self.decay.state()?;
        all.extend(self.no_decay.state()?);
        Ok(all)
    }

    /// Where the run is, for [`resume`].
    pub fn resume_point(&self) -> ResumePoint {
        ResumePoint { step: self.step, adam_steps: self.decay.steps(), rng_word_pos: self.rng.get_word_pos() }
    }
}

/// One optimiser step on a random batch of `data`.
pub fn step(state: &mut TrainState, config: &TrainConfig, data: &[u32]) -> Result<StepStats> {
    let context = state.model.config().context;
    let (x, y) = sample_batch(data, config.batch_size, context, &mut state.rng, state.model.device())?;
    let (ce, balance) = state.model.loss(&x, &y)?;
    let total = (&ce + (&balance * config.balance_loss_coef)?)?;
    let mut grads = total.backward()?;
    let mut sum_sq = 0f64;
    for var in state.vars.values() {
        if let Some(g) = grads.get(var) {
            sum_sq += g.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        }
    }
    let grad_norm = sum_sq.sqrt();
    if config.grad_clip > 0.0 && grad_norm > config.grad_clip {
        // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6).
        let scale = config.grad_clip / (grad_norm + 1e-6);
        for var in state.vars.values() {
            if let Some(g) = grads.get(var) {
                let scaled = (g * scale)?;
                grads.insert(var, scaled);
            }
        }
    }
    let lr = lr_at(config, state.step);
    state.decay.set_learning_rate(lr);
    state.no_decay.set_learning_rate(lr);
    state.decay.step(&grads)?;
    state.no_decay.step(&grads)?;
    let stats = StepStats {
        step: state.step,
        loss: scalar(&ce)?,
        balance_loss: scalar(&balance)?,
        lr,
        grad_norm: grad_norm as f32,
    };
    state.step += 1;
    Ok(stats)
}

/// Mean cross-entropy of `model` over `iters` random batches of `data` (nanoGPT's `estimate_loss`).
pub fn estimate_loss(model: &Gpt, data: &[u32], batch_size: usize, iters: usize, seed: u64) -> Result<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut total = 0.0;
    for _ in 0..iters.max(1) {
        let (x, y) = sample_batch(data, batch_size, model.config().context, &mut rng, model.device())?;
        total += scalar(&model.loss(&x, &y)?.0)?;
    }
    Ok(total / iters.max(1) as f32)
}

/// Evaluates both splits (the estimate's batches are seeded by the step, so they differ between evaluations).
pub fn evaluate(state: &TrainState, config: &TrainConfig, data: &Split) -> Result<EvalStats> {
    let seed = config.seed ^ 0x5eed_0000 ^ state.step as u64;
    let m = &state.model;
    Ok(EvalStats {
        step: state.step,
        train_loss: estimate_loss(m, &data.train, config.batch_size, config.eval_iters, seed)?,
        val_loss: estimate_loss(m, &data.val, config.batch_size, config.eval_iters, seed.wrapping_add(1))?,
    })
}

/// Runs `config.iters` steps from the current state, evaluating every `eval_interval` steps and after the last,
/// reporting each step and evaluation to `on_event` with the state as it is then (to checkpoint it, say).
pub fn train(
    state: &mut TrainState,
    config: &TrainConfig,
    data: &Split,
    mut on_event: impl FnMut(&TrainEvent, &TrainState),
) -> Result<TrainHistory> {
    let context = state.model.config().context;
    for (what, part) in [("training split", &data.train), ("validation split", &data.val)] {
        if part.len() <= context {
            return Err(crate::NnError::NotEnoughData { what, got: part.len(), need: context + 1 });
        }
    }
    let mut history = TrainHistory::default();
    let end = state.step + config.iters;
    loop {
        let at_end = state.step >= end;
        if at_end || (config.eval_interval > 0 && state.step.is_multiple_of(config.eval_interval)) {
            let eval = evaluate(state, config, data)?;
            on_event(&TrainEvent::Eval(eval), state);
            history.evals.push(eval);
        }
        if at_end {
            return Ok(history);
        }
        let stats = step(state, config, &data.train)?;
        on_event(&TrainEvent::Step(stats), state);
        history.steps.push(stats);
    }
}

fn scalar(t: &Tensor) -> Result<f32> {
    Ok(t.to_dtype(DType::F32)?.to_scalar::<f32>()?)
}
