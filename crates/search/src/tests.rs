//! Tests of the whole search on small spaces: exactness of the bounded search, the bound and the memory
//! estimate against the simulator, determinism, and the errors.

use schedule::{ParallelPlan, PipelineSchedule, Recompute};

use crate::bound::{ShapeKey, compute_per_micro_batch_s, step_lower_bound_s};
use crate::*;

fn cluster(gpus: u32) -> topology::Cluster {
    topology::Cluster::build(&topology::preset("dgx-h100-superpod").unwrap(), gpus).unwrap()
}

fn quiet(_: Progress) {}

/// llama3-8b on 32 GPUs, a space small enough to simulate exhaustively in a debug test.
fn small_space() -> SearchSpace {
    let mut space = SearchSpace::new(32, 64, 4096);
    space.micro_batch = Some(vec![1, 2]);
    space.vp = Some(vec![2]);
    space.cp = Some(vec![1, 2]);
    space
}

#[test]
fn bounded_search_finds_the_same_top_plans_as_exhaustive_search() {
    bounded_search_matches_exhaustive_search(small_space());
}

#[test]
fn the_bound_holds_when_pipeline_communication_blocks() {
    // Megatron-LM 2021: blocking sends and receives, the scatter/gather all-gather, 16-bit gradients reduced
    // after the backward; only pipelined plans, where those ops sit on the compute stream.
    let mut space = small_space();
    space.base.overlap_p2p_comm = Some(false);
    space.base.overlap_grad_reduce = false;
    space.base.grad_reduce_in_fp32 = false;
    space.sequence_parallel = false;
    space.pp = Some(vec![2, 4]);
    space.cp = Some(vec![1]);
    space.zero_stages = vec![0, 1];
    bounded_search_matches_exhaustive_search(space);
}

fn bounded_search_matches_exhaustive_search(space: SearchSpace) {
    let spec = model::preset("llama3-8b").unwrap();
    let c = cluster(32);
    let mut config = SearchConfig::new(space);
    config.top = 5;
    let fast = search(&spec, &c, &config, &quiet).unwrap();
    config.exhaustive = true;
    let all = search(&spec, &c, &config, &quiet).unwrap();
    assert!(fast.simulated < all.simulated, "{} vs {}", fast.simulated, all.simulated);
    assert_eq!(fast.evaluated, all.evaluated);
    // Variants skipped as dominated (more recomputation, or ZeRO-2 for ZeRO-1) are never faster than the
    // lightest variant of their group that fits.
    let head_of = |p: &ParallelPlan| {
        all.ranked
            .iter()
            .filter(|e| crate::evaluate::ladder_group(&e.plan) == crate::evaluate::ladder_group(p))
            .min_by_key(|e| crate::evaluate::rung(&e.plan))
            .map(|e| e.plan.clone())
    };
    for e in &all.ranked {
        let head = head_of(&e.plan).unwrap();
        let head_step = all.ranked.iter().find(|x| x.plan == head).unwrap().report.step_time_s;
        assert!(head_step <= e.report.step_time_s, "{} beats its lighter variant", describe(&e.plan));
    }
    // The exhaustive ranking restricted to those lightest variants starts with exactly the bounded search's top.
    let heads: Vec<&Evaluated> =
        all.ranked.iter().filter(|e| head_of(&e.plan).as_ref() == Some(&e.plan)).collect();
    assert!(heads.len() >= 5);
    for (a, b) in fast.ranked.iter().zip(&heads).take(5) {
        assert_eq!(a.plan, b.plan);
        assert_eq!(a.report, b.report);
    }
    // Every simulated plan respects its lower bound.
    for e in &all.ranked {
        assert!(
            e.lower_bound_s <= e.report.step_time_s,
            "{}: {} > {}",
            describe(&e.plan),
            e.lower_bound_s,
            e.report.step_time_s
        );
    }
    // Bookkeeping: every valid plan is accounted for exactly once.
    let fitting = fast.evaluated - fast.pruned_memory;
    assert_eq!(fast.simulated + fast.skipped_bound + fast.skipped_dominated, fitting);
}

#[test]
fn the_bound_is_tight_enough_to_matter() {
    // On plans without a pipeline the step is mostly the compute stream: the bound is within 2× of the step.
    let spec = model::preset("llama3-8b").unwrap();
    let c = cluster(32);
    let plan = ParallelPlan {
        tp: 4,
        dp: 8,
        global_batch: 64,
        seq_len: 4096,
        sequence_parallel: true,
        zero_stage: 1,
        ..ParallelPlan::default()
    };
    let per_mb = compute_per_micro_batch_s(&spec, &plan, &c).unwrap();
    let bound = step_lower_bound_s(&plan, per_mb);
    let program = schedule::build(&spec, &plan).unwrap();
    let cfg = sim::SimConfig { ranks: sim::RankMode::Unique, ..sim::SimConfig::default() };
    let step = sim::simulate(&spec, &program, &c, &cfg).unwrap().report.step_time_s;
    assert!(bound <= step && bound > 0.5 * step, "bound {bound} step {step}");
    // Plans differing only in dp-independent ways share the shape.
    let other = ParallelPlan { zero_stage: 0, ..plan.clone() };
    assert_eq!(ShapeKey::of(&plan), ShapeKey::of(&other));
}

