//! `choir chaos`: a long training campaign under failures, simulated over many seeds.
//!
//! The step time comes from the step simulator (or `--step-time`); failures come from the `faults` crate's
//! per-component rates (Llama 3 405B by default) or from a fault plan file; the campaign engine in `faults`
//! turns them into interruptions, ETTR, goodput and lost GPU-hours, and sweeps the checkpoint interval.

mod report;
mod svg;

use std::path::PathBuf;

use anyhow::Context;
use faults::{
    CampaignConfig, CheckpointMode, CheckpointPolicy, CheckpointSizing, Distribution, FailureModel,
    FaultPlan, Fleet, PlanSource, RecoveryConfig, SampleConfig, StudyConfig,
};
use serde::Serialize;

use crate::cmd::sim::PlanArgs;
use crate::exit::bad_input;
use crate::inputs::{load_cluster_spec, load_model};
use crate::output::{print_json, read_text, write_atomic};

/// Flags of `choir chaos`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Model preset (see `choir presets`) or a Hugging Face config.json.
    #[arg(long, default_value = "llama3-405b")]
    model: String,
    /// Cluster preset (see `choir topology --list`) or a cluster TOML file.
    #[arg(long, default_value = "dgx-h100-superpod")]
    cluster: String,
    /// GPUs in the job [default: tp·cp·pp·dp].
    #[arg(long)]
    gpus: Option<u32>,
    #[command(flatten)]
    plan: PlanArgs,
    /// Use this step time instead of simulating one step (e.g. 5.6s).
    #[arg(long, value_name = "DURATION")]
    step_time: Option<String>,
    /// Length of the campaign in days.
    #[arg(long, default_value_t = 54.0)]
    days: f64,
    /// Training time between checkpoints: `auto` (Daly's optimum) or a duration such as 30m.
    #[arg(long, default_value = "auto", value_name = "auto|DURATION")]
    checkpoint_interval: String,
    /// sync: training waits for the write; async: it waits only for a copy to host memory.
    #[arg(long, default_value = "sync", value_parser = ["sync", "async"])]
    checkpoint: String,
    /// Aggregate storage bandwidth in GB/s (gigabytes); 2000 is Llama 3's Tectonic, sustained.
    #[arg(long, default_value_t = 2000.0, value_name = "GB/s")]
    storage_gbps: f64,
    /// Re-scheduling and re-initialising the job after a failure, before the checkpoint load.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    restart_time: String,
    /// From a process dying to the job noticing.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    detect_time: String,
    /// How long a stalled collective waits before a hang is declared (PyTorch's NCCL default is 10 min).
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    hang_timeout: String,
    /// Spare nodes that replace failed ones.
    #[arg(long, default_value_t = 32)]
    spares: u32,
    /// Time for a failed node to be repaired and become a spare again.
    #[arg(long, default_value = "3d", value_name = "DURATION")]
    repair_time: String,
    /// Campaigns to run, one fault plan each.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Weibull inter-failure times with this shape (same mean) instead of exponential.
    #[arg(long, value_name = "K")]
    weibull_shape: Option<f64>,
    /// Leave out planned maintenance (Llama 3: 47 planned stops in 54 days).
    #[arg(long)]
    no_planned: bool,
    /// Failure counts to derive rates from, in the schema of crates/faults/data/llama3_table5.toml.
    #[arg(long, value_name = "FILE")]
    rates: Option<PathBuf>,
    /// Replay this fault plan (TOML or JSON) instead of sampling failures.
    #[arg(long, value_name = "FILE")]
    fault_plan: Option<PathBuf>,
    /// Write the first seed's sampled fault plan (TOML, or JSON when FILE ends in .json).
    #[arg(long, value_name = "FILE")]
    write_fault_plan: Option<PathBuf>,
    /// Checkpoint intervals in the sweep (from a quarter to four times Daly's); 0 skips the sweep.
    #[arg(long, default_value_t = 25)]
    sweep_points: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Plot goodput against the checkpoint interval as SVG.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

/// Everything `choir chaos` reports; `--json` prints it.
#[derive(Debug, Serialize)]
pub(crate) struct ChaosReport {
    model: String,
    gpu: String,
    gpus: u64,
    days: f64,
    seeds: u64,
    step_time_s: f64,
    step_time_source: &'static str,
    tokens_per_step: f64,
    fault_free_tokens_per_s: f64,
    checkpoint_bytes: f64,
    checkpoint: CheckpointPolicy,
    checkpoint_every_steps: u64,
    checkpoint_interval_source: &'static str,
    recovery: RecoveryConfig,
    failures: FailureSummary,
    interruptions: faults::Spread,
    unexpected_interruptions: faults::Spread,
    ettr: faults::Spread,
    goodput_tokens_per_s: faults::Spread,
    lost_gpu_hours: faults::Spread,
    interruptions_by_cause: std::collections::BTreeMap<String, f64>,
    lost_gpu_hours_by_cause: std::collections::BTreeMap<String, f64>,
    young_interval_s: f64,
    daly_interval_s: f64,
    best_interval_s: Option<f64>,
    fitted_best_interval_s: Option<f64>,
    sweep: Vec<faults::SweepPoint>,
}

