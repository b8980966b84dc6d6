//! Prints the analytical and the flow model side by side for every preset cluster: all-reduce, all-gather and
//! reduce-scatter on one node and on several, at a large message size, with the algorithm NCCL's model picks.
//!
//! Run: `cargo run -p collective --example flow_agreement [-- BYTES]` (default 1 GiB).
#![allow(clippy::print_stdout, reason = "an example prints its figures")]

use collective::placement::flow_time;
use collective::{CollectiveConfig, Op};
use topology::{Cluster, PRESETS};

fn main() {
    let bytes: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1 << 30);
    println!(
        "# {:<18} {:>5} {:<15} {:<10} {:>10} {:>10} {:>7}",
        "preset", "gpus", "op", "algorithm", "analyt us", "flow us", "flow/an"
    );
    for preset in PRESETS {
        let spec = topology::preset(preset.name).expect("preset");
        for gpus in [spec.node.gpus_per_node, 2 * spec.node.gpus_per_node, 8 * spec.node.gpus_per_node] {
            let Ok(cluster) = Cluster::build(&spec, gpus) else { continue };
            let group: Vec<u32> = (0..cluster.num_gpus()).collect();
            for op in [Op::AllReduce, Op::AllGather, Op::ReduceScatter] {
                match flow_time(&cluster, &group, op, bytes, &CollectiveConfig::default()) {
                    Ok((cost, flow_s)) => println!(
                        "  {:<18} {:>5} {:<15} {:<10} {:>10.1} {:>10.1} {:>7.3}",
                        preset.name,
                        group.len(),
                        op.name(),
                        cost.algorithm.name(),
                        cost.time_s * 1e6,
                        flow_s * 1e6,
                        flow_s / cost.time_s
                    ),
                    Err(e) => {
                        println!("  {:<18} {:>5} {:<15} error: {e}", preset.name, group.len(), op.name())
                    }
                }
            }
        }
    }
}
