//! The numbers a user reads: step time, throughput, MFU, bubble, exposed communication, memory.

use std::collections::BTreeMap;

use serde::Serialize;

use schedule::{CommPurpose, OpKind, StageProgram, Stream};

use crate::engine::OpRecord;

/// One pipeline stage, seen from its first rank (tp = cp = dp = 0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageReport {
    /// Stage index.
    pub stage: u32,
    /// Layers held (all chunks).
    pub layers: u32,
    /// Seconds the GPU computed (kernels only).
    pub compute_s: f64,
    /// Seconds the compute stream sat idle before the last pipeline pass ended (pipeline bubble).
    pub bubble_s: f64,
    /// `bubble_s` / step time.
    pub bubble_fraction: f64,
    /// `bubble_s` / the stage's busy time (the `(p−1)/m` of the papers).
    pub bubble_over_busy: f64,
    /// Communication seconds not hidden under compute, by purpose.
    pub exposed_comm_s: BTreeMap<String, f64>,
    /// Peak memory and its parts, bytes.
    pub memory: MemoryReport,
}

/// Peak memory of one rank.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemoryReport {
    /// Weights.
    pub weights_bytes: f64,
    /// Gradients.
    pub grads_bytes: f64,
    /// Optimizer state.
    pub optimizer_bytes: f64,
    /// Peak of activations and transient buffers (gathered FSDP weights, recomputed layers).
    pub activations_peak_bytes: f64,
    /// Everything at the peak.
    pub total_bytes: f64,
}

/// Simulator statistics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SimStats {
    /// Events the engine processed.
    pub events: u64,
    /// Ranks simulated.
    pub simulated_ranks: u32,
    /// Ops in one replica's programs (all stages).
    pub ops_per_replica: u64,
}

/// The result of simulating one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Model name.
    pub model: String,
    /// GPU model.
    pub gpu: String,
    /// GPUs in the job.
    pub gpus: u32,
    /// The plan.
    pub plan: schedule::ParallelPlan,
    /// Seconds per optimizer step.
    pub step_time_s: f64,
    /// Tokens per second, whole job.
    pub tokens_per_s: f64,
    /// Model FLOPs per step (`mfu_convention`).
    pub model_flops_per_step: f64,
    /// Model TFLOP/s per GPU (10¹² FLOP/s).
    pub model_tflops_per_gpu: f64,
    /// Model FLOPs utilisation of the dense 16-bit peak (FP8 runs: of the FP8 peak).
    pub mfu: f64,
    /// Hardware FLOPs utilisation: model FLOPs plus recomputation.
    pub hfu: f64,
    /// How model FLOPs are counted.
    pub mfu_convention: String,
    /// Largest bubble fraction over stages.
    pub bubble_fraction: f64,
    /// Exposed communication seconds by purpose, on the stage where the sum is largest.
    pub exposed_comm_s: BTreeMap<String, f64>,
    /// Peak memory per GPU, max over ranks, bytes.
    pub memory_peak_bytes: f64,
    /// GPU memory, bytes.
    pub hbm_bytes: f64,
    /// Whether the peak fits.
    pub fits_in_memory: bool,
    /// Per stage.
    pub stages: Vec<StageReport>,
    /// Where the slowest stage's time went, seconds: compute, exposed communication by purpose, bubble,
    /// and the step's tail after the last pipeline pass (gradient reduction and optimizer).
    pub breakdown: BTreeMap<String, f64>,
    /// GPU seconds of the same stage's compute by kernel class (`gemm`, `attention`, `memory`, `optimizer`),
    /// as the compute model costs them: where `breakdown`'s compute goes.
    pub compute_by_kernel_s: BTreeMap<String, f64>,
    /// The step's critical path through the first rank of every stage, seconds by category.
    pub critical_path: crate::CriticalPath,
    /// Simulator statistics.
    pub sim: SimStats,
}

