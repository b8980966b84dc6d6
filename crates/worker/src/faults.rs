//! Injected faults as a worker experiences them: hung (no heartbeats, no progress) until a deadline, slow
//! (compute stretched by a factor) until a deadline, partitioned (no call answered from, and no peer reached
//! beyond, one side of a network split) until a deadline, or armed to die half-way through its next
//! checkpoint write. A plain kill ends the process through [`crate::run`].

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The fault state of a worker.
#[derive(Debug, Default)]
pub struct FaultState {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    hung_until: Option<Instant>,
    frozen_until: Option<Instant>,
    slow_until: Option<(Instant, f64)>,
    partition: Option<(Instant, BTreeSet<String>)>,
    kill_on_checkpoint: bool,
}

impl FaultState {
    /// Hangs the worker for `duration_s`: no progress, heartbeats go on.
    pub fn hang(&self, duration_s: f64) {
        self.lock().hung_until = Some(Instant::now() + Duration::from_secs_f64(duration_s));
    }

    /// Freezes the worker for `duration_s`: no progress and no heartbeats.
    pub fn freeze(&self, duration_s: f64) {
        let until = Instant::now() + Duration::from_secs_f64(duration_s);
        let mut inner = self.lock();
        inner.frozen_until = Some(until);
        inner.hung_until = Some(inner.hung_until.map_or(until, |h| h.max(until)));
    }

    /// Slows compute by `factor` for `duration_s`.
    pub fn slow(&self, duration_s: f64, factor: f64) {
        self.lock().slow_until = Some((Instant::now() + Duration::from_secs_f64(duration_s), factor));
    }

    /// Cuts the worker off from everyone but the workers at `peers` for `duration_s`.
    pub fn partition(&self, duration_s: f64, peers: impl IntoIterator<Item = String>) {
        let until = Instant::now() + Duration::from_secs_f64(duration_s);
        self.lock().partition = Some((until, peers.into_iter().collect()));
    }

    /// Ends a slow-down (a restart moves the job off the straggling state).
    pub fn clear_slow(&self) {
        self.lock().slow_until = None;
    }

    /// Arms a kill that fires half-way through the next checkpoint shard write.
    pub fn arm_kill_on_checkpoint(&self) {
        self.lock().kill_on_checkpoint = true;
    }

    /// Whether a kill is armed for the next checkpoint write (disarming it).
    pub fn take_kill_on_checkpoint(&self) -> bool {
        std::mem::take(&mut self.lock().kill_on_checkpoint)
    }

    /// How long the worker stays hung from now, if it is.
    pub fn hung_for(&self) -> Option<Duration> {
        let until = self.lock().hung_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Whether the worker is partitioned now.
    pub fn is_partitioned(&self) -> bool {
        self.lock().partition.as_ref().is_some_and(|(until, _)| Instant::now() < *until)
    }

    /// Whether the worker at `address` is on the far side of a partition now.
    pub fn cut_off_from(&self, address: &str) -> bool {
        self.lock()
            .partition
            .as_ref()
            .is_some_and(|(until, peers)| Instant::now() < *until && !peers.contains(address))
    }

    /// Whether heartbeats must not go out now (frozen or partitioned).
    pub fn silent(&self) -> bool {
        let frozen = self.lock().frozen_until.is_some_and(|u| Instant::now() < u);
        frozen || self.is_partitioned()
    }

    /// Waits until any hang is over.
    pub async fn wait_while_hung(&self) {
        while let Some(d) = self.hung_for() {
            tokio::time::sleep(d).await;
        }
    }

    /// The current compute slow-down factor (1 when none).
    pub fn slow_factor(&self) -> f64 {
        match self.lock().slow_until {
            Some((until, f)) if Instant::now() < until => f,
            _ => 1.0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_cuts_off_everyone_outside_the_peer_set_until_it_heals() {
        let f = FaultState::default();
        assert!(!f.cut_off_from("http://a") && !f.silent());
        f.partition(0.2, ["http://a".to_string()]);
        assert!(!f.cut_off_from("http://a"));
        assert!(f.cut_off_from("http://b"));
        assert!(f.silent());
        std::thread::sleep(Duration::from_millis(250));
        assert!(!f.cut_off_from("http://b") && !f.silent());
    }

    #[test]
    fn a_hang_keeps_heartbeats_a_freeze_stops_them() {
        let f = FaultState::default();
        f.hang(0.2);
        assert!(f.hung_for().is_some() && !f.silent());
        let g = FaultState::default();
        g.freeze(0.2);
        assert!(g.hung_for().is_some() && g.silent());
    }

    #[test]
    fn a_kill_on_checkpoint_fires_once() {
        let f = FaultState::default();
        assert!(!f.take_kill_on_checkpoint());
        f.arm_kill_on_checkpoint();
        assert!(f.take_kill_on_checkpoint());
        assert!(!f.take_kill_on_checkpoint());
    }
}
