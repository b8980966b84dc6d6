//! `choir model`: parameters, FLOPs and memory per GPU of a model given as a preset, a Hugging Face
//! `config.json`, or shape flags.

use std::path::PathBuf;

use anyhow::Context;

use crate::exit::bad_input;

#[path = "model_report.rs"]
mod report;

/// Flags of `choir model`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["preset", "config", "layers"])))]
pub(crate) struct Args {
    /// A preset name (see `choir presets`).
    #[arg(long)]
    preset: Option<String>,
    /// A Hugging Face config.json (Llama, Mistral, Mixtral, Qwen2, GPT-2, GPT-NeoX, DeepSeek-V2/V3).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Layers of a model given by flags.
    #[arg(long, requires_all = ["hidden", "heads"], help_heading = "Model by flags")]
    layers: Option<u64>,
    /// Hidden size (model width).
    #[arg(long, conflicts_with_all = ["preset", "config"], help_heading = "Model by flags")]
    hidden: Option<u64>,
    /// Attention heads.
    #[arg(long, conflicts_with_all = ["preset", "config"], help_heading = "Model by flags")]
    heads: Option<u64>,
    /// Key/value heads (GQA/MQA) [default: heads].
    #[arg(long, conflicts_with_all = ["preset", "config"], help_heading = "Model by flags")]
    kv_heads: Option<u64>,
    /// Head width [default: hidden / heads].
    #[arg(long, conflicts_with_all = ["preset", "config"], help_heading = "Model by flags")]
    head_dim: Option<u64>,
    /// MLP inner width [default: 4 × hidden].
    #[arg(long, conflicts_with_all = ["preset", "config"], help_heading = "Model by flags")]
    ffn: Option<u64>,
    /// Vocabulary size.
    #[arg(long, default_value_t = 50257, help_heading = "Model by flags")]
    vocab: u64,
    /// Architecture family: gpt = GELU MLP, learned positions, LayerNorm, biases, tied embeddings;
    /// llama = SwiGLU, rotary, RMSNorm, no biases, untied.
    #[arg(long, value_enum, default_value_t = Style::Gpt, help_heading = "Model by flags")]
    style: Style,
    /// Routed experts (makes the MLP a mixture of experts).
    #[arg(long, conflicts_with_all = ["preset", "config"], help_heading = "Model by flags")]
    experts: Option<u64>,
    /// Experts per token.
    #[arg(long, default_value_t = 2, help_heading = "Model by flags")]
    top_k: u64,
    /// Inner width of one expert [default: --ffn].
    #[arg(long, conflicts_with_all = ["preset", "config"], help_heading = "Model by flags")]
    expert_ffn: Option<u64>,
    /// Shared experts every token visits.
    #[arg(long, default_value_t = 0, help_heading = "Model by flags")]
    shared_experts: u64,
    /// Leading layers that keep a dense MLP.
    #[arg(long, default_value_t = 0, help_heading = "Model by flags")]
    dense_layers: u64,

    /// Training sequence length [default: the model's].
    #[arg(long, help_heading = "Run")]
    seq: Option<u64>,
    /// Global batch in sequences, for FLOPs per step [default: dp × micro-batch × pp].
    #[arg(long, help_heading = "Run")]
    global_batch: Option<u64>,
    /// Count the whole s×s attention core (PaLM's MFU convention) instead of the causal half.
    #[arg(long, help_heading = "Run")]
    no_causal_halving: bool,

