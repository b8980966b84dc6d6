//! The GPT: embeddings, pre-norm blocks (attention, then a dense or MoE MLP), final norm, output head.

use candle_core::{DType, Device, Tensor};

use crate::attention::{Attention, KvCache};
use crate::config::GptConfig;
use crate::error::{NnError, Result};
use crate::layers::{Linear, Mlp, Norm, Weights, cross_entropy};
use crate::moe::{MoeLayer, zero_scalar};
use crate::params::Tensors;

/// A GPT whose weights are candle tensors. Built from named tensors; when those are the tensors behind trainable
/// variables, optimiser updates show through without rebuilding.
#[derive(Debug, Clone)]
pub struct Gpt {
    config: GptConfig,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: Norm,
    lm_head: Option<Tensor>,
}

/// What [`Gpt::forward_with`] should record besides the logits.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOptions {
    /// Record every layer's attention weights, with the softmax taken at this temperature (1 = the model's own).
    pub record_attention: Option<f64>,
}

/// The result of a forward pass.
#[derive(Debug, Clone)]
pub struct ForwardOutput {
    /// `[batch, t, vocab]` logits.
    pub logits: Tensor,
    /// Mean over MoE layers of the load-balancing loss (0 for a dense model), a scalar.
    pub balance_loss: Tensor,
    /// Per MoE layer, the fraction of routed slots each expert received.
    pub expert_load: Vec<Vec<f32>>,
    /// Per layer, `[batch, heads, t, offset + t]` attention weights (when asked for).
    pub attention: Vec<Tensor>,
}

#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub(crate) ln1: Norm,
    pub(crate) attn: Attention,
    pub(crate) ln2: Norm,
    pub(crate) ffn: Ffn,
}

#[derive(Debug, Clone)]
pub(crate) enum Ffn {
    Dense(Mlp),
    Moe(MoeLayer),
}

