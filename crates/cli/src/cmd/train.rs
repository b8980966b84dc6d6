//! `choir train`: train the small GPT on a text file, write checkpoints and a loss curve.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use model::{Biases, MlpKind, NormKind};
use nn::checkpoint::{TrainingRecord, checkpoint_files};
use nn::config::{GptConfig, MoeConfig};
use nn::train::TrainState;
use nn::train::{EvalStats, StepStats, TrainConfig, TrainEvent};
use nn::vocab::{CharVocab, Vocab};
use nn::{DType, Device};

use crate::exit::bad_input;
use crate::output::{print_json, read_text, write_atomic};

/// Flags of `choir train`. The defaults are nanoGPT's CPU character-level run on Tiny Shakespeare.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Text file to train on (the first part trains, the last `--val-fraction` validates).
    #[arg(long)]
    data: PathBuf,
    /// Checkpoint directory to write (model.safetensors, config.json, loss.svg).
    #[arg(long, default_value = "checkpoints/gpt")]
    out: PathBuf,
    /// `char` for one token per character, or a choir BPE file from `choir tokenize train`.
    #[arg(long, default_value = "char")]
    tokenizer: String,
    /// Fraction of the text held out for validation (taken from the end).
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// A `model::ModelSpec` JSON file giving the shape (its vocab is replaced by the tokenizer's, its seq_len
    /// by --context); overrides the shape flags below.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Transformer layers.
    #[arg(long, default_value_t = 4)]
    layers: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Key/value heads (GQA); defaults to --heads.
    #[arg(long)]
    kv_heads: Option<usize>,
    /// Residual width.
    #[arg(long, default_value_t = 128)]
    d_model: usize,
    /// Context length in tokens.
    #[arg(long, default_value_t = 64)]
    context: usize,
    /// MLP inner width; defaults to 4 × --d-model.
    #[arg(long)]
    ffn: Option<usize>,
    /// Gated (SwiGLU) MLP and RMSNorm instead of GELU MLP and LayerNorm.
    #[arg(long)]
    llama_style: bool,
    /// Biases on every linear layer (GPT-2); nanoGPT's default has none.
    #[arg(long)]
    bias: bool,
    /// Mixture-of-experts MLPs with this many experts (0 = dense).
    #[arg(long, default_value_t = 0)]
    experts: usize,
    /// Experts per token.
    #[arg(long, default_value_t = 2)]
    top_k: usize,
    /// Optimiser steps in all [default: 2000; with --resume, the checkpoint's run's].
    #[arg(long)]
    iters: Option<usize>,
    /// Resume from a checkpoint directory written by `choir train` (its weights, optimizer moments, step and
    /// batch stream): the run goes on to --iters steps in all exactly as if it had never stopped. Its model
    /// shape, tokenizer and training settings are the checkpoint's; shape and optimiser flags are ignored.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Sequences per step.
    #[arg(long, default_value_t = 12)]
    batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Final learning rate of the cosine decay.
    #[arg(long, default_value_t = 1e-4)]
    min_lr: f64,
    /// Warmup steps.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Steps of cosine decay; defaults to --iters.
    #[arg(long)]
    decay_iters: Option<usize>,
    /// AdamW weight decay (matrices only).
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f64,
    /// Global gradient-norm clip (0 = off).
    #[arg(long, default_value_t = 1.0)]
    grad_clip: f64,
    /// Evaluate (and checkpoint) every this-many steps.
    #[arg(long, default_value_t = 250)]
    eval_interval: usize,
    /// Batches per loss estimate.
    #[arg(long, default_value_t = 20)]
    eval_iters: usize,
    /// Seed of initialisation and batch sampling.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Print one JSON report at the end instead of progress lines.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Report {
    checkpoint: String,
    tokenizer: &'static str,
    vocab_size: usize,
    params: u64,
    train_tokens: usize,
    val_tokens: usize,
    config: GptConfig,
    train: TrainConfig,
    evals: Vec<EvalStats>,
    final_val_loss: f32,
    wall_s: f64,
    ms_per_step: f64,
    loss_svg: String,
}

