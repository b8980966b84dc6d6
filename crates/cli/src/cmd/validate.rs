//! `choir validate`: simulate every published case and compare with what was measured.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use toml::Value;

use crate::exit::bad_input;
use crate::output::{print_json, read_text};

/// The public validation set, embedded (a verbatim copy of shared/validation/public.toml).
const PUBLIC_TOML: &str = include_str!("../../../../tests/data/public.toml");

/// Flags of `choir validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Cases file in the schema of shared/validation/public.toml [default: the embedded public set].
    #[arg(long, value_name = "FILE")]
    pub(crate) cases: Option<PathBuf>,
    /// Compute calibration TOML replacing the embedded crates/sim/data/compute.toml (same schema).
    #[arg(long, value_name = "FILE")]
    pub(crate) calibration: Option<PathBuf>,
    /// Only cases whose id or group contains this text.
    #[arg(long)]
    pub(crate) filter: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Serialize)]
struct CaseResult {
    id: String,
    group: String,
    kind: String,
    /// Predicted step time (s) or model-state memory (GB).
    predicted: f64,
    /// Measured value, same unit.
    measured: f64,
    /// (predicted − measured) / measured.
    error: f64,
    /// Assumptions made where the source is silent.
    assumptions: Vec<String>,
    /// GPU seconds by kernel class, predicted and measured, where the case was profiled
    /// (`measured.kernels`: gemm, attention, other = choir's memory-bound kernels, optimizer).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    kernels: BTreeMap<String, KernelClass>,
}

#[derive(Debug, Serialize)]
struct KernelClass {
    predicted_s: f64,
    measured_s: f64,
}

/// The profiled kernel classes: (the cases file's name, choir's name in `compute_by_kernel_s`).
const KERNEL_CLASSES: [(&str, &str); 4] =
    [("gemm", "gemm"), ("attention", "attention"), ("other", "memory"), ("optimizer", "optimizer")];

#[derive(Debug, Serialize)]
struct Skipped {
    id: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct GroupStats {
    cases: usize,
    mape: f64,
    max_abs_error: f64,
}

#[derive(Debug, Serialize)]
struct Validation {
    cases: Vec<CaseResult>,
    skipped: Vec<Skipped>,
    mape: f64,
    max_abs_error: f64,
    by_group: BTreeMap<String, GroupStats>,
}

/// Runs `choir validate`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let (text, origin) = match &args.cases {
        Some(p) => (read_text(p)?, p.display().to_string()),
        None => (PUBLIC_TOML.to_owned(), "the embedded public validation set".to_owned()),
    };
    let doc: Value = toml::from_str(&text).map_err(|e| bad_input(format!("{origin}: {e}")))?;
    let cases = doc.get("case").and_then(Value::as_array).cloned().unwrap_or_default();
    let calibration = args.calibration.as_deref().map(read_text).transpose()?;
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    for case in &cases {
        let id = case.get("id").and_then(Value::as_str).unwrap_or("?").to_owned();
        let group = case.get("group").and_then(Value::as_str).unwrap_or("").to_owned();
        if let Some(f) = &args.filter
            && !id.contains(f.as_str())
            && !group.contains(f.as_str())
        {
            continue;
        }
        match evaluate(case, calibration.as_deref()) {
            Ok(r) => results.push(r),
            Err(e) => skipped.push(Skipped { id, reason: format!("{e:#}") }),
        }
    }
    let mut by_group: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in &results {
        by_group.entry(r.group.clone()).or_default().push(r.error.abs());
    }
    let stats = |v: &[f64]| -> (f64, f64) {
        if v.is_empty() {
            (0.0, 0.0)
        } else {
            (v.iter().sum::<f64>() / v.len() as f64, v.iter().copied().fold(0.0, f64::max))
        }
    };
    let all: Vec<f64> = results.iter().map(|r| r.error.abs()).collect();
    let (mape, max_abs_error) = stats(&all);
    let report = Validation {
        by_group: by_group
            .iter()
            .map(|(g, v)| {
                let (m, x) = stats(v);
                (g.clone(), GroupStats { cases: v.len(), mape: m, max_abs_error: x })
            })
            .collect(),
        cases: results,
        skipped,
        mape,
        max_abs_error,
    };
    if args.json {
        return print_json(&report);
    }
    println!("{:<58} {:>10} {:>10} {:>8}", "case", "predicted", "measured", "error");
    for r in &report.cases {
        let unit = if r.kind == "memory" { "GB" } else { "s" };
        println!(
            "{:<58} {:>8.3} {unit:<1} {:>8.3} {unit:<1} {:>+7.1}%",
            truncate(&r.id, 58),
            r.predicted,
            r.measured,
            r.error * 100.0
        );
    }
    println!();
    println!("{:<40} {:>6} {:>8} {:>10}", "group", "cases", "MAPE", "worst");
    for (g, s) in &report.by_group {
        println!("{:<40} {:>6} {:>7.1}% {:>9.1}%", g, s.cases, s.mape * 100.0, s.max_abs_error * 100.0);
    }
    println!(
        "{:<40} {:>6} {:>7.1}% {:>9.1}%",
        "all",
        report.cases.len(),
        report.mape * 100.0,
        report.max_abs_error * 100.0
    );
    let profiled: Vec<&CaseResult> = report.cases.iter().filter(|r| !r.kernels.is_empty()).collect();
    if !profiled.is_empty() {
        println!(
            "\nGPU seconds by kernel class, predicted / measured (profiled cases; other = memory-bound kernels)"
        );
        print!("{:<58}", "case");
        for (theirs, _) in KERNEL_CLASSES {
            print!(" {theirs:>17}");
        }
        println!();
        for r in profiled {
            print!("{:<58}", truncate(&r.id, 58));
            for (theirs, _) in KERNEL_CLASSES {
                let k = &r.kernels[theirs];
                print!(" {:>17}", format!("{:.3} / {:.3}", k.predicted_s, k.measured_s));
            }
            println!();
        }
    }
    if !report.skipped.is_empty() {
        println!("\nnot simulated ({}):", report.skipped.len());
        for s in &report.skipped {
            println!("  {}: {}", s.id, s.reason);
        }
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn int(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_integer).map(|x| x as u64)
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64)))
}

