//! Campaign-level tests: hand-built plans with known answers, time accounting, and the Llama 3 checks.

use crate::*;

const LLAMA3: Fleet = Fleet { gpus: 16_384, gpus_per_node: 8 };
const DAY_S: f64 = 86_400.0;

/// A small job with round numbers: 10 s steps, a checkpoint every 100 s (10 steps) costing 5 s.
fn small(mode: CheckpointMode) -> CampaignConfig {
    CampaignConfig {
        horizon_s: 10_000.0,
        step_time_s: 10.0,
        tokens_per_step: 1000.0,
        fleet: Fleet { gpus: 16, gpus_per_node: 8 },
        checkpoint: CheckpointPolicy {
            interval_s: 100.0,
            mode,
            costs: CheckpointCosts { write_s: 5.0, snapshot_s: 1.0, load_s: 20.0 },
        },
        recovery: RecoveryConfig {
            detect_s: 30.0,
            hang_timeout_s: 600.0,
            restart_s: 100.0,
            spare_nodes: 1,
            repair_s: 5000.0,
        },
    }
}

fn plan(faults: Vec<(f64, FaultTarget, FaultKind)>) -> FaultPlan {
    FaultPlan {
        seed: None,
        faults: faults
            .into_iter()
            .map(|(time_s, target, kind)| FaultEntry { time_s, target, kind, cause: None })
            .collect(),
    }
}

fn assert_time_adds_up(config: &CampaignConfig, r: &CampaignResult) {
    let total = r.time.total_s();
    assert!(
        (total - config.horizon_s).abs() < 1e-6,
        "accounted {total} s of {} s: {:?}",
        config.horizon_s,
        r.time
    );
}

#[test]
fn no_faults_costs_only_checkpoints() {
    let config = small(CheckpointMode::Sync);
    let r = run_campaign(&config, &FaultPlan::default()).unwrap();
    // Cycles of 105 s: 95 full cycles (9975 s), then 25 s = 2 more steps and half a step.
    assert_eq!((r.steps, r.checkpoints, r.interruptions), (952, 95, 0));
    assert!((r.ettr - 0.952).abs() < 1e-12);
    assert!((r.goodput_tokens_per_s - 95.2).abs() < 1e-9);
    assert_time_adds_up(&config, &r);
}

#[test]
fn a_kill_loses_the_work_since_the_last_checkpoint_and_pays_detection_restart_and_load() {
    let config = small(CheckpointMode::Sync);
    // At 1000 s: 9 cycles (945 s) + 55 s = 5 steps past checkpoint 90 and 5 s into the next step.
    let r = run_campaign(
        &config,
        &plan(vec![(1000.0, FaultTarget::Rank(3), FaultKind::Kill { permanent: false })]),
    )
    .unwrap();
    assert_eq!((r.interruptions, r.unexpected_interruptions), (1, 1));
    assert!((r.time.lost_work_s["kill"] - 55.0).abs() < 1e-9, "{:?}", r.time.lost_work_s);
    assert!((r.time.downtime_s["kill"] - 150.0).abs() < 1e-9, "{:?}", r.time.downtime_s);
    // Back at 1150 s from step 90: 8850 s left = 84 cycles (8820 s) + 3 steps.
    assert_eq!(r.steps, 90 + 840 + 3);
    let lost_gpu_h = r.lost_gpu_hours_by_cause["kill"];
    assert!((lost_gpu_h - 205.0 * 16.0 / 3600.0).abs() < 1e-9);
    assert_time_adds_up(&config, &r);
}

