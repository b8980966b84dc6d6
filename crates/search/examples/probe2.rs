//! Temporary probe.
#![allow(clippy::print_stdout, missing_docs)]
fn main() {
    let spec = model::preset("llama3-8b").unwrap();
    let c = topology::Cluster::build(&topology::preset("dgx-h100-superpod").unwrap(), 32).unwrap();
    let mut space = search::SearchSpace::new(32, 64, 4096);
    space.micro_batch = Some(vec![1, 2]);
    space.vp = Some(vec![2]);
    space.cp = Some(vec![1, 2]);
    let mut config = search::SearchConfig::new(space);
    config.top = 5;
    for ex in [false, true] {
        config.exhaustive = ex;
        let r = search::search(&spec, &c, &config, &|_| {}).unwrap();
        println!("exhaustive {ex}: evaluated {} pruned {} sim {} bound-skip {} dom {}", r.evaluated, r.pruned_memory, r.simulated, r.skipped_bound, r.skipped_dominated);
        for e in r.ranked.iter().take(8) {
            println!("  {} step {:.6} bound {:.6} mem {:.2} est {:.2}", search::describe(&e.plan), e.report.step_time_s, e.lower_bound_s, e.report.memory_peak_bytes / 1e9, e.estimate.total_bytes / 1e9);
        }
    }
    for zero in [1u8, 2] {
        for rc in [schedule::Recompute::None, schedule::Recompute::Selective] {
            let plan = schedule::ParallelPlan { dp: 32, micro_batch: 2, global_batch: 64, seq_len: 4096, zero_stage: zero, recompute: rc, ..Default::default() };
            println!("mb2 zero {zero} {rc:?} est {:?}", search::estimate_memory(&spec, &plan));
        }
    }
}
