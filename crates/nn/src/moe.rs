//! A mixture-of-experts MLP: softmax router, top-k routing, no token dropping, Switch-style load-balancing loss.
//!
//! Routing follows Switch Transformer (Fedus, Zoph & Shazeer, JMLR 2022, §2.1-2.2) for top-1, where the gate
//! is the router probability itself, and Mixtral (`MixtralSparseMoeBlock` in Hugging Face transformers) for
//! top-k > 1, where the k selected probabilities are renormalised to sum to one. Tokens are dispatched to their
//! experts (gathered, run, scattered back with `index_add`), so an expert only computes its own tokens.
//!
//! Load-balancing loss (Switch §2.2, eq. 4-6): `N · Σᵢ fᵢ · Pᵢ`, where `fᵢ` is the fraction of routed slots that
//! went to expert `i` and `Pᵢ` the mean router probability of expert `i`. It is 1 under uniform routing and grows
//! as routing concentrates; the trainer multiplies it by its coefficient (Switch's α = 10⁻²).

use candle_core::{DType, Tensor};

use crate::error::Result;
use crate::layers::{Linear, Mlp, softmax_last, to_f32_vec};

/// One MoE MLP layer.
#[derive(Debug, Clone)]
pub(crate) struct MoeLayer {
    pub(crate) router: Linear,
    pub(crate) experts: Vec<Mlp>,
    pub(crate) shared: Vec<Mlp>,
    pub(crate) top_k: usize,
}

/// What routing did in one forward pass of one layer.
#[derive(Debug, Clone)]
pub(crate) struct MoeOutput {
    /// The layer's output, same shape as its input.
    pub(crate) output: Tensor,
    /// The (uncoefficiented) load-balancing loss, a scalar.
    pub(crate) balance_loss: Tensor,
    /// Fraction of routed slots each expert received.
    pub(crate) load: Vec<f32>,
}

impl MoeLayer {
    /// Routes every token of `x` `[..., d]` to its top-k experts.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<MoeOutput> {
        let dims = x.dims().to_vec();
        let d = dims[dims.len() - 1];
        let n_tokens = x.elem_count() / d;
        let flat = x.reshape((n_tokens, d))?;
        let n_experts = self.experts.len();
        let probs = softmax_last(&self.router.forward(&flat)?)?;
        let host_probs = to_f32_vec(&probs)?;
        let selected = top_k_rows(&host_probs, n_experts, self.top_k);
        let sel = Tensor::from_vec(selected.clone(), (n_tokens, self.top_k), x.device())?;
        let mut gates = probs.gather(&sel, 1)?;
        if self.top_k > 1 {
            gates = gates.broadcast_div(&gates.sum_keepdim(1)?)?;
        }
        let gates = gates.flatten_all()?;
        let mut output = flat.zeros_like()?;
        let mut counts = vec![0usize; n_experts];
        for (e, expert) in self.experts.iter().enumerate() {
            let slots: Vec<u32> =
                (0..selected.len() as u32).filter(|&s| selected[s as usize] == e as u32).collect();
            counts[e] = slots.len();
            if slots.is_empty() {
                continue;
            }
            let tokens: Vec<u32> = slots.iter().map(|&s| s / self.top_k as u32).collect();
            let n = slots.len();
            let token_idx = Tensor::from_vec(tokens, n, x.device())?;
            let slot_idx = Tensor::from_vec(slots, n, x.device())?;
            let y = expert.forward(&flat.index_select(&token_idx, 0)?)?;
            let y = y.broadcast_mul(&gates.index_select(&slot_idx, 0)?.unsqueeze(1)?)?;
            output = output.index_add(&token_idx, &y, 0)?;
        }
        for shared in &self.shared {
            output = (output + shared.forward(&flat)?)?;
        }
        let n_slots = (n_tokens * self.top_k) as f32;
        let load: Vec<f32> = counts.iter().map(|&c| c as f32 / n_slots).collect();
        let f = Tensor::from_vec(load.clone(), n_experts, x.device())?.to_dtype(probs.dtype())?;
        let mean_prob = probs.mean(0)?;
        let balance_loss = ((f * mean_prob)?.sum_all()? * n_experts as f64)?;
        Ok(MoeOutput { output: output.reshape(dims)?, balance_loss, load })
    }
}

/// For each row of a row-major `[rows, n]` matrix, the indices of its `k` largest values, largest first; ties go
/// to the lower index.
pub(crate) fn top_k_rows(values: &[f32], n: usize, k: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(values.len() / n * k);
    for row in values.chunks(n) {
        let mut idx: Vec<u32> = (0..n as u32).collect();
        idx.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
        out.extend_from_slice(&idx[..k]);
    }
    out
}

/// Zero-valued f32 scalar on `like`'s device and dtype (the balance loss of a dense model).
pub(crate) fn zero_scalar(like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::zeros((), DType::F32, like.device())?.to_dtype(like.dtype())?)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn linear(w: Vec<f64>, out: usize, inp: usize) -> Linear {
        Linear { weight: Tensor::from_vec(w, (out, inp), &Device::Cpu).unwrap(), bias: None }
    }

    fn expert(scale: f64) -> Mlp {
        // up = identity·scale (2→2), down = identity: the expert computes gelu(scale·x).
        Mlp {
            gate: None,
            up: linear(vec![scale, 0.0, 0.0, scale], 2, 2),
            down: linear(vec![1.0, 0.0, 0.0, 1.0], 2, 2),
        }
    }

    #[test]
    fn top_k_picks_largest_with_low_index_ties() {
        assert_eq!(top_k_rows(&[0.1, 0.5, 0.5, 0.2, 0.9, 0.0], 3, 2), vec![1, 2, 1, 0]);
    }

    #[test]
    fn uniform_router_gives_balance_loss_one() {
        let layer = MoeLayer {
            router: linear(vec![0.0; 6], 3, 2),
            experts: vec![expert(1.0), expert(2.0), expert(3.0)],
            shared: vec![],
            top_k: 1,
        };
        let x = Tensor::new(&[[1.0f64, -1.0], [0.5, 2.0]], &Device::Cpu).unwrap();
        let out = layer.forward(&x).unwrap();
        let loss = out.balance_loss.to_scalar::<f64>().unwrap();
        assert!((loss - 1.0).abs() < 1e-12, "{loss}");
        // Ties go to expert 0, whose gate is 1/3: output = gelu(x) / 3.
        let y = out.output.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let expected = x.gelu_erf().unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for (a, b) in y.iter().zip(expected) {
            assert!((a - b / 3.0).abs() < 1e-12);
        }
        assert_eq!(out.load, vec![1.0, 0.0, 0.0]);
    }

    #[test]
    fn concentrated_routing_raises_balance_loss() {
        // Router strongly prefers expert 2 for every token.
        let layer = MoeLayer {
            router: linear(vec![0.0, 0.0, 0.0, 0.0, 5.0, 5.0], 3, 2),
            experts: vec![expert(1.0), expert(2.0), expert(3.0)],
            shared: vec![],
            top_k: 2,
        };
        let x = Tensor::new(&[[1.0f64, 1.0], [2.0, 0.5]], &Device::Cpu).unwrap();
        let out = layer.forward(&x).unwrap();
        assert!(out.balance_loss.to_scalar::<f64>().unwrap() > 1.3);
        assert_eq!(out.load, vec![0.5, 0.0, 0.5]);
    }
}
