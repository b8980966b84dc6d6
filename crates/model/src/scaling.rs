//! Compute economics: `C = 6ND`, the Chinchilla loss fit `L(N, D) = E + A/N^α + B/D^β`, compute-optimal
//! sizes (by minimising the fit and by 20 tokens per parameter), GPU-hours, and a training-regime label.
//!
//! The fit constants are data (`data/scaling.toml`, with provenance), not code.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Chinchilla's rule of thumb: about 20 training tokens per parameter (Hoffmann et al. 2022, Table 3;
/// Chinchilla itself: 70B parameters, 1.4T tokens).
pub const CHINCHILLA_TOKENS_PER_PARAM: f64 = 20.0;

const DATA_FILE: &str = "crates/model/data/scaling.toml";
const DATA: &str = include_str!("../data/scaling.toml");

/// Which published loss fit to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitKind {
    /// Hoffmann et al. 2022, Approach 3 (E 1.69, A 406.4, B 410.7, α 0.34, β 0.28).
    Chinchilla,
    /// Besiroglu et al. 2024's re-fit of the same data (low confidence in the constants' transcription).
    EpochRefit,
}

/// A parametric loss fit `L(N, D) = E + A/N^α + B/D^β` (nats per token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossFit {
    /// Irreducible loss.
    #[serde(rename = "E")]
    pub e: f64,
    /// Parameter-term coefficient.
    #[serde(rename = "A")]
    pub a: f64,
    /// Data-term coefficient.
    #[serde(rename = "B")]
    pub b: f64,
    /// Parameter exponent.
    pub alpha: f64,
    /// Data exponent.
    pub beta: f64,
    /// How sure the data file's compiler was of the constants.
    pub confidence: String,
    /// Where the constants come from.
    pub note: String,
}

/// A model size and a token count, and the training FLOPs `6ND` they imply.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    /// Parameters `N`.
    pub params: f64,
    /// Training tokens `D`.
    pub tokens: f64,
    /// Training FLOPs `6ND`.
    pub flops: f64,
}

impl Allocation {
    /// Tokens per parameter `D / N`.
    pub fn tokens_per_param(&self) -> f64 {
        self.tokens / self.params
    }
}

/// Whether a run has fewer or more tokens per parameter than compute-optimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Regime {
    /// Fewer than half of Chinchilla's 20 tokens per parameter: the same compute would reach a lower loss with a
    /// smaller model trained longer.
    UnderTrained,
    /// Within a factor of 2 of 20 tokens per parameter.
    ComputeOptimal,
    /// More than twice 20 tokens per parameter: deliberately small for cheaper inference (Llama 3: ~1875).
    OverTrained,
}

impl Regime {
    /// The label shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Regime::UnderTrained => "under-trained",
            Regime::ComputeOptimal => "compute-optimal",
            Regime::OverTrained => "over-trained",
        }
    }
}

#[derive(Deserialize)]
struct DataFile {
    chinchilla: ChinchillaSection,
}

#[derive(Deserialize)]
struct ChinchillaSection {
    fit: LossFit,
    epoch_refit: LossFit,
}

/// The named loss fit, read from the embedded data file.
pub fn loss_fit(kind: FitKind) -> Result<LossFit> {
    let file: DataFile =
        toml::from_str(DATA).map_err(|e| ModelError::Data { file: DATA_FILE, message: e.to_string() })?;
    Ok(match kind {
        FitKind::Chinchilla => file.chinchilla.fit,
        FitKind::EpochRefit => file.chinchilla.epoch_refit,
    })
}

impl LossFit {
    /// Predicted loss (nats/token) of `params` parameters trained on `tokens` tokens.
    pub fn loss(&self, params: f64, tokens: f64) -> f64 {
        self.e + self.a / params.powf(self.alpha) + self.b / tokens.powf(self.beta)
    }

    /// The `N` and `D` that minimise the fit at `flops = 6ND`: setting dL/dN = 0 along the constraint gives
    /// `N = G·(C/6)^(β/(α+β))` with `G = (αA / βB)^(1/(α+β))` (Hoffmann et al. 2022, Eq. 4).
    pub fn optimal(&self, flops: f64) -> Allocation {
        let g = (self.alpha * self.a / (self.beta * self.b)).powf(1.0 / (self.alpha + self.beta));
        let params = g * (flops / 6.0).powf(self.beta / (self.alpha + self.beta));
        Allocation { params, tokens: flops / (6.0 * params), flops }
    }
}

