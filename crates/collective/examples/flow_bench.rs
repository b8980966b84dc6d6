//! Benchmark of the flow model: 16,384 GPUs of the DGX H100 SuperPOD preset, 128 concurrent data-parallel ring
//! all-reduces (one per (rail, node-residue) pair, 128 ranks each, strided over the whole fabric so that every
//! group crosses the spines). Prints wall time, flow events and events per second.
//!
//! Run: `cargo run --release -p collective --example flow_bench [-- GPUS GROUPS MIB]`.
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![allow(clippy::disallowed_methods, reason = "a benchmark reads the wall clock to time itself")]

use std::time::Instant;

use collective::flow::collectives::{FlowCollective, FlowConfig, FlowSim};
use collective::placement::{ClusterRouter, comm_shape, flow_config};
use collective::{Algorithm, Op, Protocol};
use topology::Cluster;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u32| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (n_gpus, n_groups, mib) = (arg(1, 16_384), arg(2, 128), arg(3, 256));
    let spec = topology::preset("dgx-h100-superpod").expect("preset");
    let t0 = Instant::now();
    let cluster = Cluster::build(&spec, n_gpus).expect("cluster");
    let per_node = cluster.gpus_per_node();
    let n_nodes = cluster.num_nodes();
    // Group g: local GPU (g mod 8) on every node whose index ≡ g / 8 (mod n_groups / 8).
    let strides = n_groups / per_node;
    let groups: Vec<Vec<u32>> = (0..n_groups)
        .map(|g| {
            let (rail, residue) = (g % per_node, g / per_node);
            (0..n_nodes).filter(|n| n % strides == residue).map(|n| n * per_node + rail).collect()
        })
        .collect();
    let shape = comm_shape(&cluster, &groups[0]).expect("shape");
    let config: FlowConfig = flow_config(&shape, Protocol::Simple);
    let mut sim = FlowSim::new(ClusterRouter::new(&cluster)).expect("sim");
    let built_s = t0.elapsed().as_secs_f64();
    let bytes = u64::from(mib) << 20;
    for (tag, ranks) in groups.iter().enumerate() {
        sim.submit(&FlowCollective {
            ranks: ranks.clone(),
            op: Op::AllReduce,
            bytes,
            algorithm: Algorithm::Ring,
            config,
            tag: tag as u64,
        })
        .expect("submit");
    }
    let t1 = Instant::now();
    let done = sim.run_to_idle().expect("run");
    let run_s = t1.elapsed().as_secs_f64();
    let events = sim.n_flow_events();
    let last = done.iter().map(|d| d.end_s).fold(0.0, f64::max);
    let first = done.iter().map(|d| d.end_s).fold(f64::INFINITY, f64::min);
    // The same all-reduce alone, for the slowdown.
    let mut alone = FlowSim::new(ClusterRouter::new(&cluster)).expect("sim");
    alone
        .submit(&FlowCollective {
            ranks: groups[0].clone(),
            op: Op::AllReduce,
            bytes,
            algorithm: Algorithm::Ring,
            config,
            tag: 0,
        })
        .expect("submit");
    let alone_s = alone.run_to_idle().expect("run")[0].end_s;
    println!(
        "flow model: {n_gpus} GPUs ({n_nodes} nodes), {n_groups} concurrent ring all-reduces of {mib} MiB"
    );
    println!("  ranks per group          {}", groups[0].len());
    println!("  channels per group       {}", config.channels);
    println!("  cluster + router build   {built_s:.3} s");
    println!("  simulation wall time     {run_s:.3} s");
    println!("  flow events              {events}");
    println!("  flow events per second   {:.0}", events as f64 / run_s);
    println!("  simulated time           first {:.3} ms, last {:.3} ms", first * 1e3, last * 1e3);
    println!("  one group alone          {:.3} ms (slowdown x{:.2})", alone_s * 1e3, last / alone_s);
}