fn need<T>(x: Option<T>, what: &str) -> anyhow::Result<T> {
    x.ok_or_else(|| anyhow::anyhow!("the case has no {what}"))
}

/// Simulates (or, for memory cases, computes) one case.
fn evaluate(case: &Value, calibration: Option<&str>) -> anyhow::Result<CaseResult> {
    let id = case.get("id").and_then(Value::as_str).unwrap_or("?").to_owned();
    let group = case.get("group").and_then(Value::as_str).unwrap_or("").to_owned();
    let kind = case.get("kind").and_then(Value::as_str).unwrap_or("step").to_owned();
    let measured_table = need(case.get("measured"), "measured table")?;
    let parallel = need(case.get("parallel"), "parallel table")?;
    let precision = match case.get("precision").and_then(Value::as_str) {
        Some("fp16") => model::Precision::Fp16,
        Some("fp8") => model::Precision::Fp8,
        _ => model::Precision::Bf16,
    };
    let mut assumptions = Vec::new();
    if kind == "memory" {
        // Model-state memory per GPU: ZeRO's 2Ψ + 2Ψ + 12Ψ, sharded by stage (Rajbhandari et al. 2020 §3).
        let m = need(case.get("model"), "model table")?;
        let params = need(num(m, "params_billion"), "model.params_billion")? * 1e9;
        let dp = need(int(parallel, "dp"), "parallel.dp")?;
        let zero = int(parallel, "zero_stage").unwrap_or(0) as u8;
        let state = model::state_bytes(precision, precision, model::Optimizer::Adam);
        let (w, g, o) = model::model_state_bytes(params, state, zero, dp);
        let predicted = (w + g + o) / 1e9;
        let measured = need(
            num(measured_table, "model_state_memory_gb_per_gpu"),
            "measured.model_state_memory_gb_per_gpu",
        )?;
        return Ok(CaseResult {
            id,
            group,
            kind,
            predicted,
            measured,
            error: predicted / measured - 1.0,
            assumptions,
            kernels: BTreeMap::new(),
        });
    }
    let measured = need(num(measured_table, "step_time_s"), "measured.step_time_s")?;
    let m = need(case.get("model"), "model table")?;
    let gated = m.get("gated_mlp").and_then(Value::as_bool).unwrap_or(false);
    let mut spec = model::preset(if gated { "llama3-8b" } else { "gpt3-175b" })?;
    spec.name = m.get("name").and_then(Value::as_str).unwrap_or(&id).to_owned();
    spec.n_layers = need(int(m, "num_layers"), "model.num_layers")?;
    spec.hidden = need(int(m, "hidden_size"), "model.hidden_size")?;
    spec.n_heads = need(int(m, "num_heads"), "model.num_heads")?;
    spec.n_kv_heads = int(m, "num_kv_heads").unwrap_or(spec.n_heads);
    spec.head_dim = int(m, "head_dim").unwrap_or(spec.hidden / spec.n_heads);
    spec.ffn_hidden = need(int(m, "ffn_hidden_size"), "model.ffn_hidden_size")?;
    spec.vocab = need(int(m, "vocab_size"), "model.vocab_size")?;
    spec.seq_len = need(int(m, "seq_len"), "model.seq_len")?;
    spec.tied_embeddings = false;
    let gpus = need(int(case, "num_gpus"), "num_gpus")? as u32;
    let framework = case.get("framework").and_then(Value::as_str).unwrap_or("other");
    let vp = int(parallel, "vp").unwrap_or(1) as u32;
    let micro_batch = match int(parallel, "micro_batch") {
        Some(mb) => mb as u32,
        None => {
            assumptions.push("micro_batch not given: 1".to_owned());
            1
        }
    };
    let recompute = match parallel.get("recompute").and_then(Value::as_str) {
        Some("full") => schedule::Recompute::Full,
        Some("selective") => schedule::Recompute::Selective,
        _ => schedule::Recompute::None,
    };
    // What each framework overlaps and fuses, as recorded in DESIGN.md's accuracy lessons: Megatron-LM
    // before Megatron-Core had no FlashAttention and reduced gradients after the backward, in fp16 for fp16.
    let legacy = framework == "megatron-lm";
    // Eager PyTorch modules (llm-foundry, or plain PyTorch with Hugging Face models): unfused norms and
    // element-wise kernels, gradients reduced in the weights' precision.
    let eager = framework == "llm-foundry" || framework == "pytorch-eager";
    let plan = schedule::ParallelPlan {
        tp: need(int(parallel, "tp"), "parallel.tp")? as u32,
        pp: need(int(parallel, "pp"), "parallel.pp")? as u32,
        dp: need(int(parallel, "dp"), "parallel.dp")? as u32,
        cp: int(parallel, "cp").unwrap_or(1) as u32,
        ep: int(parallel, "ep").unwrap_or(1) as u32,
        vp,
        micro_batch,
        global_batch: need(int(parallel, "global_batch"), "parallel.global_batch")? as u32,
        seq_len: spec.seq_len as u32,
        zero_stage: int(parallel, "zero_stage").unwrap_or(0) as u8,
        sequence_parallel: parallel.get("sequence_parallel").and_then(Value::as_bool).unwrap_or(false),
        recompute,
        schedule: if vp > 1 {
            schedule::PipelineSchedule::Interleaved
        } else {
            schedule::PipelineSchedule::OneFOneB
        },
        overlap_grad_reduce: !legacy,
        precision,
        flash_attention: !legacy,
        grad_reduce_in_fp32: !legacy && !eager,
        overlap_param_gather: framework == "megatron-core" || framework == "nemo",
        // Megatron-LM's pipeline sends and receives blocked the compute stream on every schedule
        // (p2p_communication.py, batch_isend_irecv + wait + synchronize, April 2021); later frameworks get
        // their default (overlapped only for the interleaved schedule).
        overlap_p2p_comm: if legacy { Some(false) } else { None },
        kernels: if eager { schedule::KernelStack::Eager } else { schedule::KernelStack::Fused },
        ..schedule::ParallelPlan::default()
    };
    plan.validate(&spec, Some(u64::from(gpus)))?;
    let gpu = topology::catalog::gpu(need(case.get("gpu").and_then(Value::as_str), "gpu")?)?;
    let base = if gpu.architecture == "hopper" || gpu.architecture == "blackwell" {
        "dgx-h100-superpod"
    } else {
        "dgx-a100-superpod"
    };
    let mut cluster_spec = topology::preset(base)?;
    let per_node = int(case, "gpus_per_node").unwrap_or(8) as u32;
    cluster_spec.node.gpu = gpu.clone();
    cluster_spec.node.gpus_per_node = per_node;
    cluster_spec.node.intra.bandwidth_bytes_per_s = gpu.nvlink_bytes_per_s;
    cluster_spec.node.intra.nvls = gpu.nvls;
    if let Some(gbps) = num(case, "nic_gbps_per_gpu") {
        cluster_spec.node.nics_per_node = per_node;
        cluster_spec.node.nic.bandwidth_bytes_per_s = gbps * 1e9 / 8.0;
    } else {
        assumptions.push(format!("NIC rate not given: the {base} preset's"));
    }
    let cluster = topology::Cluster::build(&cluster_spec, gpus.max(per_node))?;
    let program = schedule::build(&spec, &plan)?;
    let config = sim::SimConfig {
        ranks: sim::RankMode::Unique,
        calibration: calibration.map(str::to_owned),
        ..sim::SimConfig::default()
    };
    let result = sim::simulate(&spec, &program, &cluster, &config)?;
    let predicted = result.report.step_time_s;
    let mut kernels = BTreeMap::new();
    if let Some(k) = measured_table.get("kernels") {
        for (theirs, ours) in KERNEL_CLASSES {
            let measured_s = need(num(k, &format!("{theirs}_s")), &format!("measured.kernels.{theirs}_s"))?;
            let predicted_s = result.report.compute_by_kernel_s.get(ours).copied().unwrap_or(0.0);
            kernels.insert(theirs.to_owned(), KernelClass { predicted_s, measured_s });
        }
    }
    Ok(CaseResult {
        id,
        group,
        kind,
        predicted,
        measured,
        error: predicted / measured - 1.0,
        assumptions,
        kernels,
    })
}
