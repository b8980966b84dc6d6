//! Checkpoint policy: what a checkpoint costs, and how often to take one (Young, Daly).
//!
//! Notation as in Daly (2006): δ is the time to write one checkpoint, M the mean time between interruptions,
//! R the restart time, τ the compute time between two checkpoints.

use serde::{Deserialize, Serialize};

use crate::error::{FaultsError, check_min};

/// Young's first-order optimum, τ = √(2δM) (J. W. Young, "A first order approximation to the optimum
/// checkpoint interval", CACM 17(9), 1974).
pub fn young_interval_s(checkpoint_s: f64, mtbf_s: f64) -> f64 {
    (2.0 * checkpoint_s * mtbf_s).sqrt()
}

/// Daly's higher-order optimum (J. T. Daly, "A higher order estimate of the optimum checkpoint interval for
/// restart dumps", FGCS 22(3), 2006, eq. 37): τ = √(2δM)·[1 + ⅓·√(δ/2M) + ⅑·(δ/2M)] − δ for δ < 2M, else M.
pub fn daly_interval_s(checkpoint_s: f64, mtbf_s: f64) -> f64 {
    if checkpoint_s >= 2.0 * mtbf_s {
        return mtbf_s;
    }
    let x = checkpoint_s / (2.0 * mtbf_s);
    (2.0 * checkpoint_s * mtbf_s).sqrt() * (1.0 + x.sqrt() / 3.0 + x / 9.0) - checkpoint_s
}

/// The first-order fraction of wall time wasted with blocking checkpoints every `interval_s`: writing
/// (δ/τ), plus, per interruption, half an interval of lost work and the restart ((τ/2 + R)/M).
pub fn first_order_waste(interval_s: f64, checkpoint_s: f64, restart_s: f64, mtbf_s: f64) -> f64 {
    checkpoint_s / interval_s + (interval_s / 2.0 + restart_s) / mtbf_s
}

/// Bytes in one checkpoint of `params` parameters trained with mixed-precision Adam: the 16-bit weights and the
/// optimizer state (fp32 master weights and two fp32 moments), 2 + 12 = 14 bytes per parameter. Gradients are
/// not saved: they are rebuilt by the next step. Computed with [`model::state_bytes`].
pub fn checkpoint_bytes(params: u64) -> f64 {
    let state = model::state_bytes(model::Precision::Bf16, model::Precision::Bf16, model::Optimizer::Adam);
    params as f64 * (state.weights + state.optimizer)
}

/// How a checkpoint is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointMode {
    /// Training stops while the checkpoint is written to storage.
    Sync,
    /// Training stops only while each GPU copies its shard to host memory; the write to storage runs in the
    /// background, and the checkpoint counts only once it is complete.
    Async,
}

/// Inputs for the cost of one checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CheckpointSizing {
    /// Bytes in one checkpoint (see [`checkpoint_bytes`]).
    pub checkpoint_bytes: f64,
    /// GPUs sharing the checkpoint; each holds `1/gpus` of it.
    pub gpus: u64,
    /// Aggregate bandwidth of the storage the checkpoint is written to and read from, bytes/s.
    pub storage_bytes_per_s: f64,
    /// Bandwidth from one GPU to host memory (its PCIe link), bytes/s.
    pub host_link_bytes_per_s: f64,
}

/// What one checkpoint costs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CheckpointCosts {
    /// Writing the whole checkpoint to storage, seconds.
    pub write_s: f64,
    /// Copying one GPU's shard to host memory (what an async checkpoint blocks for), seconds.
    pub snapshot_s: f64,
    /// Reading the checkpoint back on restart, seconds.
    pub load_s: f64,
}

/// The cost of one checkpoint: the write and the read move every byte once through the storage bandwidth; the
/// snapshot moves one GPU's share over its host link (all GPUs copy in parallel).
pub fn checkpoint_costs(sizing: &CheckpointSizing) -> Result<CheckpointCosts, FaultsError> {
    check_min("checkpoint bytes", sizing.checkpoint_bytes, 0.0, true)?;
    check_min("GPUs", sizing.gpus as f64, 1.0, true)?;
    check_min("storage bandwidth (bytes/s)", sizing.storage_bytes_per_s, 0.0, false)?;
    check_min("host link bandwidth (bytes/s)", sizing.host_link_bytes_per_s, 0.0, false)?;
    let write_s = sizing.checkpoint_bytes / sizing.storage_bytes_per_s;
    Ok(CheckpointCosts {
        write_s,
        snapshot_s: sizing.checkpoint_bytes / sizing.gpus as f64 / sizing.host_link_bytes_per_s,
        load_s: write_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daly_reproduces_the_paper_figures() {
        // Daly (2006) figure captions, R = 10 min, δ = 5 min: M = 24 h → 117 min, 6 h → 57 min, 15 min → 9.1 min.
        let min = 60.0;
        for (mtbf_min, expected_min) in [(24.0 * 60.0, 116.7), (6.0 * 60.0, 56.7), (15.0, 9.1)] {
            let tau = daly_interval_s(5.0 * min, mtbf_min * min) / min;
            assert!((tau - expected_min).abs() < 0.05, "M = {mtbf_min} min: {tau:.2} min");
        }
        assert_eq!(daly_interval_s(100.0, 40.0), 40.0);
    }

    #[test]
    fn young_is_the_first_order_term_and_minimises_the_first_order_waste() {
        let (delta, mtbf) = (30.0, 1.8 * 3600.0);
        let tau = young_interval_s(delta, mtbf);
        assert!((tau / 60.0 - 10.39).abs() < 0.01, "{}", tau / 60.0);
        let w = |t| first_order_waste(t, delta, 120.0, mtbf);
        assert!(w(tau) < w(tau * 1.05) && w(tau) < w(tau / 1.05));
        // reliability.md's worked example: M = 1.8 h, δ = 30 s, R = 2 min gives ETTR ≈ 88.5%.
        assert!((1.0 - w(tau) - 0.885).abs() < 0.002, "{}", 1.0 - w(tau));
    }

    #[test]
    fn checkpoint_costs_follow_bytes_and_bandwidths() {
        // 405.8e9 parameters × 14 bytes = 5.68 TB; 2 TB/s storage; 16,384 GPUs on PCIe Gen5 (64 GB/s).
        let bytes = checkpoint_bytes(405_800_000_000);
        assert!((bytes - 5.6812e12).abs() < 1e8, "{bytes}");
        let costs = checkpoint_costs(&CheckpointSizing {
            checkpoint_bytes: bytes,
            gpus: 16_384,
            storage_bytes_per_s: 2e12,
            host_link_bytes_per_s: 64e9,
        })
        .unwrap();
        assert!((costs.write_s - 2.84).abs() < 0.01);
        assert_eq!(costs.load_s, costs.write_s);
        assert!((costs.snapshot_s - bytes / 16_384.0 / 64e9).abs() < 1e-12);
        let err = checkpoint_costs(&CheckpointSizing { storage_bytes_per_s: 0.0, ..Default::default() });
        assert!(err.unwrap_err().to_string().starts_with("storage bandwidth (bytes/s) = 0"));
    }

    impl Default for CheckpointSizing {
        fn default() -> Self {
            CheckpointSizing {
                checkpoint_bytes: 1.0,
                gpus: 1,
                storage_bytes_per_s: 1.0,
                host_link_bytes_per_s: 1.0,
            }
        }
    }
}
