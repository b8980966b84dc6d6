//! The event queue and the loop that drains it.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::SimTime;

/// Names one scheduled event, for [`Engine::cancel`]. Ids are never reused within an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(u64);

/// An event that cannot be scheduled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The requested time is before the current time.
    #[error("cannot schedule an event at {at} ns: the simulation is already at {now} ns")]
    InThePast {
        /// The requested time, in nanoseconds.
        at: u64,
        /// The current time, in nanoseconds.
        now: u64,
    },
}

/// A heap entry: ordered by time, then by scheduling order. The payload does not take part in the order.
struct Entry<E> {
    at: SimTime,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A discrete-event engine over events of type `E`.
pub struct Engine<E> {
    now: SimTime,
    next_seq: u64,
    heap: BinaryHeap<Reverse<Entry<E>>>,
    /// Sequence numbers of cancelled events still in the heap. Usually empty, so the check is one branch.
    cancelled: BTreeSet<u64>,
    n_processed: u64,
    rng: ChaCha8Rng,
}

impl<E> Engine<E> {
    /// An empty engine at time zero whose random generator is seeded with `seed`.
    pub fn new(seed: u64) -> Engine<E> {
        Engine {
            now: SimTime::ZERO,
            next_seq: 0,
            heap: BinaryHeap::new(),
            cancelled: BTreeSet::new(),
            n_processed: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The current simulated time: the time of the last event taken from the queue.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Events taken from the queue and handed out so far (cancelled ones are not counted).
    pub fn events_processed(&self) -> u64 {
        self.n_processed
    }

    /// Events waiting, including cancelled ones not yet skipped.
    pub fn pending(&self) -> usize {
        self.heap.len()
    }

    /// Time of the next event that will fire (cancelled events are skipped), without taking it.
    pub fn peek_time(&mut self) -> Option<SimTime> {
        while let Some(head) = self.heap.peek() {
            if !self.cancelled.is_empty() && self.cancelled.contains(&head.0.seq) {
                let seq = head.0.seq;
                self.heap.pop();
                self.cancelled.remove(&seq);
                continue;
            }
            return Some(head.0.at);
        }
        None
    }

    /// The seeded random generator: the only randomness a simulation may use.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Schedules `event` at absolute time `at`.
    pub fn try_schedule_at(&mut self, at: SimTime, event: E) -> Result<EventId, ScheduleError> {
        if at < self.now {
            return Err(ScheduleError::InThePast { at: at.as_nanos(), now: self.now.as_nanos() });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Entry { at, seq, event }));
        Ok(EventId(seq))
    }

    /// Schedules `event` at absolute time `at`, or now if `at` has already passed.
    ///
    /// Models compute times in floating point; clamping a time that rounds to just before `now` is the
    /// behaviour they want. Use [`Engine::try_schedule_at`] to treat it as an error instead.
    pub fn schedule_at(&mut self, at: SimTime, event: E) -> EventId {
        let at = at.max(self.now);
        match self.try_schedule_at(at, event) {
            Ok(id) => id,
            Err(_) => unreachable!("time was clamped to now"),
        }
    }

    /// Schedules `event` after `delay` from now.
    pub fn schedule_in(&mut self, delay: SimTime, event: E) -> EventId {
        self.schedule_at(self.now + delay, event)
    }

    /// Cancels a scheduled event. Cancelling an event that already fired or was cancelled does nothing.
    pub fn cancel(&mut self, id: EventId) {
        if id.0 < self.next_seq {
            self.cancelled.insert(id.0);
        }
    }

    /// Takes the next event, advancing the clock to its time. `None` when the queue is empty.
    pub fn step(&mut self) -> Option<(SimTime, E)> {
        self.step_until(SimTime::MAX)
    }

    /// Takes the next event if it is due at or before `limit`.
    fn step_until(&mut self, limit: SimTime) -> Option<(SimTime, E)> {
        loop {
            let head = self.heap.peek()?;
            if head.0.at > limit {
                return None;
            }
            let Reverse(entry) = self.heap.pop()?;
            if !self.cancelled.is_empty() && self.cancelled.remove(&entry.seq) {
                continue;
            }
            self.now = entry.at;
            self.n_processed += 1;
            return Some((entry.at, entry.event));
        }
    }

    /// Runs `handle` on every event due at or before `limit`, in order, then sets the clock to `limit`
    /// (if the queue did not already pass it). The handler may schedule and cancel further events.
    pub fn run_until(&mut self, limit: SimTime, mut handle: impl FnMut(&mut Self, SimTime, E)) {
        while let Some((at, event)) = self.step_until(limit) {
            handle(self, at, event);
        }
        if limit != SimTime::MAX {
            self.now = self.now.max(limit);
        }
    }

    /// Runs `handle` on every event until the queue is empty.
    pub fn run(&mut self, mut handle: impl FnMut(&mut Self, SimTime, E)) {
        while let Some((at, event)) = self.step() {
            handle(self, at, event);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::RngExt;

    use super::*;

    fn t(ns: u64) -> SimTime {
        SimTime::from_nanos(ns)
    }

    #[test]
    fn same_time_events_fire_in_scheduling_order() {
        let mut engine = Engine::new(0);
        for i in 0..100 {
            engine.schedule_at(t(5), i);
        }
        let mut order = Vec::new();
        engine.run(|_, _, ev| order.push(ev));
        assert_eq!(order, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn cancelled_events_never_fire() {
        let mut engine = Engine::new(0);
        let a = engine.schedule_at(t(1), "a");
        engine.schedule_at(t(2), "b");
        let c = engine.schedule_at(t(3), "c");
        engine.cancel(a);
        engine.cancel(c);
        engine.cancel(c);
        let mut seen = Vec::new();
        engine.run(|_, _, ev| seen.push(ev));
        assert_eq!(seen, ["b"]);
        assert_eq!(engine.events_processed(), 1);
        assert_eq!(engine.now(), t(2));
    }

    #[test]
    fn handlers_schedule_follow_up_events() {
        let mut engine = Engine::new(0);
        engine.schedule_at(t(0), 0u32);
        let mut fired = Vec::new();
        engine.run(|e, at, n| {
            fired.push((at.as_nanos(), n));
            if n < 3 {
                e.schedule_in(t(10), n + 1);
            }
        });
        assert_eq!(fired, [(0, 0), (10, 1), (20, 2), (30, 3)]);
    }

    #[test]
    fn run_until_stops_at_the_limit_and_advances_the_clock() {
        let mut engine = Engine::new(0);
        engine.schedule_at(t(10), 1);
        engine.schedule_at(t(30), 2);
        let mut seen = Vec::new();
        engine.run_until(t(20), |_, _, ev| seen.push(ev));
        assert_eq!(seen, [1]);
        assert_eq!(engine.now(), t(20));
        assert_eq!(engine.pending(), 1);
        engine.run(|_, _, ev| seen.push(ev));
        assert_eq!(seen, [1, 2]);
    }

    #[test]
    fn past_times_are_refused_or_clamped() {
        let mut engine = Engine::new(0);
        engine.schedule_at(t(10), ());
        engine.step();
        assert_eq!(engine.try_schedule_at(t(5), ()), Err(ScheduleError::InThePast { at: 5, now: 10 }));
        engine.schedule_at(t(5), ());
        assert_eq!(engine.step().map(|(at, _)| at), Some(t(10)));
    }

    #[test]
    fn the_rng_is_reproducible_from_the_seed() {
        let draw = |seed| {
            let mut engine: Engine<()> = Engine::new(seed);
            (0..8).map(|_| engine.rng().random::<u64>()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}
