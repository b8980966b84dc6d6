//! What a worker is doing, for the coordinator's hang watchdog: how many ops it has finished, and whether one
//! of its ops is doing its own work (computing, sending) rather than waiting for a peer's data. A hung worker
//! keeps heartbeating, but its count stops while it is busy; the peers it holds up stop too, waiting.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A worker's activity counters.
#[derive(Debug, Default)]
pub struct Activity {
    finished: AtomicU64,
    busy: AtomicU32,
}

/// Marks one op in flight until dropped (also when its step is abandoned).
#[derive(Debug)]
pub struct InFlight<'a> {
    activity: &'a Activity,
    busy: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.busy {
            self.activity.busy.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Activity {
    /// An op starts; `waits_on_peer` when it only waits for another rank's data (a receive, a collective).
    pub fn begin(&self, waits_on_peer: bool) -> InFlight<'_> {
        if !waits_on_peer {
            self.busy.fetch_add(1, Ordering::Relaxed);
        }
        InFlight { activity: self, busy: !waits_on_peer }
    }

    /// An op finished.
    pub fn finish(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }

    /// Ops finished since the worker started.
    pub fn finished(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }

    /// Whether an op is doing its own work now.
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_counts_only_ops_doing_their_own_work_and_ends_with_them() {
        let a = Activity::default();
        {
            let _recv = a.begin(true);
            assert!(!a.busy());
            let _compute = a.begin(false);
            assert!(a.busy());
        }
        assert!(!a.busy());
        a.finish();
        assert_eq!(a.finished(), 1);
    }
}
