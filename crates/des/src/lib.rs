//! A generic discrete-event engine: integer-nanosecond time, ordered queue, lazy cancellation, seeded RNG.
