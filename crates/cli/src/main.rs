//! `choir`: simulate, plan and rehearse distributed LLM training.
//!
//! This crate is the edge: it parses flags, reads files, prints tables and JSON, and maps errors to exit codes.
//! Every computation lives in a library crate below it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cmd;
mod exit;
mod inputs;
mod output;
mod trace;

use clap::{Parser, Subcommand};

/// choir: a distributed-training cluster simulator.
#[derive(Debug, Parser)]
#[command(name = "choir", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the model presets and where each comes from.
    Presets(cmd::presets::Args),
    /// Parameters, FLOPs and memory per GPU of a model (preset, config.json or flags).
    Model(cmd::model::Args),
    /// Compute economics: C = 6ND, Chinchilla loss, compute-optimal size, GPU-hours.
    Scale(cmd::scale::Args),
    /// Summarise a cluster file (GPUs, nodes, bisection bandwidth, diameter); draw it.
    Topology(cmd::topology::Args),
    /// Simulate one training step event by event (no flags: llama3-8b on 64 H100 GPUs).
    Sim(cmd::sim::Args),
    /// Compare simulated step times and memory with published measurements.
    Validate(cmd::validate::Args),
    /// Search every valid parallel plan for a model on a cluster and rank them by step time.
    Plan(cmd::plan::Args),
    /// Simulate a long training campaign under failures: goodput, ETTR, best checkpoint interval.
    Chaos(cmd::chaos::Args),
    /// Run the coordinator daemon (rendezvous, job control, health, metrics).
    Coordinator(cmd::coordinator::Args),
    /// Run a worker daemon that joins a coordinator and plays its rank's schedule.
    Worker(cmd::worker::Args),
    /// Start a local cluster (a coordinator and N workers on loopback) and run a job on it.
    Up(cmd::up::Args),
    /// Inject a fault into a running job through its coordinator (kill, hang, slow, partition, corrupt checkpoint).
    Inject(cmd::inject::Args),
    /// Time a collective on a cluster across message sizes, like nccl-tests.
    Collective(cmd::collective::Args),
    /// Train, apply and inspect a byte-level BPE tokenizer.
    #[command(subcommand)]
    Tokenize(cmd::tokenize::Command),
    /// Train the small GPT on a text file.
    Train(cmd::train::Args),
    /// Sample text from a trained checkpoint.
    Generate(cmd::generate::Args),
    /// Show a checkpoint's causal attention weights for a text.
    Attention(cmd::attention::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Presets(args) => cmd::presets::run(args),
        Command::Model(args) => cmd::model::run(args),
        Command::Scale(args) => cmd::scale::run(args),
        Command::Topology(args) => cmd::topology::run(args),
        Command::Collective(args) => cmd::collective::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Plan(args) => cmd::plan::run(args),
        Command::Chaos(args) => cmd::chaos::run(args),
        Command::Coordinator(args) => cmd::coordinator::run(args),
        Command::Worker(args) => cmd::worker::run(args),
        Command::Up(args) => cmd::up::run(args),
        Command::Inject(args) => cmd::inject::run(args),
        Command::Validate(args) => cmd::validate::run(args),
        Command::Tokenize(command) => cmd::tokenize::run(command),
        Command::Train(args) => cmd::train::run(args),
        Command::Generate(args) => cmd::generate::run(args),
        Command::Attention(args) => cmd::attention::run(args),
    };
    if let Err(err) = result {
        std::process::exit(exit::report(&err));
    }
}
