//! Static against continuous batching: tokens per second on a seeded synthetic request mix.
//!
//! `cargo run --release -p nn --example batching [n_requests] [max_batch]`
//!
//! The model is the nanoGPT CPU character-level shape (4 layers, d = 128, context 64) with random weights: the
//! weights do not change the work, only the text. Prompts are 4-15 tokens and outputs 4-47 tokens, uniformly
//! drawn, so lengths vary as in a real request mix. The KV budget holds `max_batch` full-context sequences.
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![allow(clippy::disallowed_methods, reason = "a benchmark reads the wall clock")]

use std::time::Instant;

use nn::batching::{BatchingConfig, Policy, Request, serve};
use nn::config::GptConfig;
use nn::gpt::Gpt;
use nn::params::init_params;
use nn::sampling::SamplingConfig;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() -> nn::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
    let n_requests = args.next().unwrap_or(64);
    let max_batch = args.next().unwrap_or(8);
    let config = GptConfig::nanogpt_char_cpu(65);
    let model = Gpt::new(&config, &init_params(&config, 1, nn::DType::F32, &nn::default_device()?)?)?;
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let requests: Vec<Request> = (0..n_requests as u64)
        .map(|id| Request {
            id,
            prompt: (0..rng.random_range(4..16)).map(|_| rng.random_range(0..65)).collect(),
            max_new_tokens: rng.random_range(4..48),
        })
        .collect();
    let kv_budget_tokens = max_batch * config.context;
    println!(
        "{n_requests} requests, prompts 4-15 tokens, outputs 4-47 tokens; max batch {max_batch}, KV budget {kv_budget_tokens} token slots"
    );
    println!(
        "{:<11} {:>10} {:>10} {:>12} {:>8} {:>10}",
        "policy", "iterations", "slot-steps", "padding", "seconds", "tokens/s"
    );
    let mut rates = Vec::new();
    for policy in [Policy::Static, Policy::Continuous] {
        let bc = BatchingConfig { policy, max_batch, kv_budget_tokens, sampling: SamplingConfig::default() };
        let started = Instant::now();
        let (done, stats) = serve(&model, &requests, &bc)?;
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(done.len(), n_requests);
        let rate = stats.generated_tokens as f64 / seconds;
        rates.push(rate);
        println!(
            "{:<11} {:>10} {:>10} {:>12} {:>8.2} {:>10.0}",
            format!("{policy:?}").to_lowercase(),
            stats.iterations,
            stats.slot_steps,
            stats.padding_steps,
            seconds,
            rate
        );
    }
    println!("continuous / static throughput: {:.2}×", rates[1] / rates[0]);
    Ok(())
}
