//! Benchmark: the strategy search for llama3-70b on 1,024 H100 GPUs (DGX H100 SuperPOD preset, analytical
//! network), global batch 512 × 8,192 tokens. Prints plans evaluated per second and where the time goes.
//!
//! `cargo run --release -p search --example plan_bench [-- GPUS GLOBAL_BATCH]`
#![allow(clippy::print_stdout, clippy::disallowed_methods)] // a benchmark prints and reads the clock

use std::time::Instant;

fn main() {
    let args: Vec<u32> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let gpus = args.first().copied().unwrap_or(1024);
    let global_batch = args.get(1).copied().unwrap_or(512);
    let spec = model::preset("llama3-70b").expect("preset");
    let cluster_spec = topology::preset("dgx-h100-superpod").expect("preset");
    let threads = rayon::current_num_threads();
    println!(
        "llama3-70b on {gpus} × H100 (dgx-h100-superpod), global batch {global_batch} × 8192, {threads} threads"
    );

    let t = Instant::now();
    let cluster = topology::Cluster::build(&cluster_spec, gpus).expect("cluster");
    let cluster_s = t.elapsed().as_secs_f64();
    let space = search::SearchSpace::new(gpus, global_batch, 8192);

    let t = Instant::now();
    let e = search::enumerate(&spec, &space, cluster.gpus_per_node());
    let enum_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let fitting = e.plans.iter().filter(|p| search::estimate_memory(&spec, p).total_bytes <= 80e9).count();
    let estimate_s = t.elapsed().as_secs_f64();

    let config = search::SearchConfig::new(space.clone());
    let t = Instant::now();
    let r = search::search(&spec, &cluster, &config, &|_| {}).expect("search");
    let search_s = t.elapsed().as_secs_f64();

    // The cost of one simulation, split into building the step program and simulating it, over the plans the
    // search simulated (sequentially, one thread).
    let (mut build_s, mut sim_s, mut ops) = (0.0, 0.0, 0usize);
    let sim_config = sim::SimConfig { ranks: sim::RankMode::Unique, ..sim::SimConfig::default() };
    for ev in &r.ranked {
        let t = Instant::now();
        let program = schedule::build(&spec, &ev.plan).expect("build");
        build_s += t.elapsed().as_secs_f64();
        ops += program.ops_per_replica();
        let t = Instant::now();
        let _ = sim::simulate(&spec, &program, &cluster, &sim_config).expect("simulate");
        sim_s += t.elapsed().as_secs_f64();
    }
    let n = r.ranked.len().max(1) as f64;

    println!("cluster build            {:>10.3} ms", cluster_s * 1e3);
    println!("enumerate                {:>10.3} ms  {} valid plans", enum_s * 1e3, e.plans.len());
    println!("closed-form memory       {:>10.3} ms  {} of them under 80 GB", estimate_s * 1e3, fitting);
    println!(
        "search (all phases)      {:>10.3} s   {} evaluated, {} pruned by memory, {} dominated, {} cut by bound, {} shapes bounded, {} simulated",
        search_s, r.evaluated, r.pruned_memory, r.skipped_dominated, r.skipped_bound, r.shapes, r.simulated
    );
    println!("plans evaluated per second {:>10.0}", r.evaluated as f64 / search_s);
    println!("plans simulated per second {:>10.1}", r.simulated as f64 / search_s);
    println!(
        "one simulated plan, 1 thread: build {:.2} ms + simulate {:.2} ms ({:.0} ops per replica on average)",
        build_s / n * 1e3,
        sim_s / n * 1e3,
        ops as f64 / n
    );
    if let Some(best) = r.ranked.first() {
        println!(
            "best: {} — {:.3} s per step, MFU {:.1}%, {:.1} GB",
            search::describe(&best.plan),
            best.report.step_time_s,
            best.report.mfu * 100.0,
            best.report.memory_peak_bytes / 1e9
        );
    }
}
