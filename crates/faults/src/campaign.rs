//! One long-horizon campaign: a training job run for days against a fault plan, on the `des` engine.
//!
//! Events are the plan's faults, the end of a short hang, a restart completing, a repaired node returning to
//! the spare pool, and the end of the window. Between two events the job is periodic (train, checkpoint), so
//! its progress is closed-form (see the private `segment` module).
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

use crate::error::FaultsError;
pub use crate::outcome::{
    CHECKPOINTING_CAUSE, CORRUPT_CHECKPOINT_CAUSE, CampaignConfig, CampaignResult, CheckpointPolicy,
    RecoveryConfig, SLOWDOWN_CAUSE, TimeBreakdown, every_steps, validate,
};
use crate::plan::{FaultKind, FaultPlan};
use crate::segment::{Progress, Segment};

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
