//! `choir plan`: search every valid parallel plan for a model on a cluster and rank them by simulated step time.

mod svg;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use schedule::{PipelineSchedule, Recompute};
use serde::Serialize;
use units::{format_bytes, format_count, format_duration};

use crate::exit::bad_input;
use crate::inputs::{load_cluster_spec, load_model};
use crate::output::{print_json, write_atomic};

/// Flags of `choir plan`. With none, it searches llama3-8b on 64 H100 GPUs with a global batch of 256.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Model preset (see `choir presets`) or a Hugging Face config.json.
    #[arg(long, default_value = "llama3-8b")]
    pub(crate) model: String,
    /// Cluster preset (see `choir topology --list`) or a cluster TOML file.
    #[arg(long, default_value = "dgx-h100-superpod")]
    pub(crate) cluster: String,
    /// GPUs every plan must use.
    #[arg(long, default_value_t = 64)]
    pub(crate) gpus: u32,
    /// Sequences per optimizer step.
    #[arg(long, default_value_t = 256)]
    pub(crate) global_batch: u32,
    /// Tokens per sequence [default: the model's context length].
    #[arg(long)]
    pub(crate) seq: Option<u32>,
    /// How many of the best plans to show (and to rank exactly).
    #[arg(long, default_value_t = 10)]
    pub(crate) top: usize,
    /// Network model: `analytical` (NCCL's cost model, each collective alone) searches and ranks; `flow` then
    /// re-simulates the analytical top --top with every rank and link contention between concurrent
    /// collectives (seconds per plan at scale) and ranks them by that.
    #[arg(long, default_value = "analytical", value_parser = ["analytical", "flow"])]
    pub(crate) network: String,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Plot every simulated plan (step time vs peak memory) with the frontier, as SVG.
    #[arg(long, value_name = "FILE")]
    pub(crate) svg: Option<PathBuf>,
    /// Simulate every plan that fits (no dominance skipping, no step-time bound cut-off).
    #[arg(long)]
    pub(crate) exhaustive: bool,
    /// Memory per GPU a plan may use, e.g. `75G` [default: the GPU's HBM].
    #[arg(long, value_name = "BYTES")]
    pub(crate) memory_limit: Option<String>,
    /// Only these tensor-parallel sizes (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub(crate) tp: Option<Vec<u32>>,
    /// Only these pipeline-parallel sizes.
    #[arg(long, value_delimiter = ',')]
    pub(crate) pp: Option<Vec<u32>>,
    /// Only these context-parallel sizes [default: any that leaves each rank at least 1,024 tokens].
    #[arg(long, value_delimiter = ',')]
    pub(crate) cp: Option<Vec<u32>>,
    /// Only these expert-parallel sizes (MoE models).
    #[arg(long, value_delimiter = ',')]
    pub(crate) ep: Option<Vec<u32>>,
    /// Only these virtual-stage counts for interleaved-1f1b.
    #[arg(long, value_delimiter = ',')]
    pub(crate) vp: Option<Vec<u32>>,
    /// Only these micro-batch sizes [default: every divisor up to --max-micro-batch].
    #[arg(long, value_delimiter = ',')]
    pub(crate) micro_batch: Option<Vec<u32>>,
    /// Largest micro-batch tried when --micro-batch is not given.
    #[arg(long, default_value_t = 8)]
    pub(crate) max_micro_batch: u32,
    /// ZeRO stages to try (3 = FSDP; 2 and 3 only without pipelining).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3")]
    pub(crate) zero: Vec<u8>,
    /// Recomputation settings to try.
    #[arg(long, value_delimiter = ',', default_value = "none,selective,full")]
    pub(crate) recompute: Vec<String>,
    /// Pipeline schedules to try.
    #[arg(long, value_delimiter = ',', default_value = "gpipe,1f1b,interleaved-1f1b,zb-h1")]
    pub(crate) schedule: Vec<String>,
    /// Training precision: bf16, fp16 or fp8.
    #[arg(long, default_value = "bf16", value_parser = ["bf16", "fp16", "fp8"])]
    pub(crate) precision: String,
    /// Attention without FlashAttention (runs before 2022).
    #[arg(long)]
    pub(crate) no_flash: bool,
    /// Reduce gradients after the backward instead of overlapping them (Megatron-LM 2021).
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
    /// Reduce gradients in the training precision rather than fp32 (Megatron-LM 2021 with fp16).
    #[arg(long)]
    pub(crate) no_fp32_grad_reduce: bool,
    /// Allow TP groups larger than a node (split across nodes).
    #[arg(long)]
    pub(crate) allow_cross_node_tp: bool,
}