#[test]
fn closed_form_memory_is_within_the_pruning_slack_of_the_simulated_peak() {
    let spec = model::preset("llama3-8b").unwrap();
    let c = cluster(32);
    let cfg = sim::SimConfig { ranks: sim::RankMode::Unique, ..sim::SimConfig::default() };
    let cases = [
        (8, 1, 4, 1, 1, Recompute::None, PipelineSchedule::OneFOneB, false),
        (2, 4, 4, 1, 1, Recompute::Selective, PipelineSchedule::OneFOneB, false),
        (2, 4, 4, 2, 1, Recompute::Full, PipelineSchedule::Interleaved, false),
        (4, 2, 4, 1, 1, Recompute::None, PipelineSchedule::Gpipe, false),
        (1, 1, 32, 1, 3, Recompute::Selective, PipelineSchedule::OneFOneB, false),
        (2, 2, 8, 1, 0, Recompute::None, PipelineSchedule::ZbH1, false),
        // Megatron-LM 2021: 16-bit gradients, whose fp32 copies for the optimizer step set the peak.
        (1, 1, 32, 1, 0, Recompute::Full, PipelineSchedule::OneFOneB, true),
        (2, 2, 8, 1, 0, Recompute::Full, PipelineSchedule::OneFOneB, true),
    ];
    for (tp, pp, dp, vp, zero, recompute, schedule, legacy) in cases {
        let plan = ParallelPlan {
            tp,
            pp,
            dp,
            vp,
            micro_batch: 1,
            global_batch: 64,
            seq_len: 4096,
            zero_stage: zero,
            sequence_parallel: tp > 1,
            recompute,
            schedule,
            grad_reduce_in_fp32: !legacy,
            overlap_p2p_comm: Some(!legacy),
            ..ParallelPlan::default()
        };
        let est = estimate_memory(&spec, &plan).total_bytes;
        let program = schedule::build(&spec, &plan).unwrap();
        let simulated = sim::simulate(&spec, &program, &c, &cfg).unwrap().report.memory_peak_bytes;
        let ratio = est / simulated;
        // Within the band the pruning slack allows for.
        assert!(
            (1.0 / PRUNE_SLACK..=PRUNE_SLACK).contains(&ratio),
            "{}: estimate {est:.3e} simulated {simulated:.3e}",
            describe(&plan)
        );
    }
}

#[test]
fn the_search_is_deterministic() {
    let spec = model::preset("llama3-8b").unwrap();
    let c = cluster(32);
    let config = SearchConfig::new(small_space());
    let a = search(&spec, &c, &config, &quiet).unwrap();
    let b = search(&spec, &c, &config, &quiet).unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_model_that_fits_nowhere_names_the_dominant_term() {
    let spec = model::preset("llama3-70b").unwrap();
    let c = cluster(8);
    let config = SearchConfig::new(SearchSpace::new(8, 8, 4096));
    let err = search(&spec, &c, &config, &quiet).unwrap_err().to_string();
    assert!(err.contains("no plan fits in 80.0 GB per GPU"), "{err}");
    assert!(err.contains("largest term is"), "{err}");
}

#[test]
fn impossible_gpu_counts_say_why() {
    let spec = model::preset("llama3-8b").unwrap();
    let c = cluster(64);
    let err = search(&spec, &c, &SearchConfig::new(SearchSpace::new(7, 256, 4096)), &quiet).unwrap_err();
    assert!(err.to_string().starts_with("no valid plan uses exactly 7 GPUs:"), "{err}");
    let err = search(&spec, &c, &SearchConfig::new(SearchSpace::new(128, 256, 4096)), &quiet).unwrap_err();
    assert_eq!(err.to_string(), "the job asks for 128 GPUs but the cluster has 64");
}

#[test]
fn limiters_explain_a_pipelined_plan() {
    let spec = model::preset("llama3-8b").unwrap();
    let c = cluster(32);
    let plan = ParallelPlan {
        tp: 1,
        pp: 8,
        dp: 4,
        global_batch: 8,
        seq_len: 4096,
        zero_stage: 1,
        schedule: PipelineSchedule::Gpipe,
        ..ParallelPlan::default()
    };
    let program = schedule::build(&spec, &plan).unwrap();
    let cfg = sim::SimConfig { ranks: sim::RankMode::Unique, ..sim::SimConfig::default() };
    let report = sim::simulate(&spec, &program, &c, &cfg).unwrap().report;
    let l = limiters(&report);
    // Two micro-batches over eight stages: the bubble is (p − 1)/(m + p − 1) = 7/9 of the pipeline passes.
    let bubble = l.iter().find(|x| x.label == "PP bubble").expect("a bubble");
    assert!(bubble.fraction > 0.2, "{l:?}");
    assert_eq!(bubble.seconds, report.breakdown["bubble"]);
    assert!(l.windows(2).all(|w| w[0].seconds >= w[1].seconds), "{l:?}");
}
