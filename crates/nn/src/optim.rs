//! AdamW with decoupled weight decay (Loshchilov & Hutter 2019), the update PyTorch's `torch.optim.AdamW` and
//! candle's make, with its state open for checkpoints: the moments of every variable and the step count, so
//! that a resumed run continues exactly where it stopped.

use candle_core::Var;
use candle_core::backprop::GradStore;

use crate::error::{NnError, Result};
use crate::params::Tensors;

/// Hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay (0 for biases and norm weights).
    pub weight_decay: f64,
}

struct Slot {
    name: String,
    var: Var,
    exp_avg: Var,
    exp_avg_sq: Var,
}

/// The optimiser over a set of named variables.
pub struct AdamW {
    params: AdamWParams,
    slots: Vec<Slot>,
    steps: usize,
}

impl std::fmt::Debug for AdamW {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdamW").field("params", &self.params).field("steps", &self.steps).finish()
    }
}

impl AdamW {
    /// Zero moments for every variable.
    pub fn new(vars: Vec<(String, Var)>, params: AdamWParams) -> Result<AdamW> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let zeros = || Var::zeros(var.shape(), var.dtype(), var.device());
                Ok(Slot { exp_avg: zeros()?, exp_avg_sq: zeros()?, name, var })
            })
            .collect::<Result<_>>()?;
        Ok(AdamW { params, slots, steps: 0 })
    }

    /// Sets the learning rate of the next steps.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// One update from `grads` (variables without a gradient are left alone).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        let AdamWParams { lr, beta1, beta2, eps, weight_decay } = self.params;
        let t = self.steps as i32;
        let (m_scale, v_scale) = (1.0 / (1.0 - beta1.powi(t)), 1.0 / (1.0 - beta2.powi(t)));
        for s in &self.slots {
            let Some(g) = grads.get(&s.var) else { continue };
            let m = ((s.exp_avg.as_tensor() * beta1)? + (g * (1.0 - beta1))?)?;
            let v = ((s.exp_avg_sq.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let update = ((&m * m_scale)? / ((&v * v_scale)?.sqrt()? + eps)?)?;
            let decayed = (s.var.as_tensor() * (1.0 - lr * weight_decay))?;
            s.var.set(&(decayed - (update * lr)?)?)?;
            s.exp_avg.set(&m)?;
            s.exp_avg_sq.set(&v)?;
        }
        Ok(())
    }

    /// The moments (copies), named `exp_avg.<variable>` and `exp_avg_sq.<variable>` (PyTorch's names).
    pub fn state(&self) -> Result<Tensors> {
        let mut out = Tensors::new();
        for s in &self.slots {
            out.insert(format!("exp_avg.{}", s.name), s.exp_avg.as_tensor().copy()?);
            out.insert(format!("exp_avg_sq.{}", s.name), s.exp_avg_sq.as_tensor().copy()?);
        }
        Ok(out)
    }

    /// Restores moments written by [`AdamW::state`] and the step count; every variable's moments must be there
    /// with its shape.
    pub fn load_state(&mut self, state: &Tensors, steps: usize) -> Result<()> {
        for s in &self.slots {
            for (kind, var) in [("exp_avg", &s.exp_avg), ("exp_avg_sq", &s.exp_avg_sq)] {
                let key = format!("{kind}.{}", s.name);
                let t = state
                    .get(&key)
                    .ok_or_else(|| NnError::Checkpoint(format!("optimizer state: tensor {key:?} missing")))?;
                if t.dims() != s.var.dims() {
                    return Err(NnError::Checkpoint(format!(
                        "optimizer state: tensor {key:?} has shape {:?}, expected {:?}",
                        t.dims(),
                        s.var.dims()
                    )));
                }
                var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
            }
        }
        self.steps = steps;
        Ok(())
    }
}