/// Where failures come from, and their rates.
#[derive(Debug, Serialize)]
struct FailureSummary {
    source: String,
    distribution: String,
    unexpected_per_day: f64,
    planned_per_day: f64,
    mtbf_s: f64,
}

/// Runs `choir chaos`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let spec = load_model(&args.model)?;
    let mut plan = args.plan.to_plan(args.gpus)?;
    if plan.stage_layers.is_none() && plan.vp == 1 && spec.n_layers % u64::from(plan.pp) != 0 {
        plan.stage_layers = Some(uneven_stage_layers(spec.n_layers as u32, plan.pp));
    }
    plan.validate(&spec, args.gpus.map(u64::from)).map_err(bad_input)?;
    let gpus = args.gpus.unwrap_or(plan.gpus() as u32);
    let cluster_spec = load_cluster_spec(&args.cluster)?;
    let cluster = topology::Cluster::build(&cluster_spec, gpus).map_err(bad_input)?;
    let (step_time_s, step_time_source) = match &args.step_time {
        Some(text) => (duration("--step-time", text)?, "given"),
        None => {
            let program = schedule::build(&spec, &plan).map_err(bad_input)?;
            let config = sim::SimConfig { ranks: sim::RankMode::Unique, ..Default::default() };
            (sim::simulate(&spec, &program, &cluster, &config)?.report.step_time_s, "simulated")
        }
    };
    if step_time_s.is_nan() || step_time_s <= 0.0 {
        return Err(bad_input(format!("--step-time {step_time_s} s: expected a positive duration")));
    }
    if !args.days.is_finite() || args.days <= 0.0 {
        return Err(bad_input(format!("--days {}: expected a positive number of days", args.days)));
    }
    let fleet = Fleet { gpus: u64::from(gpus), gpus_per_node: cluster.gpus_per_node() };

    let mut failure_model = match &args.rates {
        Some(path) => FailureModel::from_counts_toml(&read_text(path)?)
            .map_err(|e| bad_input(format!("--rates {}: {e}", path.display())))?,
        None => FailureModel::llama3(),
    };
    if args.no_planned {
        failure_model = failure_model.without_planned();
    }
    if let Some(shape) = args.weibull_shape {
        failure_model =
            failure_model.with_distribution(Distribution::Weibull { shape }).map_err(bad_input)?;
    }

    let params = model::param_counts(&spec).total;
    let checkpoint_bytes = faults::checkpoint_bytes(params);
    let gpu_spec = cluster.gpu_spec();
    let host_link_bytes_per_s = topology::catalog::pcie_x16_bytes_per_s(gpu_spec.pcie_gen)
        .with_context(|| format!("no PCIe bandwidth for generation {}", gpu_spec.pcie_gen))?;
    let costs = faults::checkpoint_costs(&CheckpointSizing {
        checkpoint_bytes,
        gpus: fleet.gpus,
        storage_bytes_per_s: args.storage_gbps * 1e9,
        host_link_bytes_per_s,
    })
    .map_err(|e| bad_input(format!("--storage-gbps {}: {e}", args.storage_gbps)))?;
    let mode = if args.checkpoint == "async" { CheckpointMode::Async } else { CheckpointMode::Sync };
    let blocking_s = match mode {
        CheckpointMode::Sync => costs.write_s,
        CheckpointMode::Async => costs.snapshot_s,
    };
    let mtbf_s = failure_model.mtbf_s(fleet);
    let young_interval_s = faults::young_interval_s(blocking_s, mtbf_s);
    let daly_interval_s = faults::daly_interval_s(blocking_s, mtbf_s);
    let (interval_s, interval_source) = match args.checkpoint_interval.as_str() {
        "auto" if daly_interval_s.is_finite() => (daly_interval_s, "auto: Daly"),
        "auto" => (args.days * 86_400.0, "auto: no failures, one checkpoint"),
        text => (duration("--checkpoint-interval", text)?, "given"),
    };
    let recovery = RecoveryConfig {
        detect_s: duration("--detect-time", &args.detect_time)?,
        hang_timeout_s: duration("--hang-timeout", &args.hang_timeout)?,
        restart_s: duration("--restart-time", &args.restart_time)?,
        spare_nodes: args.spares,
        repair_s: duration("--repair-time", &args.repair_time)?,
    };
    let tokens_per_step = plan.tokens_per_step() as f64;
    let campaign = CampaignConfig {
        horizon_s: args.days * 86_400.0,
        step_time_s,
        tokens_per_step,
        fleet,
        checkpoint: CheckpointPolicy { interval_s, mode, costs },
        recovery,
    };
    let fixed_plan = match &args.fault_plan {
        Some(path) => {
            let plan = FaultPlan::parse(&read_text(path)?)
                .map_err(|e| bad_input(format!("--fault-plan {}: {e}", path.display())))?;
            plan.check_targets(fleet.gpus, fleet.nodes())
                .map_err(|e| bad_input(format!("--fault-plan {}: {e}", path.display())))?;
            Some(plan)
        }
        None => None,
    };
    if let Some(path) = &args.write_fault_plan {
        let sampled = faults::sample_plan(
            &failure_model,
            &SampleConfig { fleet, horizon_s: campaign.horizon_s, seed: args.seed },
        );
        let text = if path.extension().is_some_and(|e| e == "json") {
            serde_json::to_string_pretty(&sampled)? + "\n"
        } else {
            sampled.to_toml_string()
        };
        write_atomic(path, text.as_bytes()).context("writing the fault plan")?;
    }
    let sweep_center_s = if daly_interval_s.is_finite() { daly_interval_s } else { interval_s };
    let sweep_intervals_s = if args.sweep_points == 0 {
        Vec::new()
    } else {
        faults::interval_grid(sweep_center_s, 4.0, args.sweep_points, step_time_s)
    };
    let seeds = if fixed_plan.is_some() { 1 } else { args.seeds };
    let study_config =
        StudyConfig { campaign: campaign.clone(), seeds, first_seed: args.seed, sweep_intervals_s };
    let source = match &fixed_plan {
        Some(plan) => PlanSource::Fixed(plan),
        None => PlanSource::Sampled(&failure_model),
    };
    let study = faults::run_study(&study_config, source).map_err(bad_input)?;

    let (unplanned_per_h, planned_per_h) = failure_model.failures_per_hour(fleet);
    let distribution = match args.weibull_shape {
        Some(k) => format!("Weibull, shape {k}"),
        None => "exponential".to_string(),
    };
    let report = ChaosReport {
        model: spec.name.clone(),
        gpu: gpu_spec.slug.clone(),
        gpus: fleet.gpus,
        days: args.days,
        seeds,
        step_time_s,
        step_time_source,
        tokens_per_step,
        fault_free_tokens_per_s: tokens_per_step / step_time_s,
        checkpoint_bytes,
        checkpoint: campaign.checkpoint,
        checkpoint_every_steps: faults::every_steps(interval_s, step_time_s),
        checkpoint_interval_source: interval_source,
        recovery,
        failures: FailureSummary {
            source: match (&args.fault_plan, &args.rates) {
                (Some(path), _) => format!("fault plan {}", path.display()),
                (None, Some(path)) => format!("counts in {}", path.display()),
                (None, None) => failure_model.source.clone(),
            },
            distribution,
            unexpected_per_day: unplanned_per_h * 24.0,
            planned_per_day: planned_per_h * 24.0,
            mtbf_s,
        },
        interruptions: study.interruptions,
        unexpected_interruptions: study.unexpected_interruptions,
        ettr: study.ettr,
        goodput_tokens_per_s: study.goodput_tokens_per_s,
        lost_gpu_hours: study.lost_gpu_hours,
        interruptions_by_cause: study.interruptions_by_cause,
        lost_gpu_hours_by_cause: study.lost_gpu_hours_by_cause,
        young_interval_s,
        daly_interval_s,
        best_interval_s: study.best_interval_s,
        fitted_best_interval_s: study.fitted_best_interval_s,
        sweep: study.sweep,
    };
    if let Some(path) = &args.svg {
        write_atomic(path, svg::goodput_svg(&report).as_bytes()).context("writing the goodput plot")?;
    }
    if args.json {
        return print_json(&report);
    }
    print!("{}", report::render(&report, &plan));
    if let Some(path) = &args.write_fault_plan {
        println!("fault plan (seed {}): {}", args.seed, path.display());
    }
    if let Some(path) = &args.svg {
        println!("goodput plot: {}", path.display());
    }
    Ok(())
}