#[test]
fn async_checkpoints_block_less_but_count_only_once_written() {
    let sync = run_campaign(&small(CheckpointMode::Sync), &FaultPlan::default()).unwrap();
    let config = small(CheckpointMode::Async);
    let none = run_campaign(&config, &FaultPlan::default()).unwrap();
    assert!(none.ettr > sync.ettr);
    assert!((none.time.checkpoint_s - none.checkpoints as f64 * 1.0).abs() < 1.0 + 1e-9);
    // Snapshot 1 ends at 101 s, durable at 106 s. A kill at 103 s loses everything since the start.
    let r =
        run_campaign(&config, &plan(vec![(103.0, FaultTarget::Job, FaultKind::Kill { permanent: false })]))
            .unwrap();
    assert!((r.time.lost_work_s["kill"] - 102.0).abs() < 1e-9, "{:?}", r.time.lost_work_s);
    let r =
        run_campaign(&config, &plan(vec![(107.0, FaultTarget::Job, FaultKind::Kill { permanent: false })]))
            .unwrap();
    assert!((r.time.lost_work_s["kill"] - 6.0).abs() < 1e-9, "{:?}", r.time.lost_work_s);
    assert_time_adds_up(&config, &r);
}

#[test]
fn permanent_failures_use_spares_and_wait_when_none_is_left() {
    let config = small(CheckpointMode::Sync);
    let kill = FaultKind::Kill { permanent: true };
    let one = run_campaign(&config, &plan(vec![(1000.0, FaultTarget::Node(0), kill.clone())])).unwrap();
    assert_eq!(one.spare_waits, 0);
    assert!((one.time.downtime_s["kill"] - 150.0).abs() < 1e-6);
    // The second loss finds the pool empty: the first node is repaired at 6000 s, then restart and load.
    let two = run_campaign(
        &config,
        &plan(vec![(1000.0, FaultTarget::Node(0), kill.clone()), (2000.0, FaultTarget::Node(1), kill)]),
    )
    .unwrap();
    assert_eq!(two.spare_waits, 1);
    assert!((two.spare_wait_s - (6000.0 - 2030.0)).abs() < 1e-9);
    assert!((two.time.downtime_s["kill"] - 150.0 - (6000.0 + 120.0 - 2000.0)).abs() < 1e-9);
    assert_time_adds_up(&config, &two);
}

#[test]
fn hangs_stall_or_interrupt_and_drains_lose_only_the_step_in_progress() {
    let config = small(CheckpointMode::Sync);
    let short = run_campaign(
        &config,
        &plan(vec![(1000.0, FaultTarget::Rank(0), FaultKind::Hang { duration_s: Some(60.0) })]),
    )
    .unwrap();
    assert_eq!((short.interruptions, short.stalls), (0, 1));
    assert!((short.time.downtime_s["hang"] - 60.0).abs() < 1e-9);
    let long = run_campaign(
        &config,
        &plan(vec![(1000.0, FaultTarget::Rank(0), FaultKind::Hang { duration_s: None })]),
    )
    .unwrap();
    assert_eq!(long.interruptions, 1);
    assert!((long.time.downtime_s["hang"] - (600.0 + 120.0)).abs() < 1e-9);
    let drain = run_campaign(&config, &plan(vec![(1000.0, FaultTarget::Job, FaultKind::Drain)])).unwrap();
    assert_eq!((drain.planned_interruptions, drain.unexpected_interruptions), (1, 0));
    assert!((drain.time.lost_work_s["drain"] - 5.0).abs() < 1e-9);
    assert!((drain.time.downtime_s["drain"] - (5.0 + 120.0)).abs() < 1e-9);
    for r in [&short, &long, &drain] {
        assert_time_adds_up(&config, r);
    }
}

#[test]
fn corrupt_checkpoints_fall_back_and_slowdowns_cost_time_until_restart() {
    let config = small(CheckpointMode::Sync);
    let r = run_campaign(
        &config,
        &plan(vec![
            (950.0, FaultTarget::Job, FaultKind::CorruptCheckpoint { step: 90 }),
            (1000.0, FaultTarget::Rank(1), FaultKind::Kill { permanent: false }),
        ]),
    )
    .unwrap();
    assert_eq!(r.corrupt_fallbacks, 1);
    assert!((r.time.lost_work_s[campaign::CORRUPT_CHECKPOINT_CAUSE] - 100.0).abs() < 1e-9);
    assert!((r.time.downtime_s["kill"] - 170.0).abs() < 1e-9, "a second load: {:?}", r.time.downtime_s);
    assert_time_adds_up(&config, &r);
    let slow = run_campaign(
        &config,
        &plan(vec![
            (1000.0, FaultTarget::Rank(1), FaultKind::Slow { factor: 2.0 }),
            (3000.0, FaultTarget::Rank(1), FaultKind::Kill { permanent: false }),
        ]),
    )
    .unwrap();
    assert_eq!(slow.slowdowns, 1);
    assert!(slow.time.slowdown_s > 500.0 && slow.time.slowdown_s < 1000.0, "{:?}", slow.time);
    assert_time_adds_up(&config, &slow);
}

