//! Quantities as people type and read them.
//!
//! choir's libraries compute in plain SI units (FLOP, bytes, seconds, bytes per second). This crate is the one
//! place that turns those numbers into text and back, so that every command accepts `500B`, `1.5T` and `7e9`
//! the same way and labels decimal (GB) and binary (GiB) sizes the same way.
//!
//! Conventions:
//! - counts (`parse_count`): `K`, `M`, `B`/`G`, `T`, `P` are powers of 1000 (`500B` = 5·10¹¹).
//! - byte sizes (`parse_bytes`): `KB`, `MB`, `GB`, `TB` are powers of 1000; `KiB`, `MiB`, `GiB`, `TiB` and the
//!   bare letters `K`, `M`, `G`, `T` are powers of 1024, as nccl-tests reads `-b 8 -e 8G`.
//! - durations (`parse_duration`): a number with `ns`, `us`, `ms`, `s`, `m`, `h` or `d`; a bare number is seconds.

mod format;
mod parse;

pub use format::{
    format_bytes, format_bytes_binary, format_count, format_duration, format_flops, format_rate,
};
pub use parse::{ParseError, parse_bytes, parse_count, parse_duration, parse_size_range};

/// One gigabyte, decimal (10⁹ bytes).
pub const GB: f64 = 1e9;
/// One gibibyte, binary (2³⁰ bytes).
pub const GIB: f64 = 1_073_741_824.0;
/// Seconds in an hour.
pub const HOUR: f64 = 3600.0;
/// Seconds in a (Julian) year of 365.25 days.
pub const YEAR: f64 = 365.25 * 24.0 * 3600.0;