/// A run picked up from a checkpoint.
struct Resumed {
    vocab: Vocab,
    gpt: GptConfig,
    train: TrainConfig,
    state: TrainState,
    evals: Vec<EvalStats>,
}

/// Loads what `--resume DIR` needs, naming the file and what is wrong with it.
fn load_resumed(dir: &Path, iters: Option<usize>) -> anyhow::Result<Resumed> {
    let read = |name: &str| -> anyhow::Result<Vec<u8>> {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| bad_input(format!("--resume: {}: {e}", path.display())))
    };
    let config_path = dir.join(nn::checkpoint::CONFIG_FILE);
    let config_json = String::from_utf8(read(nn::checkpoint::CONFIG_FILE)?)
        .map_err(|_| bad_input(format!("--resume: {}: not UTF-8", config_path.display())))?;
    let meta = nn::checkpoint::read_meta(&config_json)
        .map_err(|e| bad_input(format!("--resume: {}: {e}", config_path.display())))?;
    let Some(record) = meta.training.clone() else {
        return Err(bad_input(format!("--resume: {}: no training record to resume", config_path.display())));
    };
    let Some(at) = record.resume else {
        return Err(bad_input(format!(
            "--resume: {}: no resume point (written before choir kept optimizer state); start a new run",
            config_path.display()
        )));
    };
    let tokenizer_text = match &meta.tokenizer {
        nn::checkpoint::TokenizerMeta::Bpe { file } => Some(
            String::from_utf8(read(file)?)
                .map_err(|_| bad_input(format!("--resume: {}: not UTF-8", dir.join(file).display())))?,
        ),
        nn::checkpoint::TokenizerMeta::Char { .. } => None,
    };
    let device = device()?;
    let weights = read(nn::checkpoint::WEIGHTS_FILE)?;
    let loaded = nn::checkpoint::load_checkpoint(&config_json, &weights, tokenizer_text.as_deref(), &device)
        .map_err(|e| bad_input(format!("--resume: {}: {e}", dir.display())))?;
    let tensors = nn::params::from_safetensors(&weights, &meta.gpt, &device).map_err(bad_input)?;
    let optimizer_path = dir.join(nn::checkpoint::OPTIMIZER_FILE);
    let moments: nn::params::Tensors =
        nn::params::load_safetensors(&read(nn::checkpoint::OPTIMIZER_FILE)?, &device)
            .map_err(|e| bad_input(format!("--resume: {}: {e}", optimizer_path.display())))?;
    let mut train = record.config.clone();
    if let Some(total) = iters {
        train.iters = total;
    }
    if train.iters <= at.step {
        return Err(bad_input(format!(
            "--resume: the checkpoint has {} steps done and --iters is {}: nothing left to train (raise --iters)",
            at.step, train.iters
        )));
    }
    let state = nn::train::resume(&meta.gpt, &train, &tensors, &moments, at)
        .map_err(|e| bad_input(format!("--resume: {}: {e}", dir.display())))?;
    Ok(Resumed { vocab: loaded.vocab, gpt: meta.gpt, train, state, evals: record.evals })
}