fn llama3_config(interval_s: f64, mode: CheckpointMode) -> CampaignConfig {
    let costs = checkpoint_costs(&CheckpointSizing {
        checkpoint_bytes: checkpoint_bytes(405_800_000_000),
        gpus: LLAMA3.gpus,
        storage_bytes_per_s: 2e12,
        host_link_bytes_per_s: 64e9,
    })
    .unwrap();
    CampaignConfig {
        horizon_s: 54.0 * DAY_S,
        step_time_s: 5.6,
        tokens_per_step: 2048.0 * 8192.0,
        fleet: LLAMA3,
        checkpoint: CheckpointPolicy { interval_s, mode, costs },
        recovery: RecoveryConfig {
            detect_s: 30.0,
            hang_timeout_s: 600.0,
            restart_s: 600.0,
            spare_nodes: 32,
            repair_s: 3.0 * DAY_S,
        },
    }
}

#[test]
fn llama3_campaign_matches_the_published_interruptions_and_ettr() {
    let model = FailureModel::llama3();
    let base = llama3_config(1.0, CheckpointMode::Sync);
    let daly = daly_interval_s(base.checkpoint.costs.write_s, model.mtbf_s(LLAMA3));
    let config = StudyConfig {
        campaign: llama3_config(daly, CheckpointMode::Sync),
        seeds: 40,
        first_seed: 0,
        sweep_intervals_s: Vec::new(),
    };
    let study = run_study(&config, PlanSource::Sampled(&model)).unwrap();
    let unexpected = study.unexpected_interruptions.mean;
    assert!((unexpected - 419.0).abs() < 41.9, "unexpected interruptions {unexpected}");
    // Llama 3: "> 90% effective training time" with a 10-minute restart and Daly's interval.
    assert!(study.ettr.p50 > 0.90, "ETTR {:?}", study.ettr);
    for r in &study.runs {
        assert_time_adds_up(&config.campaign, r);
    }
}

#[test]
fn with_exponential_failures_the_best_simulated_interval_is_dalys() {
    let model = FailureModel::llama3().without_planned();
    let base = llama3_config(1.0, CheckpointMode::Sync);
    let mtbf_s = model.mtbf_s(LLAMA3);
    let daly = daly_interval_s(base.checkpoint.costs.write_s, mtbf_s);
    let config = StudyConfig {
        campaign: llama3_config(daly, CheckpointMode::Sync),
        seeds: 100,
        first_seed: 0,
        sweep_intervals_s: interval_grid(daly, 4.0, 29, base.step_time_s),
    };
    let study = run_study(&config, PlanSource::Sampled(&model)).unwrap();
    let fitted = study.fitted_best_interval_s.unwrap();
    let best = study.best_interval_s.unwrap();
    assert!((fitted / daly - 1.0).abs() < 0.10, "fitted {fitted:.0} s vs Daly {daly:.0} s");
    assert!((best / daly - 1.0).abs() < 0.25, "best {best:.0} s vs Daly {daly:.0} s");
}

#[test]
fn studies_are_deterministic() {
    let model = FailureModel::llama3();
    let config = StudyConfig {
        campaign: llama3_config(300.0, CheckpointMode::Async),
        seeds: 6,
        first_seed: 11,
        sweep_intervals_s: vec![100.0, 300.0],
    };
    let a = run_study(&config, PlanSource::Sampled(&model)).unwrap();
    let b = run_study(&config, PlanSource::Sampled(&model)).unwrap();
    assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
}
