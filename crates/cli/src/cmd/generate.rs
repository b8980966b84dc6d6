//! `choir generate`: sample text from a checkpoint, optionally with speculative decoding.

use std::path::{Path, PathBuf};
use std::time::Instant;

use nn::checkpoint::{CONFIG_FILE, Checkpoint, TokenizerMeta, WEIGHTS_FILE, load_checkpoint, read_meta};
use nn::generate::{GenerateConfig, generate};
use nn::sampling::SamplingConfig;
use nn::speculative::{SpeculativeConfig, expected_speedup, expected_tokens_per_call, generate_speculative};

use crate::exit::bad_input;
use crate::output::{print_json, read_text};

/// Flags of `choir generate`. Sampling applies, in this order: repetition penalty, temperature, min-p, top-k,
/// top-p (vLLM's order).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Checkpoint directory written by `choir train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Text to continue.
    #[arg(long, default_value = "\n")]
    prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 500)]
    tokens: usize,
    /// Softmax temperature; 0 = greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Keep the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Keep the smallest set of most likely tokens with this much probability (1 = off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Drop tokens less likely than this fraction of the most likely one (0 = off).
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    /// Divide positive (multiply negative) logits of tokens already present by this (1 = off).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Sampling seed.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Recompute every position at every step instead of using the KV cache.
    #[arg(long)]
    no_kv_cache: bool,
    /// A smaller checkpoint (same tokenizer) to draft tokens for speculative decoding.
    #[arg(long)]
    draft: Option<PathBuf>,
    /// Tokens the draft proposes per round (γ).
    #[arg(long, default_value_t = 4)]
    draft_tokens: usize,
    /// Print one JSON object instead of the text.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Report {
    prompt: String,
    text: String,
    tokens: Vec<u32>,
    sampling: SamplingConfig,
    kv_cache: bool,
    seconds: f64,
    tokens_per_s: f64,
    speculative: Option<SpeculativeReport>,
}

#[derive(serde::Serialize)]
struct SpeculativeReport {
    draft_tokens: usize,
    acceptance_rate: f64,
    tokens_per_target_call: f64,
    target_calls: usize,
    draft_calls: usize,
    plain_seconds: f64,
    speculative_seconds: f64,
    measured_speedup: f64,
    draft_cost_ratio: f64,
    expected_tokens_per_call: f64,
    expected_speedup: f64,
}

/// Runs `choir generate`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let ck = load(&args.checkpoint)?;
    let prompt = ck.vocab.encode(&args.prompt).map_err(bad_input)?;
    let sampling = SamplingConfig {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repetition_penalty: args.repetition_penalty,
        seed: args.seed,
    };
    sampling.validate().map_err(bad_input)?;
    let config = GenerateConfig { max_new_tokens: args.tokens, use_kv_cache: !args.no_kv_cache, sampling };
    let started = Instant::now();
    let plain = generate(&ck.model, &prompt, &config).map_err(bad_input)?;
    let plain_s = started.elapsed().as_secs_f64();
    let (tokens, seconds, speculative) = match &args.draft {
        None => (plain.tokens, plain_s, None),
        Some(dir) => {
            let draft = load(dir)?;
            if draft.vocab.size() != ck.vocab.size() {
                return Err(bad_input(format!(
                    "draft {} has a vocabulary of {} tokens, expected the target's {}",
                    dir.display(),
                    draft.vocab.size(),
                    ck.vocab.size()
                )));
            }
            // The draft's cost per token relative to the target's (c in Leviathan et al.), measured.
            let started = Instant::now();
            generate(&draft.model, &prompt, &config).map_err(bad_input)?;
            let draft_s = started.elapsed().as_secs_f64();
            let spec_config =
                SpeculativeConfig { max_new_tokens: args.tokens, draft_tokens: args.draft_tokens, sampling };
            let started = Instant::now();
            let (tokens, stats) =
                generate_speculative(&ck.model, &draft.model, &prompt, &spec_config).map_err(bad_input)?;
            let spec_s = started.elapsed().as_secs_f64();
            let alpha = stats.acceptance_rate();
            let c = draft_s / plain_s.max(1e-9);
            let report = SpeculativeReport {
                draft_tokens: args.draft_tokens,
                acceptance_rate: alpha,
                tokens_per_target_call: stats.tokens_per_target_call(tokens.len()),
                target_calls: stats.target_calls,
                draft_calls: stats.draft_calls,
                plain_seconds: plain_s,
                speculative_seconds: spec_s,
                measured_speedup: plain_s / spec_s.max(1e-9),
                draft_cost_ratio: c,
                expected_tokens_per_call: expected_tokens_per_call(alpha, args.draft_tokens),
                expected_speedup: expected_speedup(alpha, args.draft_tokens, c),
            };
            (tokens, spec_s, Some(report))
        }
    };
    let text = ck.vocab.decode(&tokens).map_err(bad_input)?;
    let tokens_per_s = tokens.len() as f64 / seconds.max(1e-9);
    if args.json {
        return print_json(&Report {
            prompt: args.prompt,
            text,
            tokens,
            sampling,
            kv_cache: config.use_kv_cache,
            seconds,
            tokens_per_s,
            speculative,
        });
    }
    println!("{}{text}", args.prompt);
    println!(
        "-- {} tokens in {} ({tokens_per_s:.0} tokens/s, KV cache {})",
        tokens.len(),
        units::format_duration(seconds),
        if config.use_kv_cache { "on" } else { "off" }
    );
    if let Some(s) = speculative {
        println!(
            "-- speculative (γ = {}): acceptance {:.1}%, {:.2} tokens per target call, {} target + {} draft calls",
            s.draft_tokens,
            100.0 * s.acceptance_rate,
            s.tokens_per_target_call,
            s.target_calls,
            s.draft_calls
        );
        println!(
            "-- speedup {:.2}× measured ({} plain vs {} speculative); {:.2}× expected from α and c = {:.2} (Leviathan et al. Thm 3.8)",
            s.measured_speedup,
            units::format_duration(s.plain_seconds),
            units::format_duration(s.speculative_seconds),
            s.expected_speedup,
            s.draft_cost_ratio
        );
    }
    Ok(())
}

/// Reads a checkpoint directory: `config.json`, the weights, and the tokenizer when it is BPE.
pub(crate) fn load(dir: &Path) -> anyhow::Result<Checkpoint> {
    let config = read_text(&dir.join(CONFIG_FILE))?;
    let meta = read_meta(&config).map_err(bad_input)?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let weights = std::fs::read(&weights_path)
        .map_err(|e| bad_input(format!("reading {}: {e}", weights_path.display())))?;
    let tokenizer = match &meta.tokenizer {
        TokenizerMeta::Char { .. } => None,
        TokenizerMeta::Bpe { file } => Some(read_text(&dir.join(file))?),
    };
    let device = crate::cmd::train::device()?;
    load_checkpoint(&config, &weights, tokenizer.as_deref(), &device)
        .map_err(|e| bad_input(format!("{}: {e}", dir.display())))
}
