//! `choir sim`: simulate one training step.

use std::path::PathBuf;

use anyhow::Context;
use schedule::{ParallelPlan, PipelineSchedule, RankOrder};

use crate::exit::bad_input;
use crate::inputs::{load_cluster_spec, load_model};
use crate::output::{print_json, write_atomic};

/// Flags of `choir sim`. With none, it simulates llama3-8b on 64 H100 GPUs of a DGX SuperPOD.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Model preset (see `choir presets`) or a Hugging Face config.json.
    #[arg(long, default_value = "llama3-8b")]
    pub(crate) model: String,
    /// Cluster preset (see `choir topology --list`) or a cluster TOML file.
    #[arg(long, default_value = "dgx-h100-superpod")]
    pub(crate) cluster: String,
    /// GPUs in the job [default: tp·cp·pp·dp, with dp filling --gpus when given].
    #[arg(long)]
    pub(crate) gpus: Option<u32>,
    #[command(flatten)]
    pub(crate) plan: PlanArgs,
    /// A plan file (TOML with ParallelPlan's fields: tp, pp, dp, cp, ep, vp, micro_batch, global_batch,
    /// seq_len, zero_stage, sequence_parallel, recompute, schedule, precision, stage_layers, ...) instead of
    /// the plan flags.
    #[arg(long = "plan", value_name = "FILE")]
    pub(crate) plan_file: Option<PathBuf>,
    /// Network model for collectives that cross nodes: `analytical` (NCCL's cost model, each collective alone)
    /// or `flow` (flows sharing link bandwidth max-min fairly across all groups; needs --ranks all).
    #[arg(long, default_value = "analytical", value_parser = ["analytical", "flow"])]
    pub(crate) network: String,
    /// Simulate every rank (`all`) or one per pipeline stage (`unique`, exact for symmetric jobs).
    #[arg(long, default_value = "all", value_parser = ["all", "unique"])]
    pub(crate) ranks: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write a Chrome trace (open in https://ui.perfetto.dev).
    #[arg(long, value_name = "FILE")]
    pub(crate) trace: Option<PathBuf>,
    /// Draw the pipeline schedule of the step as SVG.
    #[arg(long, value_name = "FILE")]
    pub(crate) svg: Option<PathBuf>,
}

/// The parallel plan's flags, shared by the simulating commands.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PlanArgs {
    /// Tensor-parallel size.
    #[arg(long, default_value_t = 2)]
    pub(crate) tp: u32,
    /// Pipeline-parallel size.
    #[arg(long, default_value_t = 1)]
    pub(crate) pp: u32,
    /// Data-parallel size [default: fills --gpus, else 32].
    #[arg(long)]
    pub(crate) dp: Option<u32>,
    /// Context-parallel size.
    #[arg(long, default_value_t = 1)]
    pub(crate) cp: u32,
    /// Expert-parallel size (MoE).
    #[arg(long, default_value_t = 1)]
    pub(crate) ep: u32,
    /// Virtual pipeline stages per rank (interleaved-1f1b).
    #[arg(long, default_value_t = 1)]
    pub(crate) vp: u32,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 1)]
    pub(crate) micro_batch: u32,
    /// Sequences per optimizer step.
    #[arg(long, default_value_t = 256)]
    pub(crate) global_batch: u32,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 8192)]
    pub(crate) seq: u32,
    /// ZeRO stage (3 = FSDP full shard).
    #[arg(long, default_value_t = 1)]
    pub(crate) zero: u8,
    /// Megatron sequence parallelism (needs tp > 1) [default: on when tp > 1].
    #[arg(long, value_parser = ["on", "off"])]
    pub(crate) sequence_parallel: Option<String>,
    /// Activation recomputation: none, selective or full.
    #[arg(long, default_value = "none", value_parser = ["none", "selective", "full"])]
    pub(crate) recompute: String,
    /// Pipeline schedule: gpipe, 1f1b, interleaved-1f1b or zb-h1.
    #[arg(long, default_value = "1f1b")]
    pub(crate) schedule: String,
    /// Training precision: bf16, fp16 or fp8.
    #[arg(long, default_value = "bf16", value_parser = ["bf16", "fp16", "fp8"])]
    pub(crate) precision: String,
    /// Attention without FlashAttention (stores the score matrix; runs before 2022).
    #[arg(long)]
    pub(crate) no_flash: bool,
    /// Reduce gradients after the backward instead of overlapping buckets with it (Megatron-LM 2021).
    #[arg(long)]
    pub(crate) no_overlap: bool,
    /// Pipeline sends and receives block the compute stream on every schedule (Megatron-LM 2021); without
    /// sequence parallelism the received activation is then rebuilt by an all-gather over the TP group (2021's
    /// scatter/gather) [default: Megatron-LM's choice, blocking except for interleaved-1f1b].
    #[arg(long, conflicts_with = "overlap_p2p")]
    pub(crate) no_overlap_p2p: bool,
    /// Pipeline sends and receives overlap compute on their own streams on every schedule [default:
    /// Megatron-LM's choice, overlapped only for interleaved-1f1b].
    #[arg(long)]
    pub(crate) overlap_p2p: bool,
    /// Kernel stack: fused (Megatron, Transformer Engine) or eager (PyTorch modules, e.g. llm-foundry).
    #[arg(long, default_value = "fused", value_parser = ["fused", "eager"])]
    pub(crate) kernels: String,
    /// Layers per pipeline stage for an uneven split, e.g. 6,8,8,8 (must sum to the model's layers).
    #[arg(long, value_delimiter = ',')]
    pub(crate) stage_layers: Option<Vec<u32>>,
    /// Rank numbering, fastest first: tp-cp-ep-dp-pp (Megatron) or tp-cp-ep-pp-dp.
    #[arg(long, default_value = "tp-cp-ep-dp-pp")]
    pub(crate) rank_order: String,
}

