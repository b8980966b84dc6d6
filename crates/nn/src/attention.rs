//! Causal self-attention (MHA or GQA) and the KV cache.
//!
//! Queries at positions `offset..offset + t` attend to keys at positions `0..offset + t`, where the first
//! `offset` keys come from the cache. Computing a sequence in one call or token by token through the cache gives
//! the same logits (up to float summation order; a test checks it).

use candle_core::{DType, Tensor};

use crate::error::Result;
use crate::layers::{Linear, softmax_last};

/// Keys and values of every layer for one batch of sequences, all of the same length.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

/// The attention of one layer.
#[derive(Debug, Clone)]
pub(crate) struct Attention {
    pub(crate) q: Linear,
    pub(crate) k: Linear,
    pub(crate) v: Linear,
    pub(crate) o: Linear,
    pub(crate) n_heads: usize,
    pub(crate) n_kv_heads: usize,
    pub(crate) head_dim: usize,
}

/// What a layer's attention gives back besides its output.
#[derive(Debug, Clone, Default)]
pub(crate) struct AttentionRecord {
    /// `[batch, heads, queries, keys]` attention weights, when recording was asked for.
    pub(crate) weights: Option<Tensor>,
}

impl KvCache {
    /// An empty cache for a model of `n_layers` layers.
    pub fn new(n_layers: usize) -> KvCache {
        KvCache { layers: vec![None; n_layers] }
    }

    /// Tokens cached (the position the next token takes).
    pub fn len(&self) -> usize {
        self.layers.iter().flatten().next().map_or(0, |(k, _)| k.dim(2).unwrap_or(0))
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every cached position from `len` on (speculative decoding rolls back rejected drafts this way).
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        for entry in &mut self.layers {
            if let Some((k, v)) = entry {
                if len == 0 {
                    *entry = None;
                } else if k.dim(2)? > len {
                    *entry = Some((k.narrow(2, 0, len)?, v.narrow(2, 0, len)?));
                }
            }
        }
        Ok(())
    }

    /// Bytes the cache holds (keys and values of every layer).
    pub fn size_bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes())
            .sum()
    }

    /// Appends `k`, `v` (`[batch, kv_heads, t, head_dim]`) to layer `layer` and returns everything cached there.
    pub(crate) fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let entry = &mut self.layers[layer];
        let (k_all, v_all) = match entry.take() {
            None => (k.clone(), v.clone()),
            Some((k0, v0)) => (Tensor::cat(&[&k0, k], 2)?, Tensor::cat(&[&v0, v], 2)?),
        };
        *entry = Some((k_all.clone(), v_all.clone()));
        Ok((k_all, v_all))
    }
}

impl KvCache {
    /// Everything cached at layer `layer` followed by `k`, `v`, without storing them (a padded row of a static
    /// batch computes its attention this way).
    pub(crate) fn peek_appended(&self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok(match &self.layers[layer] {
            None => (k.clone(), v.clone()),
            Some((k0, v0)) => (Tensor::cat(&[k0, k], 2)?, Tensor::cat(&[v0, v], 2)?),
        })
    }
}

impl Attention {
    /// Projects `x` `[b, t, d]` to queries `[b, heads, t, hd]` and keys, values `[b, kv_heads, t, hd]`.
    pub(crate) fn project(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = x.dims3()?;
        let split = |lin: &Linear, heads: usize| -> Result<Tensor> {
            Ok(lin.forward(x)?.reshape((b, t, heads, self.head_dim))?.transpose(1, 2)?.contiguous()?)
        };
        Ok((
            split(&self.q, self.n_heads)?,
            split(&self.k, self.n_kv_heads)?,
            split(&self.v, self.n_kv_heads)?,
        ))
    }

    /// Attends queries at positions `offset..offset + t` to all keys `k`, `v` (`[b, kv_heads, offset + t, hd]`),
    /// causally, and returns `[b, t, heads · hd]` before the output projection.
    pub(crate) fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        offset: usize,
        record: Option<f64>,
    ) -> Result<(Tensor, AttentionRecord)> {
        let (b, _, t, hd) = q.dims4()?;
        let (k, v) = (self.repeat_kv(k)?, self.repeat_kv(v)?);
        let scores = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
        let scores =
            if t > 1 { scores.broadcast_add(&causal_mask(t, offset, scores.dtype(), q)?)? } else { scores };
        let weights = softmax_last(&scores)?;
        let record = AttentionRecord {
            weights: match record {
                None => None,
                Some(temp) if (temp - 1.0).abs() < 1e-12 => Some(weights.clone()),
                Some(temp) => Some(softmax_last(&(scores / temp)?)?),
            },
        };
        let out = weights.matmul(&v.contiguous()?)?;
        let out = out.transpose(1, 2)?.reshape((b, t, self.n_heads * hd))?;
        Ok((out, record))
    }

    /// Repeats each key/value head over its group of query heads (GQA); a no-op for MHA.
    fn repeat_kv(&self, x: &Tensor) -> Result<Tensor> {
        let group = self.n_heads / self.n_kv_heads;
        if group == 1 {
            return Ok(x.clone());
        }
        let (b, kv, s, hd) = x.dims4()?;
        Ok(x.unsqueeze(2)?.broadcast_as((b, kv, group, s, hd))?.reshape((b, kv * group, s, hd))?)
    }
}

/// `[t, offset + t]` additive mask: 0 where key position ≤ query position, −∞ after.
fn causal_mask(t: usize, offset: usize, dtype: DType, like: &Tensor) -> Result<Tensor> {
    let s = offset + t;
    let values: Vec<f32> = (0..t)
        .flat_map(|i| (0..s).map(move |j| if j > offset + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(values, (t, s), like.device())?.to_dtype(dtype)?)
}
