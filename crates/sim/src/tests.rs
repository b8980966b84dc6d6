//! End-to-end checks of the simulator against closed-form results.

use super::*;
use schedule::{ParallelPlan, PipelineSchedule};

fn cluster(gpus: u32) -> topology::Cluster {
    let spec = topology::preset("dgx-h100-superpod").unwrap();
    topology::Cluster::build(&spec, gpus).unwrap()
}

fn spec(layers: u64) -> model::ModelSpec {
    let mut s = model::preset("llama3-8b").unwrap();
    s.n_layers = layers;
    s
}

fn run(spec: &model::ModelSpec, plan: &ParallelPlan, mode: RankMode) -> Report {
    run_with(spec, plan, SimConfig { ranks: mode, ..SimConfig::default() })
}

fn run_with(spec: &model::ModelSpec, plan: &ParallelPlan, cfg: SimConfig) -> Report {
    let program = schedule::build(spec, plan).unwrap();
    let gpus = plan.gpus() as u32;
    simulate(spec, &program, &cluster(gpus.max(8)), &cfg).unwrap().report
}

#[test]
fn simulates_a_small_job_deterministically() {
    let s = spec(8);
    let plan =
        ParallelPlan { tp: 2, pp: 2, dp: 2, global_batch: 16, seq_len: 4096, ..ParallelPlan::default() };
    let a = run(&s, &plan, RankMode::All);
    let b = run(&s, &plan, RankMode::All);
    assert_eq!(a, b);
    assert!(a.step_time_s > 0.0);
    assert!(a.mfu > 0.05 && a.mfu < 1.0, "mfu {}", a.mfu);
}

#[test]
fn unique_ranks_agree_with_every_rank() {
    let s = spec(8);
    let plan =
        ParallelPlan { tp: 2, pp: 2, dp: 4, global_batch: 32, zero_stage: 1, ..ParallelPlan::default() };
    let all = run(&s, &plan, RankMode::All);
    let unique = run(&s, &plan, RankMode::Unique);
    assert_eq!(all.step_time_s, unique.step_time_s);
    assert_eq!(all.memory_peak_bytes, unique.memory_peak_bytes);
}

#[test]
fn deeper_pipelines_have_the_textbook_bubble() {
    // With communication between stages, the measured ratio slightly exceeds (p−1)/m; the exact identity
    // with free communication is checked in the engine-level test below.
    // Uniform stages: a tiny vocabulary makes the embedding and head negligible beside the layers.
    let mut s = spec(16);
    s.vocab = 256;
    for (sched, v) in
        [(PipelineSchedule::OneFOneB, 1), (PipelineSchedule::Gpipe, 1), (PipelineSchedule::Interleaved, 2)]
    {
        let plan = ParallelPlan { pp: 4, vp: v, schedule: sched, global_batch: 8, ..ParallelPlan::default() };
        let r = run(&s, &plan, RankMode::All);
        let expected = 3.0 / (8.0 * f64::from(v));
        let got = r.stages[0].bubble_over_busy;
        assert!(
            (got - expected).abs() / expected < 0.15,
            "{sched:?}: bubble/busy {got} vs (p−1)/(v·m) {expected}"
        );
    }
}

/// A model whose stages are uniform: a tiny vocabulary makes the embedding and head negligible.
fn uniform(layers: u64) -> model::ModelSpec {
    let mut s = spec(layers);
    s.vocab = 256;
    s
}

#[test]
fn with_free_communication_the_bubble_is_exactly_the_textbook_one() {
    let s = uniform(64);
    let free = SimConfig { free_communication: true, ..SimConfig::default() };
    for (sched, v, m) in [
        (PipelineSchedule::Gpipe, 1, 8),
        (PipelineSchedule::OneFOneB, 1, 8),
        (PipelineSchedule::OneFOneB, 1, 16),
        (PipelineSchedule::Interleaved, 2, 8),
    ] {
        let plan = ParallelPlan { pp: 4, vp: v, schedule: sched, global_batch: m, ..ParallelPlan::default() };
        let r = run_with(&s, &plan, free.clone());
        let expected = 3.0 / (f64::from(m) * f64::from(v));
        let got = r.stages[0].bubble_over_busy;
        // The embedding on stage 0 and the (tiny) head on stage 3 make stages differ by a hair.
        assert!(
            (got - expected).abs() / expected < 0.02,
            "{sched:?} m={m}: {got} vs (p−1)/(v·m) = {expected}"
        );
    }
}