/// Union of intervals, sorted and merged.
fn merge(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Length of `[a, b)` not covered by the merged intervals.
fn uncovered(merged: &[(u64, u64)], a: u64, b: u64) -> u64 {
    let mut covered = 0;
    let start = merged.partition_point(|&(_, e)| e <= a);
    for &(x, y) in &merged[start..] {
        if x >= b {
            break;
        }
        covered += y.min(b) - x.max(a);
    }
    (b - a) - covered
}

/// The per-stage figures of one rank's records.
pub(crate) fn stage_report(
    program: &StageProgram,
    records: &[OpRecord],
    step_ns: u64,
    dynamic_peak_bytes: f64,
) -> (StageReport, f64) {
    let ops = &program.ops;
    let compute: Vec<(u64, u64)> = records
        .iter()
        .filter(|r| matches!(ops[r.op as usize].kind, OpKind::Compute { .. }))
        .map(|r| (r.start.as_nanos(), r.end.as_nanos()))
        .collect();
    let merged = merge(compute.clone());
    let compute_ns: u64 = merged.iter().map(|(a, b)| b - a).sum();
    let pipeline_end = records
        .iter()
        .filter(|r| ops[r.op as usize].tag.pass.is_some())
        .map(|r| r.end.as_nanos())
        .max()
        .unwrap_or(0);
    let busy_ns: u64 = merge(
        records
            .iter()
            .filter(|r| ops[r.op as usize].stream == Stream::Compute && ops[r.op as usize].tag.pass.is_some())
            .map(|r| (r.start.as_nanos(), r.end.as_nanos()))
            .collect(),
    )
    .iter()
    .map(|(a, b)| b - a)
    .sum();
    let bubble_ns = pipeline_end.saturating_sub(busy_ns);
    let mut exposed: BTreeMap<String, f64> = BTreeMap::new();
    for p in CommPurpose::ALL {
        exposed.insert(p.name().to_owned(), 0.0);
    }
    for r in records {
        let o = &ops[r.op as usize];
        let purpose = match o.kind {
            OpKind::Collective { purpose, .. } => purpose,
            OpKind::Send { .. } => CommPurpose::Pp,
            _ => continue,
        };
        let ns = uncovered(&merged, r.start.as_nanos(), r.end.as_nanos());
        *exposed.entry(purpose.name().to_owned()).or_default() += ns as f64 * 1e-9;
    }
    let sm = program.static_memory;
    let memory = MemoryReport {
        weights_bytes: sm.weights_bytes,
        grads_bytes: sm.grads_bytes,
        optimizer_bytes: sm.optimizer_bytes,
        activations_peak_bytes: dynamic_peak_bytes,
        total_bytes: sm.total_bytes() + dynamic_peak_bytes,
    };
    let step_s = step_ns as f64 * 1e-9;
    let tail_s = step_ns.saturating_sub(pipeline_end) as f64 * 1e-9;
    let report = StageReport {
        stage: program.stage,
        layers: program.chunk_layers.iter().map(|c| c.len() as u32).sum(),
        compute_s: compute_ns as f64 * 1e-9,
        bubble_s: bubble_ns as f64 * 1e-9,
        bubble_fraction: if step_s > 0.0 { bubble_ns as f64 * 1e-9 / step_s } else { 0.0 },
        bubble_over_busy: if busy_ns > 0 { bubble_ns as f64 / busy_ns as f64 } else { 0.0 },
        exposed_comm_s: exposed,
        memory,
    };
    (report, tail_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_arithmetic() {
        let m = merge(vec![(5, 10), (0, 3), (2, 4), (12, 15)]);
        assert_eq!(m, vec![(0, 4), (5, 10), (12, 15)]);
        assert_eq!(uncovered(&m, 0, 20), 1 + 2 + 5);
        assert_eq!(uncovered(&m, 6, 9), 0);
        assert_eq!(uncovered(&m, 9, 13), 2);
    }
}