/// Training FLOPs `C = 6·N·D` (Kaplan et al. 2020 §2.1).
pub fn training_flops(params: f64, tokens: f64) -> f64 {
    6.0 * params * tokens
}

/// The allocation of `flops` with `tokens_per_param` tokens per parameter: `N = sqrt(C / (6r))`, `D = rN`.
pub fn optimal_by_tokens_per_param(flops: f64, tokens_per_param: f64) -> Allocation {
    let params = (flops / (6.0 * tokens_per_param)).sqrt();
    Allocation { params, tokens: tokens_per_param * params, flops }
}

/// GPU-seconds to do `flops` on GPUs of `peak_flops_per_s` at model-FLOPs utilisation `mfu`.
pub fn gpu_seconds(flops: f64, peak_flops_per_s: f64, mfu: f64) -> Result<f64> {
    positive("flops", flops)?;
    positive("peak_flops_per_s", peak_flops_per_s)?;
    if !(mfu > 0.0 && mfu <= 1.0) {
        return Err(ModelError::BadScaling {
            field: "mfu",
            value: mfu,
            expected: "a fraction in (0, 1]".into(),
        });
    }
    Ok(flops / (peak_flops_per_s * mfu))
}

/// The regime of a run with `tokens_per_param` tokens per parameter (a factor-of-2 band around 20).
pub fn regime(tokens_per_param: f64) -> Regime {
    let ratio = tokens_per_param / CHINCHILLA_TOKENS_PER_PARAM;
    if ratio < 0.5 {
        Regime::UnderTrained
    } else if ratio > 2.0 {
        Regime::OverTrained
    } else {
        Regime::ComputeOptimal
    }
}

/// An error unless `value` is finite and positive.
pub fn positive(field: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(ModelError::BadScaling { field, value, expected: "a positive number".into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_file_parses() {
        let fit = loss_fit(FitKind::Chinchilla).unwrap();
        assert_eq!((fit.e, fit.a, fit.b, fit.alpha, fit.beta), (1.69, 406.4, 410.7, 0.34, 0.28));
        assert_eq!(loss_fit(FitKind::EpochRefit).unwrap().confidence, "low");
    }

    #[test]
    fn optimum_is_a_minimum_of_the_fit() {
        let fit = loss_fit(FitKind::Chinchilla).unwrap();
        let c = 5.76e23;
        let best = fit.optimal(c);
        assert!((best.flops - training_flops(best.params, best.tokens)).abs() / c < 1e-12);
        let at = |n: f64| fit.loss(n, c / (6.0 * n));
        assert!(at(best.params) < at(best.params * 1.05));
        assert!(at(best.params) < at(best.params / 1.05));
    }

    #[test]
    fn chinchilla_rule_of_thumb() {
        // Chinchilla: 70B parameters on 1.4T tokens = 5.88e23 FLOPs by 6ND.
        let c = training_flops(70e9, 1.4e12);
        assert!((c - 5.88e23).abs() / c < 1e-12);
        let a = optimal_by_tokens_per_param(c, 20.0);
        assert!((a.params - 70e9).abs() / 70e9 < 1e-9 && (a.tokens - 1.4e12).abs() / 1.4e12 < 1e-9);
        assert_eq!(regime(a.tokens_per_param()), Regime::ComputeOptimal);
        assert_eq!(regime(15e12 / 8e9), Regime::OverTrained);
        assert_eq!(regime(300e9 / 175e9), Regime::UnderTrained);
    }

    #[test]
    fn gpu_hours_and_bad_inputs() {
        // 1e24 FLOPs on 989.4 TFLOP/s at 40%: 1e24 / 3.9576e14 s.
        let s = gpu_seconds(1e24, 989.4e12, 0.4).unwrap();
        assert!((s - 1e24 / (989.4e12 * 0.4)).abs() < 1.0);
        let err = gpu_seconds(1e24, 989.4e12, 1.5).unwrap_err().to_string();
        assert_eq!(err, "mfu = 1.5: expected a fraction in (0, 1]".replace("expected ", ""));
        assert!(positive("params", -1.0).is_err());
    }
}
