//! Runs one training step's task graph on the discrete-event engine.
//!
//! [`simulate`] takes the [`schedule::StepProgram`] of a model and plan, a [`topology::Cluster`], and a
//! [`SimConfig`]; it costs compute with a roofline of size-dependent efficiencies per GPU (calibration in
//! `data/compute.toml`, with provenance) and communication with the `collective` crate's analytical NCCL model,
//! plays every rank's streams event by event, and returns a deterministic [`Report`] plus a [`Timeline`] of
//! op intervals for traces and pictures.

mod compute;
mod critical;
mod engine;
mod network;
mod report;

pub use compute::{COMPUTE_TOML, ComputeModel, GpuEfficiency, KernelFactors, KernelTimes};
pub use critical::CriticalPath;
pub use engine::{OpRecord, RankMode};
pub use report::{MemoryReport, Report, SimStats, StageReport};

use std::collections::BTreeMap;

use schedule::StepProgram;

/// A simulation that cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// The plan does not fit the cluster.
    #[error("{0}")]
    Mismatch(String),
    /// The compute calibration is missing or malformed.
    #[error("{0}")]
    Calibration(String),
    /// The network model refused a group.
    #[error("network model: {0}")]
    Network(String),
    /// Some rank could not finish its program (a bug in a schedule).
    #[error("the step deadlocked: {0}")]
    Deadlock(String),
}

impl SimError {
    fn network(e: impl std::fmt::Display) -> SimError {
        SimError::Network(e.to_string())
    }
}

/// How to simulate.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimConfig {
    /// Which ranks to simulate.
    pub ranks: RankMode,
    /// Keep op intervals of every simulated rank for the timeline (else one rank per stage).
    pub record_all: bool,
    /// Seed of the engine's random generator (the step model itself draws nothing).
    pub seed: u64,
    /// Compute calibration TOML replacing the embedded one.
    pub calibration: Option<String>,
    /// Make every communication free (zero time): isolates the schedule's own bubble and compute.
    pub free_communication: bool,
    /// The network model for collectives that cross nodes.
    pub network: NetworkModel,
}

/// How collectives that cross nodes are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkModel {
    /// NCCL's analytical cost model per collective, in isolation (fast; no contention between groups).
    #[default]
    Analytical,
    /// Collectives lowered to flows on routed paths sharing link bandwidth max-min fairly with every other
    /// collective in flight (contention between groups on shared spines). Needs every rank simulated;
    /// collectives inside one node keep the analytical model.
    Flow,
}

/// Op intervals of the recorded ranks.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// (global rank, stage, records) per recorded rank, in rank order.
    pub ranks: Vec<(u32, u32, Vec<OpRecord>)>,
}

/// A simulated step.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    /// The figures.
    pub report: Report,
    /// What ran when.
    pub timeline: Timeline,
}

/// Seconds each op of each stage's program takes on `cluster` (indexed `[stage][op]`), as [`simulate`] costs
/// them. This is what the live emulator waits for each op.
pub fn op_durations(
    program: &StepProgram,
    cluster: &topology::Cluster,
    calibration: Option<&str>,
) -> Result<Vec<Vec<f64>>, SimError> {
    let compute = ComputeModel::for_gpu(cluster.gpu_spec(), program.plan.kernels, calibration)?;
    let mut network = network::Network::new(cluster, program.layout);
    engine::op_durations(program, &compute, &mut network)
}