/// Runs `choir plan`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let flow = args.network == "flow";
    let spec = load_model(&args.model)?;
    let cluster_spec = load_cluster_spec(&args.cluster)?;
    let config = search_config(&args, &spec)?;
    let cluster = topology::Cluster::build(&cluster_spec, args.gpus).map_err(bad_input)?;
    let bar = progress_bar(!args.json && std::io::stderr().is_terminal());
    let started = Instant::now();
    let on_progress = |p: search::Progress| {
        if let Some(bar) = &bar {
            let (msg, done, total) = match p {
                search::Progress::Bounding { done, total } => ("bounding shapes", done, total),
                search::Progress::Simulating { done, total } => ("simulating", done, total),
            };
            bar.set_message(msg);
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let result = search::search(&spec, &cluster, &config, &on_progress);
    let classify = |e: search::SearchError| match e {
        search::SearchError::Plan(_) | search::SearchError::Simulation(_) => anyhow::Error::new(e),
        _ => bad_input(e),
    };
    let mut result = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            return Err(classify(e));
        }
    };
    if flow {
        let on_flow = |p: search::Progress| {
            if let (Some(bar), search::Progress::Simulating { done, total }) = (&bar, p) {
                bar.set_message("flow model");
                bar.set_length(total);
                bar.set_position(done);
            }
        };
        search::refine_with_flow(&spec, &cluster, &mut result, args.top, &on_flow).map_err(classify)?;
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let mut summary = Summary::of(&spec, &cluster, &config, &result, args.top);
    summary.network = if flow { "flow" } else { "analytical" };
    if let Some(path) = &args.svg {
        let picture = svg::plot(&summary.title(), &result);
        write_atomic(path, picture.as_bytes()).context("writing the plan picture")?;
    }
    if args.json {
        return print_json(&summary);
    }
    print!("{}", render(&summary, &result, elapsed_s));
    if let Some(path) = &args.svg {
        println!("plot: {}", path.display());
    }
    Ok(())
}