impl PlanArgs {
    /// The plan these flags describe, for a job of `gpus` GPUs when given.
    pub(crate) fn to_plan(&self, gpus: Option<u32>) -> anyhow::Result<ParallelPlan> {
        let fixed = self.tp * self.pp * self.cp;
        let dp = match (self.dp, gpus) {
            (Some(dp), _) => dp,
            (None, Some(g)) => {
                if fixed == 0 || g % fixed != 0 {
                    return Err(bad_input(format!(
                        "--gpus {g} is not divisible by tp·pp·cp = {}·{}·{} = {fixed}",
                        self.tp, self.pp, self.cp
                    )));
                }
                g / fixed
            }
            (None, None) => 32,
        };
        let recompute = match self.recompute.as_str() {
            "selective" => schedule::Recompute::Selective,
            "full" => schedule::Recompute::Full,
            _ => schedule::Recompute::None,
        };
        let precision = match self.precision.as_str() {
            "fp16" => model::Precision::Fp16,
            "fp8" => model::Precision::Fp8,
            _ => model::Precision::Bf16,
        };
        let schedule: PipelineSchedule = self.schedule.parse().map_err(bad_input)?;
        let rank_order: RankOrder = self.rank_order.parse().map_err(bad_input)?;
        let schedule = if self.vp > 1 && schedule == PipelineSchedule::OneFOneB {
            PipelineSchedule::Interleaved
        } else {
            schedule
        };
        Ok(ParallelPlan {
            tp: self.tp,
            pp: self.pp,
            dp,
            cp: self.cp,
            ep: self.ep,
            vp: self.vp,
            micro_batch: self.micro_batch,
            global_batch: self.global_batch,
            seq_len: self.seq,
            zero_stage: self.zero,
            sequence_parallel: match self.sequence_parallel.as_deref() {
                Some("on") => true,
                Some(_) => false,
                None => self.tp > 1,
            },
            recompute,
            schedule,
            overlap_grad_reduce: !self.no_overlap,
            overlap_p2p_comm: p2p_overlap(self.overlap_p2p, self.no_overlap_p2p),
            precision,
            flash_attention: !self.no_flash,
            rank_order,
            kernels: if self.kernels == "eager" {
                schedule::KernelStack::Eager
            } else {
                schedule::KernelStack::Fused
            },
            stage_layers: self.stage_layers.clone(),
            ..ParallelPlan::default()
        })
    }
}

