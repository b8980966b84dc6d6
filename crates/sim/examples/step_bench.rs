//! Benchmark: one step of llama3-405b (TP 8, PP 16, interleaved with vp 2, 16 micro-batches per replica) on
//! DGX H100 SuperPODs of 1K to 64K GPUs, every rank simulated. Prints wall time and events per second.
//!
//! `cargo run --release -p sim --example step_bench [-- 1024 4096 16384 65536]`
#![allow(clippy::print_stdout, clippy::disallowed_methods)] // a benchmark prints and reads the clock

use std::time::Instant;

fn main() {
    let sizes: Vec<u32> = {
        let args: Vec<u32> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
        if args.is_empty() { vec![1024, 4096, 16384, 65536] } else { args }
    };
    let spec = model::preset("llama3-405b").expect("preset");
    let cluster_spec = topology::preset("dgx-h100-superpod").expect("preset");
    println!(
        "llama3-405b, tp 8 · pp 16 (stages of 6, 8 × 14, 8 layers) · vp 2, 16 micro-batches per replica"
    );
    println!(
        "{:>7} {:>5} {:>12} {:>10} {:>12} {:>14} {:>10}",
        "GPUs", "dp", "step (sim)", "MFU", "wall", "events", "events/s"
    );
    for gpus in sizes {
        let dp = gpus / 128;
        let mut stage_layers = vec![8u32; 16];
        stage_layers[0] = 6;
        let plan = schedule::ParallelPlan {
            tp: 8,
            pp: 16,
            dp,
            vp: 2,
            micro_batch: 1,
            global_batch: 16 * dp,
            seq_len: 8192,
            zero_stage: 1,
            sequence_parallel: true,
            schedule: schedule::PipelineSchedule::Interleaved,
            stage_layers: Some(stage_layers),
            ..schedule::ParallelPlan::default()
        };
        let started = Instant::now();
        let cluster = topology::Cluster::build(&cluster_spec, gpus).expect("cluster");
        let program = schedule::build(&spec, &plan).expect("plan");
        let sim = sim::simulate(&spec, &program, &cluster, &sim::SimConfig::default()).expect("simulate");
        let wall = started.elapsed().as_secs_f64();
        let r = &sim.report;
        println!(
            "{:>7} {:>5} {:>10.3} s {:>9.1}% {:>10.2} s {:>14} {:>9.2}M",
            gpus,
            dp,
            r.step_time_s,
            r.mfu * 100.0,
            wall,
            r.sim.events,
            r.sim.events as f64 / wall / 1e6
        );
    }
}
