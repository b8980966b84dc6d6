//! Measures campaign speed: `cargo run --release -p faults --example campaign_bench [SEEDS]` (default 100).
//! Runs the Llama 3 405B setup (16,384 GPUs, 54 days, Table 5 rates, 5.6 s steps, sync checkpoints at Daly's
//! interval) for SEEDS seeds, one thread and then all threads, and prints campaign-days simulated per wall
//! second, plus one campaign's time breakdown. Prints figures; asserts nothing about speed.
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![allow(clippy::disallowed_methods, reason = "a benchmark reads the wall clock")]

use std::time::Instant;

use faults::{
    CampaignConfig, CheckpointMode, CheckpointPolicy, CheckpointSizing, FailureModel, Fleet, PlanSource,
    RecoveryConfig, SampleConfig, StudyConfig, checkpoint_bytes, checkpoint_costs, daly_interval_s,
    run_campaign, run_study, sample_plan,
};

fn main() {
    let seeds: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let fleet = Fleet { gpus: 16_384, gpus_per_node: 8 };
    let model = FailureModel::llama3();
    let costs = checkpoint_costs(&CheckpointSizing {
        checkpoint_bytes: checkpoint_bytes(405_800_000_000),
        gpus: fleet.gpus,
        storage_bytes_per_s: 2e12,
        host_link_bytes_per_s: 64e9,
    })
    .expect("valid sizing");
    let days = 54.0;
    let campaign = CampaignConfig {
        horizon_s: days * 86_400.0,
        step_time_s: 5.6,
        tokens_per_step: 2048.0 * 8192.0,
        fleet,
        checkpoint: CheckpointPolicy {
            interval_s: daly_interval_s(costs.write_s, model.mtbf_s(fleet)),
            mode: CheckpointMode::Sync,
            costs,
        },
        recovery: RecoveryConfig {
            detect_s: 30.0,
            hang_timeout_s: 600.0,
            restart_s: 600.0,
            spare_nodes: 32,
            repair_s: 3.0 * 86_400.0,
        },
    };

    let plan = sample_plan(&model, &SampleConfig { fleet, horizon_s: campaign.horizon_s, seed: 0 });
    let one = run_campaign(&campaign, &plan).expect("campaign runs");
    println!("seed 0: {} interruptions, ETTR {:.4}, {} events", one.interruptions, one.ettr, one.events);
    println!("  time: {:#?}", one.time);
    println!("  spare waits {} ({:.0} s)", one.spare_waits, one.spare_wait_s);

    let t = Instant::now();
    let mut n_plans = 0;
    for seed in 0..seeds {
        n_plans +=
            sample_plan(&model, &SampleConfig { fleet, horizon_s: campaign.horizon_s, seed }).faults.len();
    }
    let sample_s = t.elapsed().as_secs_f64();
    println!("sampling: {seeds} plans ({n_plans} faults) in {:.3} s", sample_s);

    let t = Instant::now();
    for _ in 0..seeds {
        run_campaign(&campaign, &plan).expect("campaign runs");
    }
    let one_thread_s = t.elapsed().as_secs_f64();
    println!(
        "campaign, 1 thread: {:.3} ms per 54-day campaign = {:.0} campaign-days per wall second",
        one_thread_s / seeds as f64 * 1e3,
        seeds as f64 * days / one_thread_s
    );

    let config = StudyConfig { campaign, seeds, first_seed: 0, sweep_intervals_s: Vec::new() };
    let t = Instant::now();
    let study = run_study(&config, PlanSource::Sampled(&model)).expect("study runs");
    let study_s = t.elapsed().as_secs_f64();
    println!(
        "study ({} threads, sampling included): {seeds} seeds in {:.3} s = {:.0} campaign-days per wall second; \
         ETTR p50 {:.4}",
        rayon::current_num_threads(),
        study_s,
        seeds as f64 * days / study_s,
        study.ettr.p50
    );
}