/// Runs `choir sim`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let spec = load_model(&args.model)?;
    let plan = match &args.plan_file {
        Some(path) => {
            let text = crate::output::read_text(path)?;
            toml::from_str::<ParallelPlan>(&text)
                .map_err(|e| bad_input(format!("{}: {e}", path.display())))?
        }
        None => args.plan.to_plan(args.gpus)?,
    };
    plan.validate(&spec, args.gpus.map(u64::from)).map_err(bad_input)?;
    let cluster_spec = load_cluster_spec(&args.cluster)?;
    let gpus = args.gpus.unwrap_or(plan.gpus() as u32);
    let cluster = topology::Cluster::build(&cluster_spec, gpus).map_err(bad_input)?;
    let program = schedule::build(&spec, &plan).map_err(bad_input)?;
    let config = sim::SimConfig {
        ranks: if args.ranks == "unique" { sim::RankMode::Unique } else { sim::RankMode::All },
        record_all: args.trace.is_some() && gpus <= 256,
        network: if args.network == "flow" { sim::NetworkModel::Flow } else { sim::NetworkModel::Analytical },
        ..sim::SimConfig::default()
    };
    let result = sim::simulate(&spec, &program, &cluster, &config).map_err(|e| match e {
        sim::SimError::Mismatch(_) => bad_input(e),
        other => other.into(),
    })?;
    if let Some(path) = &args.trace {
        let trace = crate::trace::chrome_trace(&program, &result.timeline, cluster.gpus_per_node());
        write_atomic(path, trace.as_bytes()).context("writing the trace")?;
    }
    if let Some(path) = &args.svg {
        let svg = crate::trace::pipeline_svg(&program, &result.timeline, result.report.step_time_s);
        write_atomic(path, svg.as_bytes()).context("writing the pipeline picture")?;
    }
    if args.json {
        return print_json(&result.report);
    }
    print!("{}", render(&result.report));
    if let Some(path) = &args.trace {
        println!("trace: {} (open in https://ui.perfetto.dev)", path.display());
    }
    if let Some(path) = &args.svg {
        println!("pipeline picture: {}", path.display());
    }
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// The human-readable report.
pub(crate) fn render(r: &sim::Report) -> String {
    use std::fmt::Write;
    use units::{format_bytes, format_bytes_binary, format_duration, format_rate};
    let p = &r.plan;
    let mut s = String::new();
    let _ = writeln!(s, "{} on {} × {}", r.model, r.gpus, r.gpu);
    let _ = writeln!(
        s,
        "plan: tp {} · pp {} · dp {} · cp {} (ep {}, vp {}), micro-batch {}, global batch {} × {} tokens, zero {}, \
         {}{}, recompute {:?}, {:?}",
        p.tp,
        p.pp,
        p.dp,
        p.cp,
        p.ep,
        p.vp,
        p.micro_batch,
        p.global_batch,
        p.seq_len,
        p.zero_stage,
        p.schedule.name(),
        if p.sequence_parallel { ", sequence parallel" } else { "" },
        p.recompute,
        p.precision,
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "step time         {}", format_duration(r.step_time_s));
    let _ = writeln!(s, "throughput        {}", format_rate(r.tokens_per_s, "tokens/s"));
    let _ = writeln!(s, "model FLOP/s/GPU  {}", format_rate(r.model_tflops_per_gpu * 1e12, "FLOP/s"));
    let _ = writeln!(s, "MFU               {}   (HFU {})", pct(r.mfu), pct(r.hfu));
    let _ = writeln!(s, "                  MFU counts {}", r.mfu_convention);
    let _ = writeln!(s, "pipeline bubble   {} of the step (worst stage)", pct(r.bubble_fraction));
    let _ = writeln!(
        s,
        "peak memory       {} ({}) of {} per GPU: {}",
        format_bytes(r.memory_peak_bytes),
        format_bytes_binary(r.memory_peak_bytes),
        format_bytes(r.hbm_bytes),
        if r.fits_in_memory { "fits" } else { "DOES NOT FIT" }
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "where the time goes (slowest stage):");
    for (k, v) in &r.breakdown {
        if *v > 0.0 {
            let _ = writeln!(s, "  {k:<16} {:>12}  {:>6}", format_duration(*v), pct(v / r.step_time_s));
        }
    }
    let kernels: Vec<String> = r
        .compute_by_kernel_s
        .iter()
        .filter(|(_, v)| **v > 0.0)
        .map(|(k, v)| format!("{k} {}", format_duration(*v)))
        .collect();
    if !kernels.is_empty() {
        let _ = writeln!(s, "  compute by kernel class: {}", kernels.join(", "));
    }
    let cp = &r.critical_path;
    let parts: Vec<String> = cp
        .seconds
        .iter()
        .filter(|(_, v)| **v > 0.0)
        .map(|(k, v)| format!("{k} {} ({})", format_duration(*v), pct(v / r.step_time_s)))
        .collect();
    let _ = writeln!(
        s,
        "critical path ({} ops across {} stage(s)): {}",
        cp.ops,
        cp.stages_crossed,
        parts.join(", ")
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:>5} {:>6} {:>12} {:>9} {:>12} {:>10} {:>10} {:>10} {:>10}",
        "stage", "layers", "compute", "bubble", "exposed comm", "weights", "grads", "optimizer", "activ."
    );
    for st in &r.stages {
        let comm: f64 = st.exposed_comm_s.values().sum();
        let m = &st.memory;
        let _ = writeln!(
            s,
            "{:>5} {:>6} {:>12} {:>9} {:>12} {:>10} {:>10} {:>10} {:>10}",
            st.stage,
            st.layers,
            format_duration(st.compute_s),
            pct(st.bubble_fraction),
            format_duration(comm),
            format_bytes(m.weights_bytes),
            format_bytes(m.grads_bytes),
            format_bytes(m.optimizer_bytes),
            format_bytes(m.activations_peak_bytes),
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "simulated {} ranks, {} events, {} ops per replica",
        r.sim.simulated_ranks, r.sim.events, r.sim.ops_per_replica
    );
    s
}

/// The plan's `overlap_p2p_comm` from `--overlap-p2p` / `--no-overlap-p2p` (`None`: the framework default).
pub(crate) fn p2p_overlap(overlap: bool, no_overlap: bool) -> Option<bool> {
    match (overlap, no_overlap) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}