fn progress_bar(show: bool) -> Option<indicatif::ProgressBar> {
    if !show {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    let style = indicatif::ProgressStyle::with_template("{msg:>16} [{bar:40}] {pos}/{len} ({elapsed})")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

fn parse_recompute(s: &str) -> anyhow::Result<Recompute> {
    match s {
        "none" => Ok(Recompute::None),
        "selective" => Ok(Recompute::Selective),
        "full" => Ok(Recompute::Full),
        _ => Err(bad_input(format!("--recompute {s}: expected none, selective or full"))),
    }
}

/// The search configuration the flags describe.
fn search_config(args: &Args, spec: &model::ModelSpec) -> anyhow::Result<search::SearchConfig> {
    let seq = args.seq.unwrap_or(spec.seq_len as u32);
    if args.global_batch == 0 || seq == 0 {
        return Err(bad_input("--global-batch and --seq must be at least 1"));
    }
    if args.top == 0 {
        return Err(bad_input("--top 0: expected at least 1 plan to show"));
    }
    if let Some(z) = args.zero.iter().find(|&&z| z > 3) {
        return Err(bad_input(format!("--zero {z}: expected 0, 1, 2 or 3")));
    }
    let mut space = search::SearchSpace::new(args.gpus, args.global_batch, seq);
    space.base.precision = match args.precision.as_str() {
        "fp16" => model::Precision::Fp16,
        "fp8" => model::Precision::Fp8,
        _ => model::Precision::Bf16,
    };
    space.base.flash_attention = !args.no_flash;
    space.base.overlap_grad_reduce = !args.no_overlap;
    space.base.overlap_p2p_comm = super::sim::p2p_overlap(args.overlap_p2p, args.no_overlap_p2p);
    space.base.grad_reduce_in_fp32 = !args.no_fp32_grad_reduce;
    space.tp = args.tp.clone();
    space.pp = args.pp.clone();
    space.cp = args.cp.clone();
    space.ep = args.ep.clone();
    space.vp = args.vp.clone();
    space.micro_batch = args.micro_batch.clone();
    space.max_micro_batch = args.max_micro_batch;
    space.zero_stages = args.zero.clone();
    space.recompute = args.recompute.iter().map(|s| parse_recompute(s)).collect::<anyhow::Result<_>>()?;
    space.schedules = args
        .schedule
        .iter()
        .map(|s| s.parse::<PipelineSchedule>().map_err(bad_input))
        .collect::<anyhow::Result<_>>()?;
    space.tp_within_node = !args.allow_cross_node_tp;
    let memory_limit_bytes = match &args.memory_limit {
        Some(text) => {
            Some(units::parse_bytes(text).map_err(|e| bad_input(format!("--memory-limit: {e}")))? as f64)
        }
        None => None,
    };
    Ok(search::SearchConfig { space, top: args.top, exhaustive: args.exhaustive, memory_limit_bytes })
}

/// One ranked plan as printed and as JSON.
#[derive(Debug, Serialize)]
struct Ranked {
    rank: usize,
    tp: u32,
    pp: u32,
    dp: u32,
    cp: u32,
    ep: u32,
    vp: u32,
    micro_batch: u32,
    zero_stage: u8,
    recompute: &'static str,
    schedule: &'static str,
    family: String,
    step_time_s: f64,
    /// The analytical model's step time (what the search ranked by; equal to `step_time_s` unless `--network
    /// flow` re-simulated the plan).
    analytical_step_time_s: f64,
    tokens_per_s: f64,
    mfu: f64,
    memory_peak_bytes: f64,
    bubble_fraction: f64,
    exposed_comm_s: f64,
    limiters: Vec<search::Limiter>,
}

/// What `choir plan` reports.
#[derive(Debug, Serialize)]
struct Summary {
    model: String,
    gpu: String,
    gpus: u32,
    global_batch: u32,
    seq_len: u32,
    /// The network model of `best[]`'s step times: `analytical`, or `flow` (the analytical top re-ranked).
    network: &'static str,
    evaluated: u64,
    feasible: u64,
    pruned_memory: u64,
    simulated: u64,
    simulated_oom: u64,
    skipped_dominated: u64,
    skipped_bound: u64,
    shapes: u64,
    rejected_combinations: u64,
    memory_limit_bytes: f64,
    failed: Vec<(String, String)>,
    best: Vec<Ranked>,
}

impl Summary {
    fn of(
        spec: &model::ModelSpec,
        cluster: &topology::Cluster,
        config: &search::SearchConfig,
        r: &search::SearchResult,
        top: usize,
    ) -> Summary {
        let best = r
            .ranked
            .iter()
            .take(top)
            .enumerate()
            .map(|(i, e)| {
                let p = &e.plan;
                Ranked {
                    rank: i + 1,
                    tp: p.tp,
                    pp: p.pp,
                    dp: p.dp,
                    cp: p.cp,
                    ep: p.ep,
                    vp: p.vp,
                    micro_batch: p.micro_batch,
                    zero_stage: p.zero_stage,
                    recompute: search::recompute_name(p.recompute),
                    schedule: p.schedule.name(),
                    family: search::family(p),
                    step_time_s: e.report.step_time_s,
                    analytical_step_time_s: e.analytical_step_time_s,
                    tokens_per_s: e.report.tokens_per_s,
                    mfu: e.report.mfu,
                    memory_peak_bytes: e.report.memory_peak_bytes,
                    bubble_fraction: e.report.bubble_fraction,
                    exposed_comm_s: e.report.exposed_comm_s.values().sum(),
                    limiters: search::limiters(&e.report),
                }
            })
            .collect();
        Summary {
            model: spec.name.clone(),
            gpu: cluster.gpu_spec().slug.clone(),
            gpus: config.space.gpus,
            global_batch: config.space.global_batch,
            seq_len: config.space.seq_len,
            network: "analytical",
            evaluated: r.evaluated,
            feasible: r.feasible,
            pruned_memory: r.pruned_memory,
            simulated: r.simulated,
            simulated_oom: r.simulated_oom,
            skipped_dominated: r.skipped_dominated,
            skipped_bound: r.skipped_bound,
            shapes: r.shapes,
            rejected_combinations: r.rejected.values().sum(),
            memory_limit_bytes: r.memory_limit_bytes,
            failed: r.failed.clone(),
            best,
        }
    }

    fn title(&self) -> String {
        format!(
            "{} on {} × {}, global batch {} × {} tokens",
            self.model, self.gpus, self.gpu, self.global_batch, self.seq_len
        )
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn count(n: u64) -> String {
    if n < 10_000 { n.to_string() } else { format_count(n as f64) }
}

/// The human-readable answer.
fn render(s: &Summary, r: &search::SearchResult, elapsed_s: f64) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "{}", s.title());
    let _ = writeln!(
        o,
        "{} valid plans in {} ({} combinations rejected by validation), {} shapes bounded:",
        count(s.evaluated),
        format_duration(elapsed_s),
        count(s.rejected_combinations),
        count(s.shapes)
    );
    let limit = format_bytes(s.memory_limit_bytes);
    let _ = writeln!(
        o,
        "  {:>7} pruned: closed-form memory above {limit} per GPU{}",
        count(s.pruned_memory),
        prune_reason(r)
    );
    let _ = writeln!(
        o,
        "  {:>7} skipped: a variant with less recomputation (or ZeRO-1 for ZeRO-2) fits and is never slower",
        count(s.skipped_dominated)
    );
    let _ = writeln!(
        o,
        "  {:>7} skipped: step-time lower bound above the {}th best simulated step",
        count(s.skipped_bound),
        s.best.len()
    );
    let _ = writeln!(
        o,
        "  {:>7} simulated, {} of them over {limit} in simulation",
        count(s.simulated),
        count(s.simulated_oom)
    );
    let _ = writeln!(o, "  {:>7} fit in memory (feasible)", count(s.feasible));
    if s.network == "flow" {
        let _ = writeln!(
            o,
            "  the top {} re-simulated with the flow model (every rank, link contention) and ranked by it; \
             `analytical` is the search's figure",
            s.best.len()
        );
    }
    if !s.failed.is_empty() {
        let _ = writeln!(
            o,
            "  {:>7} could not be simulated, e.g. {}: {}",
            s.failed.len(),
            s.failed[0].0,
            s.failed[0].1
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:>3} {:>3} {:>3} {:>4} {:>3} {:>3} {:>3} {:>3} {:>4} {:>9} {:>16} {:>10} {:>6} {:>9} {:>7} {:>10}",
        "#",
        "tp",
        "pp",
        "dp",
        "cp",
        "ep",
        "vp",
        "mb",
        "zero",
        "recompute",
        "schedule",
        "step",
        "MFU",
        "memory",
        "bubble",
        "exp. comm"
    );
    for b in &s.best {
        let _ = writeln!(
            o,
            "{:>3} {:>3} {:>3} {:>4} {:>3} {:>3} {:>3} {:>3} {:>4} {:>9} {:>16} {:>10} {:>6} {:>9} {:>7} {:>10}",
            b.rank,
            b.tp,
            b.pp,
            b.dp,
            b.cp,
            b.ep,
            b.vp,
            b.micro_batch,
            b.zero_stage,
            b.recompute,
            b.schedule,
            format_duration(b.step_time_s),
            pct(b.mfu),
            format_bytes(b.memory_peak_bytes),
            pct(b.bubble_fraction),
            format_duration(b.exposed_comm_s),
        );
        let analytical = if s.network == "flow" {
            format!("analytical {}; ", format_duration(b.analytical_step_time_s))
        } else {
            String::new()
        };
        let _ = writeln!(o, "      {analytical}{}", limiter_line(&b.limiters));
    }
    o
}

/// "limited by: PP bubble 18% (1.2 s); then TP communication exposed 0.4 s (6%)".
fn limiter_line(limiters: &[search::Limiter]) -> String {
    let one =
        |l: &search::Limiter| format!("{} {} ({})", l.label, format_duration(l.seconds), pct(l.fraction));
    match limiters {
        [] => "limited by compute alone".to_owned(),
        [a] => format!("limited by: {}", one(a)),
        [a, b, ..] => format!("limited by: {}; then {}", one(a), one(b)),
    }
}

/// Which memory term most often pushed the pruned plans over, in words.
fn prune_reason(r: &search::SearchResult) -> String {
    if r.pruned_memory == 0 {
        return String::new();
    }
    let mut terms: Vec<(&String, &u64)> = r.pruned_by_term.iter().collect();
    terms.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let parts: Vec<String> = terms.iter().map(|(t, n)| format!("{t} in {}", count(**n))).collect();
    format!(" (largest term: {})", parts.join(", "))
}
