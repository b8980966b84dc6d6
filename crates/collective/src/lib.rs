//! Collective communication over a group of GPUs: how long all-reduce, all-gather, reduce-scatter, all-to-all,
//! broadcast, reduce and send/recv take, by which algorithm, under two network models.
//!
//! - **Analytical** ([`Communicator`]): NCCL's own tuning model (latency + bytes/bandwidth per algorithm and
//!   protocol, argmin choice) ported from NVIDIA/nccl v2.30.7, over a small [`CommShape`]. Cheap enough for
//!   strategy search: build a communicator once, call [`Communicator::time`] per message.
//! - **Flow** ([`flow::FlowNetwork`]): collectives lowered to phases of point-to-point flows on routed paths;
//!   link bandwidth shared max-min fairly among all concurrent flows (from any number of collectives),
//!   re-solved incrementally on the connected component a flow touches.
//!
//! [`placement`] connects both to a `topology::Cluster`; [`validation`] compares against published nccl-tests
//! figures.

mod analytical;
#[cfg(test)]
mod analytical_tests;
mod error;
pub mod flow;
mod nccl;
mod op;
pub mod placement;
mod shape;
pub mod validation;

pub use analytical::{CollectiveConfig, CollectiveCost, Communicator, collective_time_on};
pub use error::CollectiveError;
pub use op::{Algorithm, Op, Protocol};
pub use shape::{CommShape, GpuGeneration, IntraKind, dgx_shape};
