//! What a campaign takes and what it returns: configuration, time breakdown, result.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{FaultsError, check_min};
use crate::policy::{CheckpointCosts, CheckpointMode};
use crate::rates::Fleet;

/// The cause name under which corrupt-checkpoint fallbacks are reported.
pub const CORRUPT_CHECKPOINT_CAUSE: &str = "corrupt checkpoint";
/// The cause name for time blocked on checkpoints.
pub const CHECKPOINTING_CAUSE: &str = "checkpointing";
/// The cause name for the extra time of slowed-down steps.
pub const SLOWDOWN_CAUSE: &str = "slowdown";

/// Everything one campaign needs besides the fault plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignConfig {
    /// Length of the campaign, seconds of wall time.
    pub horizon_s: f64,
    /// Seconds per training step without faults (from the step simulator, or given).
    pub step_time_s: f64,
    /// Tokens per training step.
    pub tokens_per_step: f64,
    /// The job's size.
    pub fleet: Fleet,
    /// When and how checkpoints are taken.
    pub checkpoint: CheckpointPolicy,
    /// How the job recovers.
    pub recovery: RecoveryConfig,
}

/// When and how checkpoints are taken.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CheckpointPolicy {
    /// Training time between checkpoints, seconds; rounded to whole steps (at least one).
    pub interval_s: f64,
    /// Sync or async.
    pub mode: CheckpointMode,
    /// What one checkpoint costs.
    pub costs: CheckpointCosts,
}

/// How the job detects failures and recovers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecoveryConfig {
    /// From a process dying to the job noticing, seconds.
    pub detect_s: f64,
    /// How long a stalled collective waits before the watchdog declares a hang, seconds.
    pub hang_timeout_s: f64,
    /// Re-scheduling and re-initialising the job (communicators included), not counting the checkpoint load.
    pub restart_s: f64,
    /// Spare nodes at the start.
    pub spare_nodes: u32,
    /// Time for a broken node to be repaired and rejoin the spare pool, seconds.
    pub repair_s: f64,
}

/// Where the wall time of a campaign went, seconds. The parts add up to the horizon.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeBreakdown {
    /// Steps that count: final step × fault-free step time.
    pub useful_s: f64,
    /// Blocked on checkpoints (sync writes, async snapshots, waiting for a previous write).
    pub checkpoint_s: f64,
    /// The extra time of slowed-down steps.
    pub slowdown_s: f64,
    /// Work done and then thrown away by restoring an older checkpoint, per cause.
    pub lost_work_s: BTreeMap<String, f64>,
    /// Not training: detection, waiting for a spare, restart, checkpoint load, hangs, drains; per cause.
    pub downtime_s: BTreeMap<String, f64>,
    /// The step in progress at the end of the window.
    pub in_flight_s: f64,
}

impl TimeBreakdown {
    /// The sum of every part; equals the horizon.
    pub fn total_s(&self) -> f64 {
        self.useful_s
            + self.checkpoint_s
            + self.slowdown_s
            + self.lost_work_s.values().sum::<f64>()
            + self.downtime_s.values().sum::<f64>()
            + self.in_flight_s
    }
}

/// The outcome of one campaign.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignResult {
    /// Interruptions (the job stopped and restarted), planned and unexpected.
    pub interruptions: u64,
    /// Unexpected interruptions.
    pub unexpected_interruptions: u64,
    /// Planned interruptions (drains).
    pub planned_interruptions: u64,
    /// Interruptions per cause.
    pub interruptions_by_cause: BTreeMap<String, u64>,
    /// Effective training time ratio: useful training time / wall time.
    pub ettr: f64,
    /// Tokens of kept steps per second of wall time.
    pub goodput_tokens_per_s: f64,
    /// Steps kept at the end of the window.
    pub steps: u64,
    /// Checkpoints that became durable.
    pub checkpoints: u64,
    /// Steps between checkpoints (the interval rounded to whole steps).
    pub checkpoint_every_steps: u64,
    /// Where the time went.
    pub time: TimeBreakdown,
    /// GPU-hours not spent on kept steps, per cause (checkpointing and slowdowns included).
    pub lost_gpu_hours_by_cause: BTreeMap<String, f64>,
    /// Restarts that had to wait for a repaired node, and the total wait, seconds.
    pub spare_waits: u64,
    /// Total time spent waiting for a spare node, seconds.
    pub spare_wait_s: f64,
    /// Short hangs absorbed without a restart.
    pub stalls: u64,
    /// Slowdowns.
    pub slowdowns: u64,
    /// Restores that found a corrupt checkpoint and fell back to an older one.
    pub corrupt_fallbacks: u64,
    /// Events the engine processed.
    pub events: u64,
}

/// Steps between checkpoints for an interval: `interval_s / step_time_s` rounded, at least one.
pub fn every_steps(interval_s: f64, step_time_s: f64) -> u64 {
    ((interval_s / step_time_s).round() as u64).max(1)
}

/// Checks a campaign configuration, naming the first bad value.
pub fn validate(config: &CampaignConfig) -> Result<(), FaultsError> {
    check_min("horizon (s)", config.horizon_s, 0.0, false)?;
    check_min("step time (s)", config.step_time_s, 0.0, false)?;
    check_min("tokens per step", config.tokens_per_step, 0.0, true)?;
    check_min("GPUs", config.fleet.gpus as f64, 1.0, true)?;
    check_min("checkpoint interval (s)", config.checkpoint.interval_s, 0.0, false)?;
    let c = &config.checkpoint.costs;
    check_min("checkpoint write (s)", c.write_s, 0.0, true)?;
    check_min("checkpoint snapshot (s)", c.snapshot_s, 0.0, true)?;
    check_min("checkpoint load (s)", c.load_s, 0.0, true)?;
    let r = &config.recovery;
    check_min("detection time (s)", r.detect_s, 0.0, true)?;
    check_min("hang timeout (s)", r.hang_timeout_s, 0.0, true)?;
    check_min("restart time (s)", r.restart_s, 0.0, true)?;
    check_min("repair time (s)", r.repair_s, 0.0, true)
}
