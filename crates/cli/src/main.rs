//! `choir`: simulate, plan and rehearse distributed LLM training.
//!
//! This crate is the edge: it parses flags, reads files, prints tables and JSON, and maps errors to exit codes.
//! Every computation lives in a library crate below it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cmd;
mod exit;
mod output;

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
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Presets(args) => cmd::presets::run(args),
        Command::Model(args) => cmd::model::run(args),
        Command::Scale(args) => cmd::scale::run(args),
    };
    if let Err(err) = result {
        std::process::exit(exit::report(&err));
    }
}