    /// Tensor-parallel size.
    #[arg(long, help_heading = "Parallel plan (memory per GPU)")]
    tp: Option<u64>,
    /// Pipeline-parallel size.
    #[arg(long, help_heading = "Parallel plan (memory per GPU)")]
    pp: Option<u64>,
    /// Data-parallel size.
    #[arg(long, help_heading = "Parallel plan (memory per GPU)")]
    dp: Option<u64>,
    /// Context-parallel size.
    #[arg(long, help_heading = "Parallel plan (memory per GPU)")]
    cp: Option<u64>,
    /// Expert-parallel size.
    #[arg(long, help_heading = "Parallel plan (memory per GPU)")]
    ep: Option<u64>,
    /// ZeRO stage 0-3 (1 = distributed optimizer, 3 = FSDP full shard).
    #[arg(long, help_heading = "Parallel plan (memory per GPU)")]
    zero: Option<u8>,
    /// Sequences per micro-batch.
    #[arg(long, help_heading = "Parallel plan (memory per GPU)")]
    micro_batch: Option<u64>,
    /// Activation recomputation.
    #[arg(long, value_enum, help_heading = "Parallel plan (memory per GPU)")]
    recompute: Option<RecomputeArg>,
    /// Sequence parallelism (with TP).
    #[arg(long, help_heading = "Parallel plan (memory per GPU)")]
    sp: bool,
    /// Weight and activation precision.
    #[arg(long, value_enum, default_value_t = PrecisionArg::Bf16, help_heading = "Parallel plan (memory per GPU)")]
    precision: PrecisionArg,
    /// Gradient precision [default: --precision; Megatron keeps fp32 main grads].
    #[arg(long, value_enum, help_heading = "Parallel plan (memory per GPU)")]
    grad_precision: Option<PrecisionArg>,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Adam, help_heading = "Parallel plan (memory per GPU)")]
    optimizer: OptimizerArg,
    /// Store the s×s attention scores (no FlashAttention).
    #[arg(long, help_heading = "Parallel plan (memory per GPU)")]
    no_flash: bool,
    /// Store dropout masks (off in most current training).
    #[arg(long, help_heading = "Parallel plan (memory per GPU)")]
    dropout: bool,
    /// GPU whose memory the plan must fit (a topology catalog slug).
    #[arg(long, default_value = "h100-sxm-80gb", help_heading = "Parallel plan (memory per GPU)")]
    gpu: String,

    /// Print JSON instead of a report.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Style {
    Gpt,
    Llama,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RecomputeArg {
    None,
    Selective,
    Full,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PrecisionArg {
    Fp32,
    Fp16,
    Bf16,
    Fp8,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OptimizerArg {
    Adam,
    SgdMomentum,
    Sgd,
}

impl From<PrecisionArg> for model::Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::Fp32 => model::Precision::Fp32,
            PrecisionArg::Fp16 => model::Precision::Fp16,
            PrecisionArg::Bf16 => model::Precision::Bf16,
            PrecisionArg::Fp8 => model::Precision::Fp8,
        }
    }
}

/// Where the model came from, for the report's header.
pub(crate) struct Origin {
    kind: &'static str,
    detail: String,
}

/// Runs `choir model`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let (spec, origin) = build_spec(&args)?;
    let seq_len = args.seq.unwrap_or(spec.seq_len);
    if seq_len == 0 {
        return Err(bad_input("--seq 0: the sequence length must be at least 1"));
    }
    let plan = build_plan(&args, seq_len);
    let plan_given = plan.is_some();
    let plan = plan.unwrap_or(model::MemoryPlan { seq_len, ..model::MemoryPlan::default() });
    plan.validate(&spec).map_err(|e| bad_input(flag_message(&e)))?;
    let global_batch = match args.global_batch {
        Some(0) => return Err(bad_input("--global-batch 0: the global batch must be at least 1 sequence")),
        Some(b) => b,
        None => plan.dp * plan.micro_batch * plan.pp,
    };
    let micro_batches = global_batch / (plan.dp * plan.micro_batch);
    if plan_given && (micro_batches == 0 || global_batch % (plan.dp * plan.micro_batch) != 0) {
        return Err(bad_input(format!(
            "--global-batch {global_batch}: must be a multiple of dp × micro-batch ({})",
            plan.dp * plan.micro_batch
        )));
    }
    let plan = model::MemoryPlan { n_micro_batches: micro_batches.max(1), ..plan };
    let memory = if plan_given {
        let mem = model::memory_per_gpu(&spec, &plan).map_err(|e| bad_input(flag_message(&e)))?;
        let gpu = topology::catalog::gpu(&args.gpu).map_err(bad_input)?;
        Some((mem, gpu))
    } else {
        None
    };
    let causal = !args.no_causal_halving;
    let input =
        report::Input { spec: &spec, origin: &origin, seq_len, global_batch, causal, plan: &plan, memory };
    let out = report::compute(&input);
    if args.json { crate::output::print_json(&out) } else { report::print(&input, &out) }
}

/// A model error in terms of the flags the user typed: `--tp 3: must divide heads (32)`.
fn flag_message(err: &model::ModelError) -> String {
    let (field, value, expected) = match err {
        model::ModelError::BadShape { field, value, expected }
        | model::ModelError::BadPlan { field, value, expected } => (*field, *value, expected),
        other => return other.to_string(),
    };
    let flag = match field {
        "zero_stage" => "--zero",
        "micro_batch" => "--micro-batch",
        "micro_batches" => "--global-batch",
        "seq_len" => "--seq",
        "ffn_hidden" => "--ffn",
        "expert_ffn_hidden" | "shared_ffn_hidden" => "--expert-ffn",
        "first_dense_layers" => "--dense-layers",
        "experts" => "--experts",
        "top_k" => "--top-k",
        "kv_heads" => "--kv-heads",
        "head_dim" => "--head-dim",
        other => return format!("--{} {value}: {expected}", other.replace('_', "-")),
    };
    format!("{flag} {value}: {expected}")
}

