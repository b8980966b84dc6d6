//! One long-horizon campaign: a training job run for days against a fault plan, on the `des` engine.
//!
//! Events are the plan's faults, the end of a short hang, a restart completing, a repaired node returning to
//! the spare pool, and the end of the window. Between two events the job is periodic (train, checkpoint), so
//! its progress is closed-form ([`crate::segment`]).
//!
//! What a fault does:
//! - `kill`, a `hang` without a duration or at least `hang_timeout_s` long, `partition`: an interruption. The job
//!   stops; after the detection latency (`detect_s` for a kill, `hang_timeout_s` for a hang or partition) it
//!   restarts (`restart_s`: re-schedule, re-initialise communicators) and loads the newest durable, intact
//!   checkpoint (`load_s`); the work since that checkpoint is lost. A `permanent` kill also takes a spare node;
//!   the broken node returns to the pool after `repair_s`, and with no spare left the job waits for one.
//! - a shorter `hang`: training stalls for its duration, then continues.
//! - `slow {factor}`: steps take `factor` times longer until the next restart.
//! - `corrupt_checkpoint {step}`: restoring that checkpoint fails its checksum (one wasted load) and the job
//!   falls back to the one before.
//! - `drain` (planned): the job writes a checkpoint of the steps done, stops and restarts; only the step in
//!   progress is lost.
//!
//! Faults that arrive while the job is down restart the recovery (a kill or hang during a restart makes it fail
//! again); a `drain` or short hang while down does nothing; a `corrupt_checkpoint` that arrives while the job
//! is already down does not change the checkpoint that restart loads.
//!
//! A slowdown or short hang splits the current stretch: its step in progress is counted as lost, the next
//! checkpoint comes `n` steps later, and an async write still in flight is dropped. These are approximations;
//! the default failure model produces neither.

use std::collections::{BTreeMap, BTreeSet};

use des::{Engine, EventId, SimTime};
use serde::{Deserialize, Serialize};

use crate::error::{FaultsError, check_min};
use crate::plan::{FaultKind, FaultPlan};
use crate::policy::{CheckpointCosts, CheckpointMode};
use crate::rates::Fleet;
use crate::segment::{Progress, Segment};

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

/// Runs one campaign of `config` against `plan`. Deterministic: the same inputs give the same result.
pub fn run_campaign(config: &CampaignConfig, plan: &FaultPlan) -> Result<CampaignResult, FaultsError> {
    validate(config)?;
    let mut engine: Engine<Ev> = Engine::new(0);
    let horizon = SimTime::from_secs_f64(config.horizon_s);
    for (i, f) in plan.faults.iter().enumerate() {
        if f.time_s < config.horizon_s {
            engine.schedule_at(SimTime::from_secs_f64(f.time_s), Ev::Fault(i));
        }
    }
    let mut state = State::new(config);
    engine.run_until(horizon, |engine, at, ev| state.handle(engine, plan, at.as_secs_f64(), ev));
    let events = engine.events_processed();
    Ok(state.finish(events))
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    Fault(usize),
    Resume,
    RestartDone,
    Repaired,
}

enum Phase {
    Running(Segment),
    Stalled(Stall),
    Down(Down),
}

struct Stall {
    since_s: f64,
    until_s: f64,
    cause: String,
    steps: u64,
    durable: u64,
    resume: EventId,
}

struct Down {
    since_s: f64,
    cause: String,
    steps_at_stop: u64,
    durable_at_stop: u64,
    restore: u64,
    loads: u64,
    ready_s: f64,
    restart: Option<EventId>,
    waiting_for_spare: bool,
}

struct State<'a> {
    config: &'a CampaignConfig,
    every_steps: u64,
    phase: Phase,
    slow_factor: f64,
    spares_free: i64,
    corrupt: BTreeSet<u64>,
    /// Durable checkpoints of closed stretches: `(base, every, count)` means `base + j·every`, j = 1..=count.
    history: Vec<(u64, u64, u64)>,
    out: CampaignResult,
}

