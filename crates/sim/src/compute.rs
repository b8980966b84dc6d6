//! How long a unit of compute work takes on a GPU: a roofline with size-dependent GEMM efficiency.
//!
//! The figures live in `data/compute.toml` with their provenance; see that file for the model.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::SimError;

/// Efficiency figures for one GPU model.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct GpuEfficiency {
    /// Large-GEMM plateau as a fraction of the dense peak.
    pub gemm_max_efficiency: f64,
    /// FLOPs of one GEMM at which it reaches half its plateau efficiency.
    pub gemm_half_flops: f64,
    /// Fused attention kernels' fraction of the dense peak.
    pub attention_efficiency: f64,
    /// Fraction of HBM bandwidth memory-bound kernels reach.
    pub memory_efficiency: f64,
    /// FP8 GEMM efficiency relative to the BF16 one (0 where the GPU has no FP8).
    pub fp8_efficiency_ratio: f64,
}

/// How a kernel stack changes the memory-bound and attention costs, relative to fused kernels.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct KernelFactors {
    /// Multiplier on memory-bound traffic (unfused norms, activations and residuals move data several times).
    pub elementwise_traffic_factor: f64,
    /// Multiplier on the attention kernel's efficiency.
    pub attention_efficiency_factor: f64,
}

#[derive(Debug, Deserialize)]
struct ComputeFile {
    gpu: BTreeMap<String, GpuEfficiency>,
    kernels: BTreeMap<String, KernelFactors>,
}

/// The compute model of one GPU, ready to cost work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ComputeModel {
    /// Efficiency figures.
    pub efficiency: GpuEfficiency,
    /// Dense 16-bit tensor peak, FLOP/s.
    pub peak_flops_per_s: f64,
    /// Dense FP8 tensor peak, FLOP/s (0 when absent).
    pub peak_fp8_flops_per_s: f64,
    /// HBM bandwidth, bytes/s.
    pub hbm_bytes_per_s: f64,
    /// Factors of the plan's kernel stack.
    pub kernels: KernelFactors,
}

/// The embedded calibration file.
pub const COMPUTE_TOML: &str = include_str!("../data/compute.toml");

impl ComputeModel {
    /// The model for a catalog GPU, using the embedded calibration (or `calibration` TOML text if given).
    pub fn for_gpu(
        gpu: &topology::GpuSpec,
        kernels: schedule::KernelStack,
        calibration: Option<&str>,
    ) -> Result<ComputeModel, SimError> {
        let text = calibration.unwrap_or(COMPUTE_TOML);
        let file: ComputeFile =
            toml::from_str(text).map_err(|e| SimError::Calibration(format!("compute calibration: {e}")))?;
        let efficiency = *file.gpu.get(&gpu.slug).ok_or_else(|| {
            SimError::Calibration(format!(
                "no compute calibration for GPU {:?}; calibrated GPUs: {}",
                gpu.slug,
                file.gpu.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let kernels = *file.kernels.get(kernels.name()).ok_or_else(|| {
            SimError::Calibration(format!("no [kernels.{}] table in the compute calibration", kernels.name()))
        })?;
        let peak = gpu.bf16_flops_per_s.unwrap_or(gpu.fp16_flops_per_s);
        Ok(ComputeModel {
            efficiency,
            peak_flops_per_s: peak,
            peak_fp8_flops_per_s: gpu.fp8_flops_per_s.unwrap_or(0.0),
            hbm_bytes_per_s: gpu.hbm_bytes_per_s,
            kernels,
        })
    }

    /// Seconds one GEMM of `flops` FLOPs takes (`fp8` selects the FP8 peak where the GPU has one).
    pub fn gemm_time_s(&self, flops: f64, fp8: bool) -> f64 {
        if flops <= 0.0 {
            return 0.0;
        }
        let e = &self.efficiency;
        let size = flops / (flops + e.gemm_half_flops);
        let (peak, ratio) = if fp8 && self.peak_fp8_flops_per_s > 0.0 && e.fp8_efficiency_ratio > 0.0 {
            (self.peak_fp8_flops_per_s, e.fp8_efficiency_ratio)
        } else {
            (self.peak_flops_per_s, 1.0)
        };
        flops / (peak * e.gemm_max_efficiency * ratio * size)
    }

    /// Seconds one work item takes: its GEMMs, fused attention and memory traffic, one after another.
    pub fn work_time_s(&self, work: &schedule::Work, fp8: bool) -> f64 {
        self.kernel_times(work, fp8).total_s()
    }

    /// Seconds one work item spends in each kernel class.
    pub fn kernel_times(&self, work: &schedule::Work, fp8: bool) -> KernelTimes {
        let e = &self.efficiency;
        let fp8 = fp8 && work.fp8_eligible;
        let gemm_s: f64 = work
            .gemms
            .iter()
            .map(|(g, mult)| {
                // A grouped GEMM runs `groups` matrices of m/groups rows each.
                let one = g.flops() / g.groups.max(1) as f64;
                self.gemm_time_s(one, fp8) * g.groups.max(1) as f64 * mult
            })
            .sum();
        let k = &self.kernels;
        let attention_s = work.attention_flops
            / (self.peak_flops_per_s * e.attention_efficiency * k.attention_efficiency_factor);
        let memory_s =
            work.memory_bytes * k.elementwise_traffic_factor / (self.hbm_bytes_per_s * e.memory_efficiency);
        KernelTimes { gemm_s, attention_s, memory_s }
    }
}

/// Seconds of one work item by kernel class, as [`ComputeModel::kernel_times`] costs them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KernelTimes {
    /// Matrix products.
    pub gemm_s: f64,
    /// The fused attention core (scores, softmax, weighted sum).
    pub attention_s: f64,
    /// Memory-bound kernels: norms, activations, residuals, casts, the optimizer's update.
    pub memory_s: f64,
}

impl KernelTimes {
    /// All three.
    pub fn total_s(&self) -> f64 {
        self.gemm_s + self.attention_s + self.memory_s
    }
}
