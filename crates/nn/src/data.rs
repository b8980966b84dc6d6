//! Training data: the train/validation split and seeded random batches.

use candle_core::{Device, Tensor};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::error::{NnError, Result};

/// Token ids split into a training part and a validation part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The first part, trained on.
    pub train: Vec<u32>,
    /// The last part, held out.
    pub val: Vec<u32>,
}

/// Splits `tokens` as nanoGPT's `prepare.py` does: the first `⌊n · (1 − val_fraction)⌋` tokens train, the rest
/// validate. Tiny Shakespeare at 0.1 gives 1,003,854 / 111,540 characters.
pub fn split(mut tokens: Vec<u32>, val_fraction: f64) -> Split {
    let n_train = (tokens.len() as f64 * (1.0 - val_fraction.clamp(0.0, 1.0))) as usize;
    let val = tokens.split_off(n_train.min(tokens.len()));
    Split { train: tokens, val }
}

/// A batch of `batch` windows of `context` tokens from random offsets of `data`: inputs and the targets one
/// token later, both `[batch, context]` u32 (nanoGPT's `get_batch`).
pub fn sample_batch(
    data: &[u32],
    batch: usize,
    context: usize,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    if data.len() <= context {
        return Err(NnError::NotEnoughData { what: "batch source", got: data.len(), need: context + 1 });
    }
    let mut inputs = Vec::with_capacity(batch * context);
    let mut targets = Vec::with_capacity(batch * context);
    for _ in 0..batch {
        let start = rng.random_range(0..data.len() - context);
        inputs.extend_from_slice(&data[start..start + context]);
        targets.extend_from_slice(&data[start + 1..start + context + 1]);
    }
    Ok((
        Tensor::from_vec(inputs, (batch, context), device)?,
        Tensor::from_vec(targets, (batch, context), device)?,
    ))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn split_matches_nanogpt_sizes() {
        let s = split(vec![0; 1_115_394], 0.1);
        assert_eq!((s.train.len(), s.val.len()), (1_003_854, 111_540));
    }

    #[test]
    fn targets_are_inputs_shifted_by_one() {
        let data: Vec<u32> = (0..100).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (x, y) = sample_batch(&data, 4, 8, &mut rng, &Device::Cpu).unwrap();
        let (x, y) = (x.to_vec2::<u32>().unwrap(), y.to_vec2::<u32>().unwrap());
        for (xr, yr) in x.iter().zip(&y) {
            assert!(xr.windows(2).all(|w| w[1] == w[0] + 1));
            assert_eq!(yr[0], xr[0] + 1);
            assert_eq!(yr[7], xr[7] + 1);
        }
        let err = sample_batch(&data[..8], 1, 8, &mut rng, &Device::Cpu).unwrap_err().to_string();
        assert_eq!(err, "batch source: 8 tokens, expected at least 9");
    }
}
