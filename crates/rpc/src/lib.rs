//! The gRPC contracts of the choir daemons, and the only crate that knows protobuf.
//!
//! `build.rs` compiles `proto/choir/v1/*.proto` with protox (no system `protoc`) into [`pb`]: the wire types
//! and the tonic clients and servers of the `Coordinator` and `Worker` services. The daemons work with the
//! domain types of [`types`] (built on `schedule`'s ops and layouts); `From`/`TryFrom` conversions translate,
//! and every wire → domain conversion validates enums, indices and sizes, answering a malformed message with a
//! [`WireError`] that names the field rather than letting it reach the daemon's logic.
//!
//! [`net`] holds what both daemons share on the transport: the bearer-token check, mutual TLS (rustls),
//! message-size and concurrency limits, health and reflection services, and clients that attach the token.

mod convert_msg;
mod convert_task;
pub mod net;
pub mod types;

pub use convert_msg::{MAX_NAME_BYTES, MAX_SHARD_BYTES};
pub use convert_task::MAX_RANKS;

/// Generated wire types, clients and servers (package `choir.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("choir.v1");
}

/// The encoded file descriptor set of `proto/choir/v1`, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/choir_v1_descriptor.bin"));

/// A wire message that cannot be turned into a domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A field has a value outside its range or set.
    #[error("{field} = {value}: expected {expected}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The value received.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// A required field is absent.
    #[error("{field} is missing: expected {expected}")]
    Missing {
        /// The field.
        field: &'static str,
        /// What is accepted.
        expected: &'static str,
    },
}

impl WireError {
    /// An out-of-range value.
    pub fn invalid(field: &'static str, value: impl std::fmt::Display, expected: &'static str) -> WireError {
        WireError::Invalid { field, value: value.to_string(), expected }
    }

    /// An enum left at its UNSPECIFIED value.
    pub fn unspecified(field: &'static str) -> WireError {
        WireError::Invalid { field, value: "UNSPECIFIED".into(), expected: "a specified value" }
    }
}

impl From<WireError> for tonic::Status {
    fn from(e: WireError) -> tonic::Status {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// Decodes an enum field, naming it when the number is unknown.
fn enum_value<E: TryFrom<i32>>(field: &'static str, v: i32) -> Result<E, WireError> {
    E::try_from(v).map_err(|_| WireError::invalid(field, v, "a known enum value"))
}

/// The deterministic state digests both daemons agree on: a rank's state is a running 64-bit digest, so that a
/// run after faults can be checked against a fault-free one ("nothing lost").
pub mod digest {
    /// Mixes one value into a digest (splitmix64's finaliser over the xor; a bijection in `value` for a fixed
    /// `state`).
    pub fn mix(state: u64, value: u64) -> u64 {
        let mut z = state
            ^ value.wrapping_add(0x9e37_79b9_7f4a_7c15).wrapping_add(state << 6).wrapping_add(state >> 2);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A rank's state before the first step of a job seeded with `seed`.
    pub fn initial(seed: u64, rank: u32) -> u64 {
        mix(mix(0x0063_686f_6972, seed), u64::from(rank))
    }
}