impl Gpt {
    /// Builds the model from named tensors (see [`GptConfig::params`] for the names).
    pub fn new(config: &GptConfig, tensors: &Tensors) -> Result<Gpt> {
        config.validate()?;
        let w = Weights { tensors };
        let mut blocks = Vec::with_capacity(config.n_layers);
        for layer in 0..config.n_layers {
            let p = format!("h.{layer}");
            let ffn = match config.moe.filter(|_| config.is_moe_layer(layer)) {
                None => Ffn::Dense(w.mlp(&format!("{p}.mlp"), config.mlp)?),
                Some(moe) => Ffn::Moe(MoeLayer {
                    router: w.linear(&format!("{p}.moe.router"))?,
                    experts: (0..moe.n_experts)
                        .map(|e| w.mlp(&format!("{p}.moe.experts.{e}"), config.mlp))
                        .collect::<Result<_>>()?,
                    shared: (0..moe.n_shared_experts)
                        .map(|s| w.mlp(&format!("{p}.moe.shared.{s}"), config.mlp))
                        .collect::<Result<_>>()?,
                    top_k: moe.top_k,
                }),
            };
            blocks.push(Block {
                ln1: w.norm(&format!("{p}.ln1"), config.norm)?,
                attn: Attention {
                    q: w.linear(&format!("{p}.attn.q"))?,
                    k: w.linear(&format!("{p}.attn.k"))?,
                    v: w.linear(&format!("{p}.attn.v"))?,
                    o: w.linear(&format!("{p}.attn.o"))?,
                    n_heads: config.n_heads,
                    n_kv_heads: config.n_kv_heads,
                    head_dim: config.head_dim,
                },
                ln2: w.norm(&format!("{p}.ln2"), config.norm)?,
                ffn,
            });
        }
        Ok(Gpt {
            config: config.clone(),
            wte: w.get("wte.weight")?,
            wpe: w.get("wpe.weight")?,
            blocks,
            ln_f: w.norm("ln_f", config.norm)?,
            lm_head: if config.tied_embeddings { None } else { Some(w.get("lm_head.weight")?) },
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &GptConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.wte.device()
    }

    /// The weights' dtype.
    pub fn dtype(&self) -> DType {
        self.wte.dtype()
    }

    /// Logits `[batch, t, vocab]` for `tokens` `[batch, t]` (u32), continuing after what `cache` holds.
    pub fn forward(&self, tokens: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        Ok(self.forward_with(tokens, cache, ForwardOptions::default())?.logits)
    }

    /// Like [`Gpt::forward`], also returning the balance loss, expert load and (if asked) attention weights.
    pub fn forward_with(
        &self,
        tokens: &Tensor,
        mut cache: Option<&mut KvCache>,
        options: ForwardOptions,
    ) -> Result<ForwardOutput> {
        let (_, t) = tokens.dims2()?;
        let offset = cache.as_ref().map_or(0, |c| c.len());
        if offset + t > self.config.context {
            return Err(NnError::ContextOverflow { len: offset + t, context: self.config.context });
        }
        let mut x = self.embed(tokens, offset)?;
        let mut balance = Vec::new();
        let mut expert_load = Vec::new();
        let mut attention = Vec::new();
        for (layer, block) in self.blocks.iter().enumerate() {
            let (q, k, v) = block.attn.project(&block.ln1.forward(&x)?)?;
            let (k, v) = match cache.as_deref_mut() {
                Some(c) => c.append(layer, &k, &v)?,
                None => (k, v),
            };
            let (a, record) = block.attn.attend(&q, &k, &v, offset, options.record_attention)?;
            attention.extend(record.weights);
            x = (x + block.attn.o.forward(&a)?)?;
            x = (&x + block.ffn_forward(&x, &mut balance, &mut expert_load)?)?;
        }
        let logits = self.head(&x)?;
        let balance_loss = mean_or_zero(&balance, &logits)?;
        Ok(ForwardOutput { logits, balance_loss, expert_load, attention })
    }

    /// Mean next-token cross-entropy of `inputs` → `targets` (both `[batch, t]`, u32), and the balance loss.
    pub fn loss(&self, inputs: &Tensor, targets: &Tensor) -> Result<(Tensor, Tensor)> {
        let out = self.forward_with(inputs, None, ForwardOptions::default())?;
        let (b, t, v) = out.logits.dims3()?;
        let ce = cross_entropy(&out.logits.reshape((b * t, v))?, &targets.reshape(b * t)?)?;
        Ok((ce, out.balance_loss))
    }

    /// Token plus position embedding of `tokens` `[b, t]` starting at position `offset`.
    pub(crate) fn embed(&self, tokens: &Tensor, offset: usize) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let tok = self.wte.index_select(&tokens.flatten_all()?, 0)?.reshape((b, t, self.config.d_model))?;
        Ok(tok.broadcast_add(&self.wpe.narrow(0, offset, t)?)?)
    }

    /// Embeds tokens at individual positions: `tokens[i]` at `positions[i]`, as a `[n, 1, d]` batch.
    pub(crate) fn embed_at(&self, tokens: &[u32], positions: &[u32]) -> Result<Tensor> {
        let dev = self.device();
        let n = tokens.len();
        let tok = self.wte.index_select(&Tensor::from_slice(tokens, n, dev)?, 0)?;
        let pos = self.wpe.index_select(&Tensor::from_slice(positions, n, dev)?, 0)?;
        Ok((tok + pos)?.unsqueeze(1)?)
    }

    /// Final norm and output head: `[b, t, d]` → `[b, t, vocab]`.
    pub(crate) fn head(&self, x: &Tensor) -> Result<Tensor> {
        let head = Linear { weight: self.lm_head.clone().unwrap_or_else(|| self.wte.clone()), bias: None };
        head.forward(&self.ln_f.forward(x)?)
    }

    pub(crate) fn blocks(&self) -> &[Block] {
        &self.blocks
    }
}

impl Block {
    /// The MLP half of the block, `ffn(ln2(x))`, recording MoE statistics.
    pub(crate) fn ffn_forward(
        &self,
        x: &Tensor,
        balance: &mut Vec<Tensor>,
        expert_load: &mut Vec<Vec<f32>>,
    ) -> Result<Tensor> {
        let h = self.ln2.forward(x)?;
        match &self.ffn {
            Ffn::Dense(mlp) => mlp.forward(&h),
            Ffn::Moe(moe) => {
                let out = moe.forward(&h)?;
                balance.push(out.balance_loss);
                expert_load.push(out.load);
                Ok(out.output)
            }
        }
    }
}

/// A `[1, t]` u32 tensor of `tokens` on `device` (one sequence, as `Gpt::forward` takes it).
pub fn token_row(tokens: &[u32], device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(tokens, (1, tokens.len()), device)?)
}

fn mean_or_zero(values: &[Tensor], like: &Tensor) -> Result<Tensor> {
    if values.is_empty() {
        return zero_scalar(like);
    }
    let refs: Vec<&Tensor> = values.iter().collect();
    Ok(Tensor::stack(&refs, 0)?.mean_all()?)
}
