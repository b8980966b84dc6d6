//! Closed-form progress of a job between two events.
//!
//! While nothing fails, a job is periodic: it runs `n` steps, then checkpoints. So where it stands at any time —
//! steps done, the newest durable checkpoint, time spent blocked on checkpoints — is arithmetic, not a stream
//! of events. The campaign simulator keeps one [`Segment`] per uninterrupted stretch and asks it where the job
//! was when the next event arrived, which makes a campaign cost O(faults) instead of O(steps).
//!
//! Sync: the cycle is `n·h` of training then `δw` blocked on the write; checkpoint `k` is durable at `k·P`,
//! `P = n·h + δw`.
//!
//! Async: the cycle is `n·h` of training, a stall until the previous write has finished (if it has not), then
//! `δs` blocked on the snapshot; the write then runs for `δw` in the background. Snapshot `k` ends at
//! `e_k = n·h + δs + (k−1)·P` with `P = max(n·h, δw) + δs`, and is durable at `e_k + δw`.

use crate::policy::CheckpointMode;

/// One uninterrupted stretch of training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Segment {
    /// When the stretch began, seconds since the start of the campaign.
    pub(crate) start_s: f64,
    /// Steps done when it began.
    pub(crate) base_step: u64,
    /// The newest durable checkpoint when it began (≤ `base_step`).
    pub(crate) durable_floor: u64,
    /// Seconds per step in this stretch.
    pub(crate) step_s: f64,
    /// Steps between checkpoints.
    pub(crate) every_steps: u64,
    /// How checkpoints are written.
    pub(crate) mode: CheckpointMode,
    /// Writing one checkpoint, seconds.
    pub(crate) write_s: f64,
    /// Snapshotting one checkpoint to host memory (async only), seconds.
    pub(crate) snapshot_s: f64,
}

/// Where a segment stands at some time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Progress {
    /// Steps done (complete steps, from the start of the campaign).
    pub(crate) steps: u64,
    /// The newest durable checkpoint's step.
    pub(crate) durable_step: u64,
    /// Checkpoints that became durable in this segment.
    pub(crate) checkpoints: u64,
    /// Time blocked on checkpoints in this segment (writes, snapshots, stalls), seconds.
    pub(crate) blocked_s: f64,
    /// Time spent on the step in progress, seconds.
    pub(crate) partial_s: f64,
}

impl Segment {
    /// Where the segment stands at absolute time `t_s` (≥ `start_s`).
    pub(crate) fn progress(&self, t_s: f64) -> Progress {
        let x = (t_s - self.start_s).max(0.0);
        let n = self.every_steps.max(1);
        let h = self.step_s;
        let train_s = n as f64 * h;
        match self.mode {
            CheckpointMode::Sync => {
                let period_s = train_s + self.write_s;
                let k = (x / period_s).floor() as u64;
                let y = x - k as f64 * period_s;
                let mut p = self.train_phase(k, y, k as f64 * self.write_s);
                p.checkpoints = k;
                p.durable_step = if k == 0 { self.durable_floor } else { self.base_step + k * n };
                p
            }
            CheckpointMode::Async => {
                let stall_s = (self.write_s - train_s).max(0.0);
                let period_s = train_s + stall_s + self.snapshot_s;
                let first_end_s = train_s + self.snapshot_s;
                let (k, cycle_start_s) = if x < first_end_s {
                    (0, 0.0)
                } else {
                    let k = 1 + ((x - first_end_s) / period_s).floor() as u64;
                    (k, first_end_s + (k - 1) as f64 * period_s)
                };
                let blocked_before_s = k as f64 * self.snapshot_s + k.saturating_sub(1) as f64 * stall_s;
                let mut p = self.train_phase(k, x - cycle_start_s, blocked_before_s);
                let durable = if x < first_end_s + self.write_s {
                    0
                } else {
                    (1 + ((x - first_end_s - self.write_s) / period_s).floor() as u64).min(k)
                };
                p.checkpoints = durable;
                p.durable_step = if durable == 0 { self.durable_floor } else { self.base_step + durable * n };
                p
            }
        }
    }