fn duration(flag: &str, text: &str) -> anyhow::Result<f64> {
    units::parse_duration(text).map_err(|e| bad_input(format!("{flag}: {e}")))
}

/// Layers per stage when `pp` does not divide them: as many as the fullest stage needs everywhere, less one
/// on the first and last stages, then the second and second-to-last, … (Llama 3 405B's 126 layers on 16 stages
/// had one layer fewer on the first and last stage, "The Llama 3 Herd of Models" §3.3.2).
fn uneven_stage_layers(n_layers: u32, pp: u32) -> Vec<u32> {
    let per_stage = n_layers.div_ceil(pp);
    let mut layers = vec![per_stage; pp as usize];
    let mut deficit = per_stage * pp - n_layers;
    let mut order = (0..pp as usize).flat_map(|i| [i, pp as usize - 1 - i]);
    while deficit > 0 {
        let Some(stage) = order.next() else { break };
        if layers[stage] == per_stage {
            layers[stage] -= 1;
            deficit -= 1;
        }
    }
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uneven_splits_thin_the_edge_stages_first() {
        let llama = uneven_stage_layers(126, 16);
        assert_eq!((llama[0], llama[15], llama[1..15].iter().all(|&l| l == 8)), (7, 7, true));
        assert_eq!(uneven_stage_layers(10, 4), [2, 3, 3, 2]);
        assert_eq!(uneven_stage_layers(9, 4), [2, 2, 3, 2]);
        assert_eq!(uneven_stage_layers(8, 4), [2, 2, 2, 2]);
    }
}
