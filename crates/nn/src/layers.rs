//! The building blocks of a block, as plain functions over tensors: linear maps, norms, softmax, MLPs.
//! Everything here is written with differentiable candle primitives, so `backward` works through all of it.

use std::collections::BTreeMap;

use candle_core::{D, DType, Tensor};
use model::{MlpKind, NormKind};

use crate::error::{NnError, Result};

/// Epsilon of LayerNorm and RMSNorm (PyTorch's LayerNorm default).
pub(crate) const NORM_EPS: f64 = 1e-5;

/// A linear map `y = x Wᵀ + b` with `W` stored `[out, in]`.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    pub(crate) weight: Tensor,
    pub(crate) bias: Option<Tensor>,
}

/// A LayerNorm or RMSNorm over the last dimension.
#[derive(Debug, Clone)]
pub(crate) struct Norm {
    pub(crate) weight: Tensor,
    pub(crate) bias: Option<Tensor>,
    pub(crate) kind: NormKind,
}

/// A dense MLP: `down(gelu(up x))` or `down(silu(gate x) · up x)`.
#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    pub(crate) gate: Option<Linear>,
    pub(crate) up: Linear,
    pub(crate) down: Linear,
}

/// Looks parameters up by name, failing with the missing name.
pub(crate) struct Weights<'a> {
    pub(crate) tensors: &'a BTreeMap<String, Tensor>,
}

impl Weights<'_> {
    pub(crate) fn get(&self, name: &str) -> Result<Tensor> {
        self.tensors.get(name).cloned().ok_or_else(|| {
            NnError::Checkpoint(format!("tensor {name:?} is missing (expected by the config)"))
        })
    }

    pub(crate) fn maybe(&self, name: &str) -> Option<Tensor> {
        self.tensors.get(name).cloned()
    }

    pub(crate) fn linear(&self, prefix: &str) -> Result<Linear> {
        Ok(Linear {
            weight: self.get(&format!("{prefix}.weight"))?,
            bias: self.maybe(&format!("{prefix}.bias")),
        })
    }

    pub(crate) fn norm(&self, prefix: &str, kind: NormKind) -> Result<Norm> {
        Ok(Norm {
            weight: self.get(&format!("{prefix}.weight"))?,
            bias: self.maybe(&format!("{prefix}.bias")),
            kind,
        })
    }

    pub(crate) fn mlp(&self, prefix: &str, kind: MlpKind) -> Result<Mlp> {
        let gate = match kind {
            MlpKind::Plain => None,
            MlpKind::Gated => Some(self.linear(&format!("{prefix}.gate"))?),
        };
        Ok(Mlp {
            gate,
            up: self.linear(&format!("{prefix}.up"))?,
            down: self.linear(&format!("{prefix}.down"))?,
        })
    }
}

impl Linear {
    /// Applies the map to `x` of shape `[..., in]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let (n_in, n_out) = (dims[dims.len() - 1], self.weight.dim(0)?);
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let mut y = x.reshape((rows, n_in))?.matmul(&self.weight.t()?)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        let mut out_dims = dims;
        *out_dims.last_mut().expect("rank >= 1") = n_out;
        Ok(y.reshape(out_dims)?)
    }
}

impl Norm {
    /// Normalises `x` over its last dimension.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let centred = match self.kind {
            NormKind::LayerNorm => x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?,
            NormKind::RmsNorm => x.clone(),
        };
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + NORM_EPS)?.sqrt()?)?;
        let mut y = normed.broadcast_mul(&self.weight)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        Ok(y)
    }
}

impl Mlp {
    /// Applies the MLP to `x` of shape `[..., d]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let hidden = match &self.gate {
            // nanoGPT's nn.GELU() is the exact (erf) GELU.
            None => self.up.forward(x)?.gelu_erf()?,
            Some(gate) => (candle_nn::ops::silu(&gate.forward(x)?)? * self.up.forward(x)?)?,
        };
        self.down.forward(&hidden)
    }
}

/// Softmax over the last dimension, from differentiable primitives (candle's fused softmax has no backward).
pub(crate) fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// Mean cross-entropy of `logits` `[n, vocab]` against `targets` `[n]` (u32).
pub(crate) fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::loss::cross_entropy(logits, targets)?)
}

/// A tensor's values as f32, whatever its dtype (for host-side decisions and reports).
pub(crate) fn to_f32_vec(x: &Tensor) -> Result<Vec<f32>> {
    Ok(x.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn layer_norm_matches_the_definition() {
        let x = Tensor::new(&[[1.0f64, 2.0, 3.0, 6.0]], &Device::Cpu).unwrap();
        let norm = Norm {
            weight: Tensor::new(&[1.0f64, 1.0, 2.0, 1.0], &Device::Cpu).unwrap(),
            bias: Some(Tensor::new(&[0.0f64, 0.5, 0.0, 0.0], &Device::Cpu).unwrap()),
            kind: NormKind::LayerNorm,
        };
        let y = norm.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        // mean 3, population variance (4 + 1 + 0 + 9) / 4 = 3.5
        let s = (3.5f64 + NORM_EPS).sqrt();
        let expected = [-2.0 / s, -1.0 / s + 0.5, 0.0, 3.0 / s];
        for (a, b) in y.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{y:?} vs {expected:?}");
        }
    }

    #[test]
    fn softmax_rows_sum_to_one_and_ignore_minus_infinity() {
        let x = Tensor::new(&[[0.0f32, f32::NEG_INFINITY, 1.0]], &Device::Cpu).unwrap();
        let p = to_f32_vec(&softmax_last(&x).unwrap()).unwrap();
        assert_eq!(p[1], 0.0);
        assert!((p[0] + p[2] - 1.0).abs() < 1e-6);
        assert!((p[2] / p[0] - std::f32::consts::E).abs() < 1e-4);
    }
}
