//! Injected faults as a worker experiences them: hung (no heartbeats, no progress) until a deadline, or slow
//! (compute stretched by a factor) until a deadline. A kill ends the process through [`crate::run`].

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
    slow_until: Option<(Instant, f64)>,
}

impl FaultState {
    /// Hangs the worker for `duration_s`.
    pub fn hang(&self, duration_s: f64) {
        self.lock().hung_until = Some(Instant::now() + Duration::from_secs_f64(duration_s));
    }

    /// Slows compute by `factor` for `duration_s`.
    pub fn slow(&self, duration_s: f64, factor: f64) {
        self.lock().slow_until = Some((Instant::now() + Duration::from_secs_f64(duration_s), factor));
    }

    /// How long the worker stays hung from now, if it is.
    pub fn hung_for(&self) -> Option<Duration> {
        let until = self.lock().hung_until?;
        until.checked_duration_since(Instant::now())
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