#[test]
fn first_stage_memory_holds_p_micro_batches_under_1f1b_and_m_under_gpipe() {
    let s = uniform(16);
    let free = SimConfig { free_communication: true, ..SimConfig::default() };
    let act = |sched| {
        let plan = ParallelPlan { pp: 4, schedule: sched, global_batch: 8, ..ParallelPlan::default() };
        run_with(&s, &plan, free.clone()).stages[0].memory.activations_peak_bytes
    };
    let (one_f, gpipe) = (act(PipelineSchedule::OneFOneB), act(PipelineSchedule::Gpipe));
    // 4 layers per stage; 1F1B keeps p = 4 micro-batches, GPipe all m = 8.
    assert!((gpipe / one_f - 2.0).abs() < 0.01, "GPipe {gpipe} vs 1F1B {one_f}");
}

#[test]
fn data_parallel_scaling_with_a_free_network_is_linear() {
    let s = uniform(8);
    let free = SimConfig { free_communication: true, ..SimConfig::default() };
    let tput = |dp: u32| {
        let plan = ParallelPlan { dp, global_batch: 4 * dp, ..ParallelPlan::default() };
        run_with(&s, &plan, free.clone()).tokens_per_s
    };
    let (one, eight) = (tput(1), tput(8));
    assert!((eight / one - 8.0).abs() < 1e-6, "8 replicas give {}× one", eight / one);
}

#[test]
fn the_critical_path_spans_the_step() {
    let s = spec(8);
    let plan = ParallelPlan { tp: 2, pp: 4, dp: 2, global_batch: 16, ..ParallelPlan::default() };
    let r = run(&s, &plan, RankMode::All);
    let total: f64 = r.critical_path.seconds.values().sum();
    // Every nanosecond of the step lies on the path (ops or waits) except the time before its first op.
    assert!((total - r.step_time_s).abs() / r.step_time_s < 1e-6, "path {total} vs step {}", r.step_time_s);
    assert_eq!(r.critical_path.stages_crossed, 4);
    assert!(r.critical_path.seconds["compute"] > 0.5 * r.step_time_s);
}

#[test]
fn a_lone_cross_node_group_costs_about_the_same_under_both_network_models() {
    let mut s = spec(4);
    s.vocab = 256;
    let cluster = topology::Cluster::build(&topology::preset("dgx-a100-superpod").unwrap(), 16).unwrap();
    let plan = ParallelPlan {
        tp: 1,
        dp: 16,
        global_batch: 16,
        seq_len: 2048,
        zero_stage: 0,
        ..ParallelPlan::default()
    };
    let program = schedule::build(&s, &plan).unwrap();
    let dp = |network| {
        let cfg = SimConfig { network, ..SimConfig::default() };
        simulate(&s, &program, &cluster, &cfg).unwrap().report.exposed_comm_s["dp"]
    };
    let (a, f) = (dp(NetworkModel::Analytical), dp(NetworkModel::Flow));
    assert!((f / a - 1.0).abs() < 0.25, "flow {f} s vs analytical {a} s");
}

#[test]
fn the_flow_network_shows_contention_on_an_oversubscribed_fabric() {
    // tp 8 puts one member of each of 8 DP groups on every node: 8 concurrent gradient all-reduces over 32
    // nodes. On a non-blocking fat-tree they share nothing but the NICs; with 4:1 oversubscribed leaf uplinks
    // they contend on the spines, which only the flow model sees.
    let mut s = spec(4);
    s.vocab = 256;
    // Without overlap the whole gradient all-reduce is exposed, so the comparison is not diluted by compute.
    let plan = ParallelPlan {
        tp: 8,
        dp: 32,
        global_batch: 32,
        seq_len: 2048,
        zero_stage: 0,
        overlap_grad_reduce: false,
        ..ParallelPlan::default()
    };
    let program = schedule::build(&s, &plan).unwrap();
    let base = topology::preset("fat-tree").unwrap();
    let mut oversubscribed = base.clone();
    oversubscribed.fabric.oversubscription = 4.0;
    let dp = |spec: &topology::ClusterSpec, network| {
        let cluster = topology::Cluster::build(spec, 256).unwrap();
        let cfg = SimConfig { network, ..SimConfig::default() };
        let r = simulate(&s, &program, &cluster, &cfg).unwrap().report;
        (r.exposed_comm_s["dp"], r)
    };
    let (free, r1) = dp(&base, NetworkModel::Flow);
    let (busy, _) = dp(&oversubscribed, NetworkModel::Flow);
    let (analytical, _) = dp(&oversubscribed, NetworkModel::Analytical);
    assert_eq!(r1, dp(&base, NetworkModel::Flow).1, "flow runs are deterministic");
    assert!(busy > 1.2 * free, "oversubscribed {busy} s vs non-blocking {free} s");
    assert!(busy > 1.2 * analytical, "flow {busy} s vs analytical (no contention) {analytical} s");
}