/// Simulates one optimizer step of `program` on `cluster`.
pub fn simulate(
    spec: &model::ModelSpec,
    program: &StepProgram,
    cluster: &topology::Cluster,
    config: &SimConfig,
) -> Result<Simulation, SimError> {
    let plan = &program.plan;
    let gpus = plan.gpus();
    if gpus > u64::from(cluster.num_gpus()) {
        return Err(SimError::Mismatch(format!(
            "the plan needs {gpus} GPUs (tp·cp·dp·pp) but the cluster has {}",
            cluster.num_gpus()
        )));
    }
    let gpu = cluster.gpu_spec();
    let compute = ComputeModel::for_gpu(gpu, plan.kernels, config.calibration.as_deref())?;
    let mut network = network::Network::new(cluster, program.layout);
    network.free = config.free_communication;
    let run_cfg = engine::RunConfig { mode: config.ranks, record_all: config.record_all, seed: config.seed };
    let mut flow_sim = match config.network {
        NetworkModel::Analytical => None,
        NetworkModel::Flow => {
            if config.ranks != RankMode::All {
                return Err(SimError::Mismatch(
                    "the flow network model needs every rank simulated (RankMode::All): contention comes from all \
                     groups at once"
                        .to_owned(),
                ));
            }
            let router = collective::placement::ClusterRouter::new(cluster);
            Some(collective::flow::collectives::FlowSim::new(router).map_err(SimError::network)?)
        }
    };
    let run = engine::run(program, &compute, &mut network, flow_sim.as_mut(), &run_cfg)?;
    let step_ns = run.step_time.as_nanos();
    let step_s = step_ns as f64 * 1e-9;

    // Per-stage figures from each stage's first rank; memory peaks over every simulated rank of the stage.
    let mut dyn_peak = vec![0i64; program.stages.len()];
    for (_, stage, peak, _) in &run.ranks {
        dyn_peak[*stage as usize] = dyn_peak[*stage as usize].max(*peak);
    }
    let mut stages = Vec::new();
    let mut tails = Vec::new();
    let mut timeline = Vec::new();
    for (global, stage, _, records) in run.ranks {
        let Some(records) = records else { continue };
        let c = program.layout.coord(global);
        if c.tp == 0 && c.cp == 0 && c.dp == 0 {
            let (s, tail) = report::stage_report(
                &program.stages[stage as usize],
                &records,
                step_ns,
                dyn_peak[stage as usize] as f64,
            );
            stages.push(s);
            tails.push(tail);
        }
        timeline.push((global, stage, records));
    }
    stages.sort_by_key(|s| s.stage);
    let mut firsts: Vec<(u32, &[OpRecord])> = timeline
        .iter()
        .filter(|(g, _, _)| {
            let c = program.layout.coord(*g);
            c.tp == 0 && c.cp == 0 && c.dp == 0
        })
        .map(|(_, s, r)| (*s, r.as_slice()))
        .collect();
    firsts.sort_by_key(|(s, _)| *s);
    let firsts: Vec<&[OpRecord]> = firsts.into_iter().map(|(_, r)| r).collect();
    let critical_path = critical::critical_path(program, &firsts);

    let tokens = plan.tokens_per_step() as f64;
    let flops_cfg =
        model::FlopsConfig { seq_len: u64::from(plan.seq_len), causal: true, recompute: plan.recompute };
    let per_token = model::flops_per_token(spec, &flops_cfg);
    let model_flops = per_token.training * tokens;
    let hardware_flops = per_token.training_with_recompute * tokens;
    let peak = if plan.precision == model::Precision::Fp8 && compute.peak_fp8_flops_per_s > 0.0 {
        compute.peak_fp8_flops_per_s
    } else {
        compute.peak_flops_per_s
    };
    let denom = step_s * gpus as f64;
    let memory_peak = stages.iter().map(|s| s.memory.total_bytes).fold(0.0, f64::max);
    let slowest = stages
        .iter()
        .enumerate()
        .max_by(|a, b| {
            let sa: f64 = a.1.exposed_comm_s.values().sum::<f64>() + a.1.compute_s;
            let sb: f64 = b.1.exposed_comm_s.values().sum::<f64>() + b.1.compute_s;
            sa.total_cmp(&sb)
        })
        .map(|(i, _)| i)
        .unwrap_or(0);
    let mut breakdown = BTreeMap::new();
    if let Some(s) = stages.get(slowest) {
        breakdown.insert("compute".to_owned(), s.compute_s);
        for (k, v) in &s.exposed_comm_s {
            breakdown.insert(format!("exposed_{k}"), *v);
        }
        breakdown.insert("bubble".to_owned(), s.bubble_s);
        breakdown.insert("tail".to_owned(), tails[slowest]);
    }
    let compute_by_kernel_s = stages
        .get(slowest)
        .map(|s| kernel_classes(&program.stages[s.stage as usize], &compute, plan.precision))
        .unwrap_or_default();
    let report = Report {
        model: spec.name.clone(),
        gpu: gpu.slug.clone(),
        gpus: gpus as u32,
        plan: plan.clone(),
        step_time_s: step_s,
        tokens_per_s: if step_s > 0.0 { tokens / step_s } else { 0.0 },
        model_flops_per_step: model_flops,
        model_tflops_per_gpu: if denom > 0.0 { model_flops / denom / 1e12 } else { 0.0 },
        mfu: if denom > 0.0 { model_flops / denom / peak } else { 0.0 },
        hfu: if denom > 0.0 { hardware_flops / denom / peak } else { 0.0 },
        mfu_convention:
            "6N + causal attention FLOPs per token × tokens (Megatron-Core's count, no recompute); \
                         HFU adds recomputation"
                .to_owned(),
        bubble_fraction: stages.iter().map(|s| s.bubble_fraction).fold(0.0, f64::max),
        exposed_comm_s: stages.get(slowest).map(|s| s.exposed_comm_s.clone()).unwrap_or_default(),
        memory_peak_bytes: memory_peak,
        hbm_bytes: gpu.hbm_bytes,
        fits_in_memory: memory_peak <= gpu.hbm_bytes,
        stages,
        breakdown,
        compute_by_kernel_s,
        critical_path,
        sim: SimStats {
            events: run.events,
            simulated_ranks: run.simulated_ranks,
            ops_per_replica: program.ops_per_replica() as u64,
        },
    };
    Ok(Simulation { report, timeline: Timeline { ranks: timeline } })
}

#[cfg(test)]
mod tests;

/// GPU seconds of one stage's compute ops by kernel class over the step: `gemm`, `attention`, `memory` (the
/// memory-bound kernels of the passes) and `optimizer` (the update, memory-bound too).
fn kernel_classes(
    stage: &schedule::StageProgram,
    compute: &ComputeModel,
    precision: model::Precision,
) -> BTreeMap<String, f64> {
    let fp8 = precision == model::Precision::Fp8;
    let mut out: BTreeMap<String, f64> =
        ["gemm", "attention", "memory", "optimizer"].into_iter().map(|k| (k.to_owned(), 0.0)).collect();
    for op in &stage.ops {
        let schedule::OpKind::Compute { work } = op.kind else { continue };
        let w = &stage.works[work as usize];
        let t = compute.kernel_times(w, fp8);
        if w.label == "optimizer" {
            *out.entry("optimizer".to_owned()).or_default() += t.total_s();
        } else {
            *out.entry("gemm".to_owned()).or_default() += t.gemm_s;
            *out.entry("attention".to_owned()).or_default() += t.attention_s;
            *out.entry("memory".to_owned()).or_default() += t.memory_s;
        }
    }
    out
}
