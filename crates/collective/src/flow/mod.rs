//! The flow network model: point-to-point flows on routed paths sharing link bandwidth max-min fairly, and
//! collectives lowered to phases of such flows so that several can run (and contend) at once.

pub mod collectives;
pub mod fabric;
pub(crate) mod lower;
mod network;
mod solver;
#[cfg(test)]
mod tests;

pub use network::{Delivery, FlowNetwork, FlowSpec, LinkSpec};
pub use solver::MaxMinSolver;