/// A plan whose two pipeline stages sit on different nodes (8 replicas of tp 1 fill the first node), with
/// Megatron-LM 2021's blocking sends and receives unless `overlap`.
fn cross_node_pipeline(vp: u32, overlap: bool) -> ParallelPlan {
    ParallelPlan {
        pp: 2,
        dp: 8,
        vp,
        schedule: if vp > 1 { PipelineSchedule::Interleaved } else { PipelineSchedule::OneFOneB },
        global_batch: 64,
        seq_len: 4096,
        overlap_p2p_comm: Some(overlap),
        ..ParallelPlan::default()
    }
}

#[test]
fn blocking_sends_add_their_transfer_time_to_the_compute_stream() {
    let s = uniform(8);
    let blocking = cross_node_pipeline(1, false);
    let program = schedule::build(&s, &blocking).unwrap();
    let c = cluster(16);
    let durations = op_durations(&program, &c, None).unwrap();
    let sends_s: Vec<f64> = program
        .stages
        .iter()
        .zip(&durations)
        .map(|(st, d)| {
            st.ops
                .iter()
                .zip(d)
                .filter(|(o, _)| matches!(o.kind, schedule::OpKind::Send { .. }))
                .map(|(_, t)| t)
                .sum()
        })
        .collect();
    let cfg = SimConfig { ranks: RankMode::Unique, ..SimConfig::default() };
    let r = simulate(&s, &program, &c, &cfg).unwrap().report;
    // No compute hides a blocking send: each stage's exposed pipeline time is exactly its sends.
    for (st, sends) in r.stages.iter().zip(&sends_s) {
        assert!(*sends > 1e-4, "a cross-node send takes time");
        assert!(
            (st.exposed_comm_s["pp"] - sends).abs() < 1e-6,
            "stage {}: {} vs {sends}",
            st.stage,
            st.exposed_comm_s["pp"]
        );
        assert!(r.step_time_s >= st.compute_s + sends);
    }
    // Overlapped, the same messages hide under compute and the step is shorter.
    let overlapped = run_with(&s, &cross_node_pipeline(1, true), cfg);
    assert!(overlapped.step_time_s < r.step_time_s);
    for (o, b) in overlapped.stages.iter().zip(&r.stages) {
        assert!(o.exposed_comm_s["pp"] < b.exposed_comm_s["pp"], "stage {}", o.stage);
    }
}

#[test]
fn blocking_transfers_eat_into_what_interleaving_saves() {
    // Interleaving over v chunks sends v times the messages (Narayanan et al. 2021 §2.2.2): when they block,
    // its gain over 1F1B shrinks.
    let s = uniform(8);
    let cfg = SimConfig { ranks: RankMode::Unique, ..SimConfig::default() };
    let step = |vp, overlap| run_with(&s, &cross_node_pipeline(vp, overlap), cfg.clone()).step_time_s;
    let gain_overlapped = step(1, true) - step(4, true);
    let gain_blocking = step(1, false) - step(4, false);
    assert!(gain_overlapped > 0.0);
    assert!(gain_blocking < gain_overlapped, "blocking gain {gain_blocking} vs overlapped {gain_overlapped}");
}

#[test]
fn the_optimizer_steps_fp32_gradient_copies_can_set_the_memory_peak() {
    // Full recomputation keeps few activations; 16-bit gradient buffers are copied to fp32 for the step
    // (4 bytes per parameter), which then sets the dynamic peak.
    let s = spec(8);
    let plan = ParallelPlan {
        dp: 8,
        global_batch: 8,
        recompute: schedule::Recompute::Full,
        grad_reduce_in_fp32: false,
        ..ParallelPlan::default()
    };
    let program = schedule::build(&s, &plan).unwrap();
    let r = run(&s, &plan, RankMode::Unique);
    let copies = (program.stages[0].params * 4.0) as u64 as f64;
    assert_eq!(r.stages[0].memory.activations_peak_bytes, copies);
    let fp32 = run(&s, &ParallelPlan { grad_reduce_in_fp32: true, ..plan }, RankMode::Unique);
    assert!(fp32.stages[0].memory.activations_peak_bytes < 0.5 * copies);
}

#[test]
fn the_kernel_classes_add_up_to_the_compute_time() {
    // One GPU, nothing to overlap: the compute stream's busy time is exactly the sum of its kernels.
    let s = spec(4);
    let plan = ParallelPlan {
        tp: 1,
        dp: 1,
        micro_batch: 2,
        global_batch: 4,
        seq_len: 2048,
        ..ParallelPlan::default()
    };
    let r = run(&s, &plan, RankMode::All);
    let k = &r.compute_by_kernel_s;
    let sum: f64 = k.values().sum();
    let compute = r.breakdown["compute"];
    assert!((sum - compute).abs() < 1e-6 * compute, "{k:?} vs compute {compute}");
    assert!(k["gemm"] > k["memory"] && k["attention"] > 0.0 && k["optimizer"] > 0.0, "{k:?}");
}
