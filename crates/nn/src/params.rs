//! Creating parameters: seeded initialisation (candle's CPU RNG cannot be seeded, so values come from ChaCha8),
//! trainable variables, and safetensors bytes in and out.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{GptConfig, Init};
use crate::error::{NnError, Result};

/// Named parameter tensors, in name order.
pub type Tensors = BTreeMap<String, Tensor>;

/// Named trainable variables, in name order.
pub type Vars = BTreeMap<String, Var>;

/// Fresh parameters for `config`, initialised as nanoGPT does, from `seed`. Same seed, same values.
pub fn init_params(config: &GptConfig, seed: u64, dtype: DType, device: &Device) -> Result<Tensors> {
    config.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Tensors::new();
    for info in config.params() {
        let n: usize = info.shape.iter().product();
        let values: Vec<f64> = match info.init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Normal { std } => (0..n).map(|_| std * standard_normal(&mut rng)).collect(),
        };
        let t = Tensor::from_vec(values, info.shape.as_slice(), device)?.to_dtype(dtype)?;
        out.insert(info.name, t);
    }
    Ok(out)
}

/// Wraps tensors as trainable variables (copies them).
pub fn to_vars(tensors: &Tensors) -> Result<Vars> {
    tensors.iter().map(|(k, t)| Ok((k.clone(), Var::from_tensor(t)?))).collect()
}

/// The tensors behind variables (shared storage: optimiser updates show through).
pub fn var_tensors(vars: &Vars) -> Tensors {
    vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect()
}

/// Serialises parameters as safetensors bytes.
pub fn to_safetensors(tensors: &Tensors) -> Result<Vec<u8>> {
    safetensors::tensor::serialize(tensors.iter().map(|(k, t)| (k.as_str(), t)), None)
        .map_err(|e| NnError::Checkpoint(format!("serialising safetensors: {e}")))
}

/// Reads safetensors bytes as named tensors, whatever they hold.
pub fn load_safetensors(bytes: &[u8], device: &Device) -> Result<Tensors> {
    Ok(candle_core::safetensors::load_buffer(bytes, device)?.into_iter().collect())
}

/// Reads safetensors bytes and checks that they hold exactly `config`'s parameters with the right shapes.
pub fn from_safetensors(bytes: &[u8], config: &GptConfig, device: &Device) -> Result<Tensors> {
    let loaded: Tensors = candle_core::safetensors::load_buffer(bytes, device)?.into_iter().collect();
    let expected = config.params();
    for info in &expected {
        let t = loaded.get(&info.name).ok_or_else(|| {
            NnError::Checkpoint(format!("tensor {:?} missing from the weights file", info.name))
        })?;
        if t.dims() != info.shape.as_slice() {
            return Err(NnError::Checkpoint(format!(
                "tensor {:?} has shape {:?}, expected {:?} from the config",
                info.name,
                t.dims(),
                info.shape
            )));
        }
    }
    if loaded.len() != expected.len() {
        let extra: Vec<&String> = loaded.keys().filter(|k| !expected.iter().any(|p| &p.name == *k)).collect();
        return Err(NnError::Checkpoint(format!("unexpected tensors {extra:?} in the weights file")));
    }
    Ok(loaded)
}

/// Total number of scalars in `tensors`.
pub fn count(tensors: &Tensors) -> u64 {
    tensors.values().map(|t| t.elem_count() as u64).sum()
}

/// A standard normal draw (Box-Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_seeded_and_round_trips_through_safetensors() {
        let config = GptConfig::nanogpt_char_cpu(65);
        let a = init_params(&config, 7, DType::F32, &Device::Cpu).unwrap();
        let b = init_params(&config, 7, DType::F32, &Device::Cpu).unwrap();
        let c = init_params(&config, 8, DType::F32, &Device::Cpu).unwrap();
        let bytes = to_safetensors(&a).unwrap();
        assert_eq!(bytes, to_safetensors(&b).unwrap());
        assert_ne!(bytes, to_safetensors(&c).unwrap());
        assert_eq!(count(&a), config.n_params());
        let back = from_safetensors(&bytes, &config, &Device::Cpu).unwrap();
        let w = |t: &Tensors| t["wte.weight"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(w(&a), w(&back));
        let std = {
            let v = w(&a);
            (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt()
        };
        assert!((std - 0.02).abs() < 0.001, "{std}");
    }

    #[test]
    fn wrong_shapes_are_rejected() {
        let config = GptConfig::nanogpt_char_cpu(65);
        let bytes = to_safetensors(&init_params(&config, 1, DType::F32, &Device::Cpu).unwrap()).unwrap();
        let other = GptConfig::nanogpt_char_cpu(66);
        let err = from_safetensors(&bytes, &other, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("wte.weight") && err.contains("[66, 128]"), "{err}");
    }
}
