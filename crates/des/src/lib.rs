//! A generic discrete-event engine.
//!
//! - Time is [`SimTime`]: integer nanoseconds, so that event order never depends on floating-point rounding.
//! - Events are ordered by `(time, seq)`, where `seq` is the order in which they were scheduled: two events at
//!   the same instant fire first-scheduled first, which makes every run with the same inputs identical.
//! - Cancellation is lazy: [`Engine::cancel`] marks the event and [`Engine::step`] skips it when it surfaces, so
//!   cancelling is O(log n) and never searches the heap.
//! - The one source of randomness is [`Engine::rng`], a ChaCha8 generator seeded at construction.
//!
//! The engine knows nothing about models, GPUs or networks; the payload type `E` is the caller's.
//!
//! ```
//! use des::{Engine, SimTime};
//! let mut engine: Engine<&str> = Engine::new(42);
//! engine.schedule_at(SimTime::from_nanos(20), "second");
//! engine.schedule_at(SimTime::from_nanos(10), "first");
//! let mut seen = Vec::new();
//! engine.run(|_, at, ev| seen.push((at.as_nanos(), ev)));
//! assert_eq!(seen, [(10, "first"), (20, "second")]);
//! ```

mod engine;
mod time;

pub use engine::{Engine, EventId, ScheduleError};
pub use time::SimTime;