impl<'a> State<'a> {
    fn new(config: &'a CampaignConfig) -> State<'a> {
        let every_steps = every_steps(config.checkpoint.interval_s, config.step_time_s);
        let mut state = State {
            config,
            every_steps,
            phase: Phase::Down(Down {
                since_s: 0.0,
                cause: String::new(),
                steps_at_stop: 0,
                durable_at_stop: 0,
                restore: 0,
                loads: 1,
                ready_s: 0.0,
                restart: None,
                waiting_for_spare: false,
            }),
            slow_factor: 1.0,
            spares_free: i64::from(config.recovery.spare_nodes),
            corrupt: BTreeSet::new(),
            history: Vec::new(),
            out: CampaignResult { checkpoint_every_steps: every_steps, ..CampaignResult::default() },
        };
        state.phase = Phase::Running(state.segment(0.0, 0, 0));
        state
    }

    fn segment(&self, start_s: f64, base_step: u64, durable_floor: u64) -> Segment {
        let c = &self.config.checkpoint;
        Segment {
            start_s,
            base_step,
            durable_floor,
            step_s: self.config.step_time_s * self.slow_factor,
            every_steps: self.every_steps,
            mode: c.mode,
            write_s: c.costs.write_s,
            snapshot_s: c.costs.snapshot_s,
        }
    }

    fn handle(&mut self, engine: &mut Engine<Ev>, plan: &FaultPlan, t: f64, ev: Ev) {
        match ev {
            Ev::Fault(i) => self.fault(engine, plan, i, t),
            Ev::Resume => {
                if let Phase::Stalled(s) = &self.phase {
                    let (steps, durable) = (s.steps, s.durable);
                    *self.out.time.downtime_s.entry(s.cause.clone()).or_default() += t - s.since_s;
                    self.phase = Phase::Running(self.segment(t, steps, durable));
                }
            }
            Ev::RestartDone => self.restart_done(t),
            Ev::Repaired => {
                self.spares_free += 1;
                if let Phase::Down(d) = &mut self.phase
                    && d.waiting_for_spare
                    && self.spares_free >= 0
                {
                    d.waiting_for_spare = false;
                    self.out.spare_waits += 1;
                    self.out.spare_wait_s += (t - d.ready_s).max(0.0);
                    let ready_s = d.ready_s.max(t);
                    self.schedule_restart(engine, ready_s);
                }
            }
        }
    }

    fn fault(&mut self, engine: &mut Engine<Ev>, plan: &FaultPlan, i: usize, t: f64) {
        let entry = &plan.faults[i];
        let cause = entry.cause_name().to_string();
        let r = self.config.recovery;
        match &entry.kind {
            FaultKind::Kill { permanent } => self.interrupt(engine, t, cause, r.detect_s, *permanent, false),
            FaultKind::Partition { .. } => self.interrupt(engine, t, cause, r.hang_timeout_s, false, false),
            FaultKind::Hang { duration_s } => match duration_s {
                Some(d) if *d < r.hang_timeout_s => self.stall(engine, t, cause, *d),
                _ => self.interrupt(engine, t, cause, r.hang_timeout_s, false, false),
            },
            FaultKind::Slow { factor } => {
                self.out.slowdowns += 1;
                self.slow_factor = self.slow_factor.max(*factor);
                if let Phase::Running(_) = self.phase {
                    let (steps, durable, _) = self.stop(t, &cause);
                    self.phase = Phase::Running(self.segment(t, steps, durable));
                }
            }
            FaultKind::CorruptCheckpoint { step } => {
                self.corrupt.insert(*step);
            }
            FaultKind::Drain => {
                if !matches!(self.phase, Phase::Down(_)) {
                    let write_s = self.config.checkpoint.costs.write_s;
                    self.interrupt(engine, t, cause, write_s, false, true);
                }
            }
        }
    }

    /// Stops the running or stalled job at `t`: books its checkpoint time, slowdown and step in progress
    /// (lost, to `cause`), and returns (steps done, newest durable checkpoint, the stretch's progress).
    fn stop(&mut self, t: f64, cause: &str) -> (u64, u64, Option<Progress>) {
        match &self.phase {
            Phase::Running(seg) => {
                let p = seg.progress(t);
                let slow_extra_s = seg.step_s - self.config.step_time_s;
                self.out.time.checkpoint_s += p.blocked_s;
                self.out.time.slowdown_s += seg.steps_in(&p) as f64 * slow_extra_s;
                *self.out.time.lost_work_s.entry(cause.to_string()).or_default() += p.partial_s;
                self.history.push((seg.base_step, seg.every_steps, p.checkpoints));
                self.out.checkpoints += p.checkpoints;
                (p.steps, p.durable_step, Some(p))
            }
            Phase::Stalled(s) => {
                *self.out.time.downtime_s.entry(s.cause.clone()).or_default() += t - s.since_s;
                (s.steps, s.durable, None)
            }
            Phase::Down(d) => (d.steps_at_stop, d.durable_at_stop, None),
        }
    }

    fn stall(&mut self, engine: &mut Engine<Ev>, t: f64, cause: String, duration_s: f64) {
        match &mut self.phase {
            Phase::Down(_) => {}
            Phase::Stalled(s) => {
                // Overlapping hangs: the stall lasts until the later one ends.
                if t + duration_s > s.until_s {
                    s.until_s = t + duration_s;
                    engine.cancel(s.resume);
                    s.resume = engine.schedule_at(SimTime::from_secs_f64(s.until_s), Ev::Resume);
                }
            }
            Phase::Running(_) => {
                self.out.stalls += 1;
                let (steps, durable, _) = self.stop(t, &cause);
                let resume = engine.schedule_at(SimTime::from_secs_f64(t + duration_s), Ev::Resume);
                let until_s = t + duration_s;
                self.phase = Phase::Stalled(Stall { since_s: t, until_s, cause, steps, durable, resume });
            }
        }
    }

    fn interrupt(
        &mut self,
        engine: &mut Engine<Ev>,
        t: f64,
        cause: String,
        lead_s: f64,
        needs_spare: bool,
        planned: bool,
    ) {
        self.out.interruptions += 1;
        if planned {
            self.out.planned_interruptions += 1;
        } else {
            self.out.unexpected_interruptions += 1;
        }
        *self.out.interruptions_by_cause.entry(cause.clone()).or_default() += 1;
        let (steps, durable) = match &mut self.phase {
            Phase::Down(d) => {
                *self.out.time.downtime_s.entry(d.cause.clone()).or_default() += t - d.since_s;
                if let Some(id) = d.restart.take() {
                    engine.cancel(id);
                }
                (d.steps_at_stop, d.durable_at_stop)
            }
            _ => {
                let (steps, durable, _) = self.stop(t, &cause);
                if let Phase::Stalled(s) = &self.phase {
                    engine.cancel(s.resume);
                }
                // A drain writes a checkpoint of the steps done before stopping.
                (steps, if planned { steps } else { durable })
            }
        };
        if planned && steps > 0 {
            self.history.push((steps - 1, 1, 1));
            self.out.checkpoints += 1;
            self.corrupt.remove(&steps);
        }
        if needs_spare {
            self.spares_free -= 1;
            engine.schedule_at(SimTime::from_secs_f64(t + self.config.recovery.repair_s), Ev::Repaired);
        }
        let ready_s = t + lead_s;
        let (restore, skipped) = self.restore_point(durable);
        self.phase = Phase::Down(Down {
            since_s: t,
            cause,
            steps_at_stop: steps,
            durable_at_stop: durable,
            restore,
            loads: 1 + skipped,
            ready_s,
            restart: None,
            waiting_for_spare: false,
        });
        if self.spares_free >= 0 {
            self.schedule_restart(engine, ready_s);
        } else if let Phase::Down(d) = &mut self.phase {
            d.waiting_for_spare = true;
        }
    }

    /// The newest checkpoint at or before `durable` that is not corrupt, and how many corrupt ones were
    /// skipped on the way. Step 0 (the initial weights) is always intact.
    fn restore_point(&self, durable: u64) -> (u64, u64) {
        let mut skipped = 0;
        for &(base, every, count) in self.history.iter().rev() {
            for j in (1..=count).rev() {
                let step = base + j * every;
                if step > durable {
                    continue;
                }
                if self.corrupt.contains(&step) {
                    skipped += 1;
                } else {
                    return (step, skipped);
                }
            }
        }
        (0, skipped)
    }

    fn schedule_restart(&mut self, engine: &mut Engine<Ev>, ready_s: f64) {
        let Phase::Down(d) = &self.phase else { return };
        let loads = d.loads;
        let r = &self.config.recovery;
        let done_s = ready_s + r.restart_s + loads as f64 * self.config.checkpoint.costs.load_s;
        let id = engine.schedule_at(SimTime::from_secs_f64(done_s), Ev::RestartDone);
        if let Phase::Down(d) = &mut self.phase {
            d.restart = Some(id);
        }
    }

    fn book_lost_work(&mut self, d: &Down) {
        let step_s = self.config.step_time_s;
        let lost = &mut self.out.time.lost_work_s;
        *lost.entry(d.cause.clone()).or_default() += (d.steps_at_stop - d.durable_at_stop) as f64 * step_s;
        if d.restore < d.durable_at_stop {
            self.out.corrupt_fallbacks += 1;
            *lost.entry(CORRUPT_CHECKPOINT_CAUSE.to_string()).or_default() +=
                (d.durable_at_stop - d.restore) as f64 * step_s;
        }
    }

    fn restart_done(&mut self, t: f64) {
        if !matches!(self.phase, Phase::Down(_)) {
            return;
        }
        let placeholder = Phase::Running(self.segment(t, 0, 0));
        let Phase::Down(d) = std::mem::replace(&mut self.phase, placeholder) else {
            return;
        };
        *self.out.time.downtime_s.entry(d.cause.clone()).or_default() += t - d.since_s;
        self.book_lost_work(&d);
        // The abandoned timeline's checkpoints past the restore point are gone; new ones will replace them.
        let restore = d.restore;
        self.corrupt.retain(|&s| s <= restore);
        for entry in &mut self.history {
            let (base, every, count) = *entry;
            if base >= restore {
                entry.2 = 0;
            } else if base + count * every > restore {
                entry.2 = (restore - base) / every;
            }
        }
        self.history.retain(|e| e.2 > 0);
        self.slow_factor = 1.0;
        self.phase = Phase::Running(self.segment(t, restore, restore));
    }

    fn finish(mut self, events: u64) -> CampaignResult {
        let horizon_s = self.config.horizon_s;
        let placeholder = Phase::Running(self.segment(0.0, 0, 0));
        let final_steps = match std::mem::replace(&mut self.phase, placeholder) {
            Phase::Running(seg) => {
                let p = seg.progress(horizon_s);
                self.out.time.checkpoint_s += p.blocked_s;
                self.out.time.slowdown_s += seg.steps_in(&p) as f64 * (seg.step_s - self.config.step_time_s);
                self.out.time.in_flight_s = p.partial_s;
                self.out.checkpoints += p.checkpoints;
                p.steps
            }
            Phase::Stalled(s) => {
                *self.out.time.downtime_s.entry(s.cause.clone()).or_default() += horizon_s - s.since_s;
                s.steps
            }
            Phase::Down(d) => {
                *self.out.time.downtime_s.entry(d.cause.clone()).or_default() += horizon_s - d.since_s;
                self.book_lost_work(&d);
                d.restore
            }
        };
        let config = self.config;
        let out = &mut self.out;
        out.steps = final_steps;
        out.time.useful_s = final_steps as f64 * config.step_time_s;
        out.ettr = out.time.useful_s / horizon_s;
        out.goodput_tokens_per_s = final_steps as f64 * config.tokens_per_step / horizon_s;
        out.events = events;
        let gpu_hours = config.fleet.gpus as f64 / 3600.0;
        let mut lost = BTreeMap::new();
        for (cause, s) in out.time.lost_work_s.iter().chain(&out.time.downtime_s) {
            *lost.entry(cause.clone()).or_insert(0.0) += s * gpu_hours;
        }
        if out.time.checkpoint_s > 0.0 {
            lost.insert(CHECKPOINTING_CAUSE.to_string(), out.time.checkpoint_s * gpu_hours);
        }
        if out.time.slowdown_s > 0.0 {
            lost.insert(SLOWDOWN_CAUSE.to_string(), out.time.slowdown_s * gpu_hours);
        }
        out.lost_gpu_hours_by_cause = lost;
        self.out
    }
}