    /// Progress `y` seconds into cycle `k` (after `k` checkpoints), with `blocked_s` spent blocked before it:
    /// first `n` steps, then everything until the cycle ends is blocked time.
    fn train_phase(&self, k: u64, y: f64, blocked_s: f64) -> Progress {
        let n = self.every_steps.max(1);
        let train_s = n as f64 * self.step_s;
        let (steps_in_cycle, partial_s, extra_blocked_s) = if y < train_s {
            let done = ((y / self.step_s).floor() as u64).min(n - 1);
            (done, y - done as f64 * self.step_s, 0.0)
        } else {
            (n, 0.0, y - train_s)
        };
        Progress {
            steps: self.base_step + k * n + steps_in_cycle,
            durable_step: self.durable_floor,
            checkpoints: 0,
            blocked_s: blocked_s + extra_blocked_s,
            partial_s,
        }
    }

    /// Steps done in this segment at `progress`.
    pub(crate) fn steps_in(&self, progress: &Progress) -> u64 {
        progress.steps - self.base_step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(mode: CheckpointMode) -> Segment {
        Segment {
            start_s: 100.0,
            base_step: 50,
            durable_floor: 40,
            step_s: 2.0,
            every_steps: 5,
            mode,
            write_s: 3.0,
            snapshot_s: 0.5,
        }
    }

    /// Wall time splits exactly into steps, blocked time and the step in progress.
    fn assert_time_adds_up(s: &Segment, t: f64) {
        let p = s.progress(t);
        let accounted = s.steps_in(&p) as f64 * s.step_s + p.blocked_s + p.partial_s;
        assert!((accounted - (t - s.start_s)).abs() < 1e-9, "t = {t}: {p:?}");
    }

    #[test]
    fn sync_cycles_train_then_block_on_the_write() {
        let s = segment(CheckpointMode::Sync);
        // Period 5·2 + 3 = 13 s.
        let p = s.progress(100.0 + 9.5);
        assert_eq!((p.steps, p.durable_step, p.checkpoints), (54, 40, 0));
        assert!((p.partial_s - 1.5).abs() < 1e-12);
        let p = s.progress(100.0 + 12.0);
        assert_eq!((p.steps, p.durable_step), (55, 40));
        assert!((p.blocked_s - 2.0).abs() < 1e-12);
        let p = s.progress(100.0 + 13.0);
        assert_eq!((p.steps, p.durable_step, p.checkpoints), (55, 55, 1));
        let p = s.progress(100.0 + 13.0 * 7.0 + 4.0);
        assert_eq!((p.steps, p.durable_step, p.checkpoints), (50 + 35 + 2, 85, 7));
        for i in 0..400 {
            assert_time_adds_up(&s, 100.0 + i as f64 * 0.37);
        }
    }

    #[test]
    fn async_blocks_only_for_the_snapshot_and_counts_a_checkpoint_once_written() {
        let s = segment(CheckpointMode::Async);
        // Write 3 s < 10 s of training: no stall; period 10.5 s; snapshot k ends at 10.5·k, durable 3 s later.
        let p = s.progress(100.0 + 12.0);
        assert_eq!((p.steps, p.durable_step), (55, 40));
        let p = s.progress(100.0 + 13.5);
        assert_eq!((p.steps, p.durable_step, p.checkpoints), (56, 55, 1));
        assert!((p.blocked_s - 0.5).abs() < 1e-12);
        for i in 0..400 {
            assert_time_adds_up(&s, 100.0 + i as f64 * 0.37);
        }
    }

    #[test]
    fn async_stalls_when_the_previous_write_is_still_running() {
        let s = Segment { write_s: 16.0, ..segment(CheckpointMode::Async) };
        // Train 10 s, snapshot 0.5 s (ends 10.5); then 10 s of training, a 6 s stall, the next snapshot ends at 27.
        let p = s.progress(100.0 + 26.0);
        assert_eq!((p.steps, p.durable_step), (60, 40), "the first write ends at 26.5 s");
        assert!((p.blocked_s - 0.5 - 5.5).abs() < 1e-12, "{p:?}");
        let p = s.progress(100.0 + 27.0);
        assert_eq!((p.checkpoints, p.durable_step), (1, 55));
        let p = s.progress(100.0 + 27.0 + 16.0);
        assert_eq!((p.checkpoints, p.durable_step), (2, 60));
        for i in 0..400 {
            assert_time_adds_up(&s, 100.0 + i as f64 * 0.37);
        }
    }
}