/// Runs `choir train`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let text = read_text(&args.data)?;
    let (vocab, gpt, train, mut state, mut evals) = match &args.resume {
        Some(dir) => {
            let r = load_resumed(dir, args.iters)?;
            (r.vocab, r.gpt, r.train, r.state, r.evals)
        }
        None => {
            let vocab = match args.tokenizer.as_str() {
                "char" => Vocab::Char(CharVocab::from_text(&text)),
                path => Vocab::bpe_from_text(&read_text(Path::new(path))?).map_err(bad_input)?,
            };
            let gpt = gpt_config(&args, vocab.size())?;
            let train = train_config(&args);
            let tensors =
                nn::params::init_params(&gpt, train.seed, DType::F32, &device()?).map_err(bad_input)?;
            let state = nn::train::start(&gpt, &train, &tensors).map_err(bad_input)?;
            (vocab, gpt, train, state, Vec::new())
        }
    };
    let tokens = vocab.encode(&text).map_err(bad_input)?;
    let data = nn::data::split(tokens, args.val_fraction);
    // The parameter count comes from `model`; the tensors trained must agree with it exactly.
    let params = model::param_counts(&gpt.to_spec("train")).total;
    anyhow::ensure!(
        nn::params::count(&nn::params::var_tensors(&state.vars)) == params,
        "nn built a model whose size differs from model's count"
    );
    let resumed_at = state.step;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    if !args.json {
        println!(
            "training a {} GPT ({} layers, d={}, {} heads, context {}) on {}: {} train / {} val tokens, vocab {} ({})",
            units::format_count(params as f64),
            gpt.n_layers,
            gpt.d_model,
            gpt.n_heads,
            gpt.context,
            args.data.display(),
            data.train.len(),
            data.val.len(),
            vocab.size(),
            vocab.kind(),
        );
        if let Some(dir) = &args.resume {
            println!("resuming {} at step {resumed_at} of {}", dir.display(), train.iters);
        }
    }
    let started = Instant::now();
    let mut save_error = None;
    let save = |state: &TrainState, evals: &[EvalStats], wall_s: f64| -> anyhow::Result<()> {
        let record = TrainingRecord {
            config: train.clone(),
            steps: state.step,
            evals: evals.to_vec(),
            wall_s: Some(wall_s),
            resume: Some(state.resume_point()),
        };
        let tensors = nn::params::var_tensors(&state.vars);
        let moments = state.optimizer_state().map_err(|e| anyhow::anyhow!(e))?;
        let files = checkpoint_files(&gpt, &vocab, &tensors, Some(record), Some(&moments))
            .map_err(|e| anyhow::anyhow!(e))?;
        for (name, bytes) in files {
            write_atomic(&args.out.join(name), &bytes)?;
        }
        Ok(())
    };
    // `train` runs this many more steps; the record keeps the run's total.
    let remaining = TrainConfig { iters: train.iters - resumed_at, ..train.clone() };
    let history = nn::train::train(&mut state, &remaining, &data, |event, state| {
        let TrainEvent::Eval(e) = event else { return };
        // A run resumed at an evaluation step evaluates it again (the same figures): keep one.
        if evals.last().is_some_and(|last: &EvalStats| last.step == e.step) {
            return;
        }
        evals.push(*e);
        let elapsed_s = started.elapsed().as_secs_f64();
        if !args.json {
            println!(
                "step {:>5}  train {:.4}  val {:.4}  lr {:.2e}  {}",
                e.step,
                e.train_loss,
                e.val_loss,
                nn::train::lr_at(&train, e.step.saturating_sub(1)),
                units::format_duration(elapsed_s)
            );
        }
        // Checkpoint at every evaluation after the first, so that an interrupted run keeps its progress.
        if e.step > resumed_at && save_error.is_none() {
            save_error = save(state, &evals, elapsed_s).err();
        }
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    let wall_s = started.elapsed().as_secs_f64();
    if let Some(e) = save_error {
        return Err(e);
    }
    if evals.last().is_none_or(|e| e.step == resumed_at) {
        save(&state, &evals, wall_s)?;
    }
    let svg_path = args.out.join("loss.svg");
    let title = format!("{} GPT on {}", units::format_count(params as f64), file_name(&args.data));
    write_atomic(&svg_path, loss_svg(&history.steps, &evals, &title).as_bytes())?;
    let final_val_loss = evals.last().map_or(f32::NAN, |e| e.val_loss);
    let ms_per_step = 1e3 * wall_s / (state.step - resumed_at).max(1) as f64;
    if args.json {
        return print_json(&Report {
            checkpoint: args.out.display().to_string(),
            tokenizer: vocab.kind(),
            vocab_size: vocab.size(),
            params,
            train_tokens: data.train.len(),
            val_tokens: data.val.len(),
            config: gpt,
            train,
            evals,
            final_val_loss,
            wall_s,
            ms_per_step,
            loss_svg: svg_path.display().to_string(),
        });
    }
    println!(
        "done: val loss {final_val_loss:.4} after {} steps in {} ({ms_per_step:.1} ms/step)",
        state.step,
        units::format_duration(wall_s)
    );
    println!(
        "wrote {} (model.safetensors, optimizer.safetensors, config.json) and {}",
        args.out.display(),
        svg_path.display()
    );
    Ok(())
}

/// The device: CPU, or the first GPU when built with nn's `cuda` feature.
pub(crate) fn device() -> anyhow::Result<Device> {
    nn::default_device().map_err(|e| anyhow::anyhow!(e))
}

fn gpt_config(args: &Args, vocab_size: usize) -> anyhow::Result<GptConfig> {
    if let Some(path) = &args.spec {
        let mut spec: model::ModelSpec = serde_json::from_str(&read_text(path)?)
            .map_err(|e| bad_input(format!("{}: {e} (expected a model spec as JSON)", path.display())))?;
        spec.vocab = vocab_size as u64;
        spec.seq_len = args.context as u64;
        return GptConfig::from_spec(&spec).map_err(bad_input);
    }
    if args.heads == 0 || !args.d_model.is_multiple_of(args.heads) {
        return Err(bad_input(format!(
            "--d-model {} must be a positive multiple of --heads ({})",
            args.d_model, args.heads
        )));
    }
    let config = GptConfig {
        vocab_size,
        context: args.context,
        n_layers: args.layers,
        d_model: args.d_model,
        n_heads: args.heads,
        n_kv_heads: args.kv_heads.unwrap_or(args.heads),
        head_dim: args.d_model / args.heads,
        ffn_hidden: args.ffn.unwrap_or(4 * args.d_model),
        mlp: if args.llama_style { MlpKind::Gated } else { MlpKind::Plain },
        norm: if args.llama_style { NormKind::RmsNorm } else { NormKind::LayerNorm },
        biases: if args.bias { Biases::ALL } else { Biases::NONE },
        tied_embeddings: true,
        moe: (args.experts > 0).then(|| MoeConfig {
            n_experts: args.experts,
            top_k: args.top_k,
            expert_ffn_hidden: args.ffn.unwrap_or(4 * args.d_model),
            n_shared_experts: 0,
            shared_ffn_hidden: 0,
            first_dense_layers: 0,
        }),
    };
    config.validate().map_err(bad_input)?;
    Ok(config)
}

fn train_config(args: &Args) -> TrainConfig {
    let iters = args.iters.unwrap_or(2000);
    TrainConfig {
        iters,
        batch_size: args.batch,
        lr: args.lr,
        min_lr: args.min_lr,
        warmup_iters: args.warmup,
        lr_decay_iters: args.decay_iters.unwrap_or(iters),
        weight_decay: args.weight_decay,
        grad_clip: args.grad_clip,
        eval_interval: args.eval_interval,
        eval_iters: args.eval_iters,
        seed: args.seed,
        ..TrainConfig::default()
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The loss curve: every step's batch loss (faint), its moving average, and the evaluations on both splits.
fn loss_svg(steps: &[StepStats], evals: &[EvalStats], title: &str) -> String {
    let (w, h) = (760.0, 420.0);
    let (left, right, top, bottom) = (64.0, 24.0, 40.0, 52.0);
    let max_step = steps.len().max(evals.last().map_or(1, |e| e.step)).max(1) as f64;
    let all: Vec<f32> =
        steps.iter().map(|s| s.loss).chain(evals.iter().flat_map(|e| [e.train_loss, e.val_loss])).collect();
    let lo = all.iter().copied().fold(f32::INFINITY, f32::min).min(10.0).floor().max(0.0) as f64;
    let hi = (all.iter().copied().fold(0.0f32, f32::max).max(lo as f32 + 0.5) as f64 * 2.0).ceil() / 2.0;
    let x = |s: f64| left + (w - left - right) * s / max_step;
    let y = |l: f64| top + (h - top - bottom) * (1.0 - (l - lo) / (hi - lo));
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>
"##,
        w / 2.0,
        xml_escape(title)
    );
    let n_ticks = 5;
    for i in 0..=n_ticks {
        let l = lo + (hi - lo) * i as f64 / n_ticks as f64;
        let s = max_step * i as f64 / n_ticks as f64;
        svg += &format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e5e5e5\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{l:.2}</text>\n",
            w - right,
            left - 6.0,
            y(l) + 4.0,
            yy = y(l)
        );
        svg += &format!(
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{top}\" y2=\"{}\" stroke=\"#e5e5e5\"/><text x=\"{xx:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            h - bottom,
            h - bottom + 18.0,
            s.round(),
            xx = x(s)
        );
    }
    svg += &format!(
        "<rect x=\"{left}\" y=\"{top}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n",
        w - left - right,
        h - top - bottom
    );
    svg += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n",
        (left + w - right) / 2.0,
        h - 12.0
    );
    svg += &format!(
        "<text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">cross-entropy (nats/token)</text>\n",
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0
    );
    let polyline = |points: Vec<(f64, f64)>, style: &str| {
        let pts: Vec<String> = points.iter().map(|(s, l)| format!("{:.1},{:.1}", x(*s), y(*l))).collect();
        format!("<polyline fill=\"none\" {style} points=\"{}\"/>\n", pts.join(" "))
    };
    svg += &polyline(
        steps.iter().map(|s| ((s.step + 1) as f64, s.loss as f64)).collect(),
        "stroke=\"#9ecae1\" stroke-width=\"0.8\"",
    );
    // A centred moving average over about 1/40 of the run.
    let half = (steps.len() / 80).max(1);
    let smooth: Vec<(f64, f64)> = (0..steps.len())
        .map(|i| {
            let window = &steps[i.saturating_sub(half)..(i + half + 1).min(steps.len())];
            let mean = window.iter().map(|s| s.loss as f64).sum::<f64>() / window.len() as f64;
            ((steps[i].step + 1) as f64, mean)
        })
        .collect();
    svg += &polyline(smooth, "stroke=\"#1f77b4\" stroke-width=\"1.8\"");
    svg += &polyline(
        evals.iter().map(|e| (e.step as f64, e.val_loss as f64)).collect(),
        "stroke=\"#d62728\" stroke-width=\"1.8\"",
    );
    for e in evals {
        svg += &format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#d62728\"/>\n",
            x(e.step as f64),
            y(e.val_loss as f64)
        );
    }
    let legend =
        [("#9ecae1", "train batch loss"), ("#1f77b4", "train (moving average)"), ("#d62728", "validation")];
    for (i, (color, label)) in legend.iter().enumerate() {
        let ly = top + 16.0 + 18.0 * i as f64;
        svg += &format!(
            "<line x1=\"{}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">{label}</text>\n",
            w - right - 190.0,
            w - right - 166.0,
            w - right - 160.0,
            ly + 4.0
        );
    }
    if let Some(e) = evals.last() {
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#d62728\">val {:.3} at step {}</text>\n",
            w - right - 8.0,
            h - bottom - 10.0,
            e.val_loss,
            e.step
        );
    }
    svg + "</svg>\n"
}

/// Escapes text for an SVG text node.
pub(crate) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