fn build_spec(args: &Args) -> anyhow::Result<(model::ModelSpec, Origin)> {
    if let Some(name) = &args.preset {
        let spec = model::preset(name).map_err(bad_input)?;
        let info = model::presets().iter().find(|p| p.name == spec.name).context("preset without info")?;
        return Ok((spec, Origin { kind: "preset", detail: info.source.to_owned() }));
    }
    if let Some(path) = &args.config {
        let text = crate::output::read_text(path)?;
        let spec = model::from_hf_config(&text).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
        return Ok((spec, Origin { kind: "config", detail: path.display().to_string() }));
    }
    let spec = spec_from_flags(args).map_err(bad_input)?;
    Ok((spec, Origin { kind: "flags", detail: "built from --layers/--hidden/--heads".to_owned() }))
}

fn spec_from_flags(args: &Args) -> Result<model::ModelSpec, String> {
    let (layers, hidden, heads) = match (args.layers, args.hidden, args.heads) {
        (Some(l), Some(h), Some(a)) => (l, h, a),
        _ => return Err("--layers, --hidden and --heads are all needed to build a model by flags".to_owned()),
    };
    if layers == 0 {
        return Err("--layers 0: a model needs at least 1 layer".to_owned());
    }
    let head_dim = match args.head_dim {
        Some(d) => d,
        None if heads == 0 => return Err("--heads 0: a model needs at least 1 attention head".to_owned()),
        None => model::derive_head_dim(hidden, heads).map_err(|_| {
            format!("--hidden {hidden} is not divisible by --heads {heads}: head_dim = hidden / heads must be whole (or give --head-dim)")
        })?,
    };
    let ffn = args.ffn.unwrap_or(4 * hidden);
    let gpt = matches!(args.style, Style::Gpt);
    let moe = args.experts.map(|n_experts| model::MoeSpec {
        n_experts,
        top_k: args.top_k,
        expert_ffn_hidden: args.expert_ffn.unwrap_or(ffn),
        n_shared_experts: args.shared_experts,
        shared_ffn_hidden: args.expert_ffn.unwrap_or(ffn),
        first_dense_layers: args.dense_layers,
        router_bias: false,
    });
    let spec = model::ModelSpec {
        name: format!("custom-{layers}x{hidden}"),
        n_layers: layers,
        hidden,
        n_heads: heads,
        n_kv_heads: args.kv_heads.unwrap_or(heads),
        head_dim,
        ffn_hidden: ffn,
        mlp: if gpt { model::MlpKind::Plain } else { model::MlpKind::Gated },
        vocab: args.vocab,
        seq_len: args.seq.unwrap_or(2048),
        tied_embeddings: gpt,
        biases: if gpt { model::Biases::ALL } else { model::Biases::NONE },
        positions: if gpt { model::Positions::Learned } else { model::Positions::Rotary },
        norm: if gpt { model::NormKind::LayerNorm } else { model::NormKind::RmsNorm },
        moe,
        mla: None,
    };
    spec.validate().map_err(|e| flag_message(&e))?;
    Ok(spec)
}

/// The plan, when any plan flag is given.
fn build_plan(args: &Args, seq_len: u64) -> Option<model::MemoryPlan> {
    let given = args.tp.is_some()
        || args.pp.is_some()
        || args.dp.is_some()
        || args.cp.is_some()
        || args.ep.is_some()
        || args.zero.is_some()
        || args.micro_batch.is_some()
        || args.recompute.is_some()
        || args.sp;
    if !given {
        return None;
    }
    let precision = model::Precision::from(args.precision);
    Some(model::MemoryPlan {
        tp: args.tp.unwrap_or(1),
        pp: args.pp.unwrap_or(1),
        dp: args.dp.unwrap_or(1),
        cp: args.cp.unwrap_or(1),
        ep: args.ep.unwrap_or(1),
        zero_stage: args.zero.unwrap_or(0),
        micro_batch: args.micro_batch.unwrap_or(1),
        seq_len,
        n_micro_batches: 1,
        sequence_parallel: args.sp,
        recompute: match args.recompute.unwrap_or(RecomputeArg::None) {
            RecomputeArg::None => model::Recompute::None,
            RecomputeArg::Selective => model::Recompute::Selective,
            RecomputeArg::Full => model::Recompute::Full,
        },
        precision,
        grad_precision: args.grad_precision.map_or(precision, model::Precision::from),
        optimizer: match args.optimizer {
            OptimizerArg::Adam => model::Optimizer::Adam,
            OptimizerArg::SgdMomentum => model::Optimizer::SgdMomentum,
            OptimizerArg::Sgd => model::Optimizer::Sgd,
        },
        flash_attention: !args.no_flash,
        dropout: args.dropout,
    })
}
