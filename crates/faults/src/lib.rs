//! Failures of a training job and what they cost.
//!
//! - [`rates`]: failure processes per component (GPU, HBM, NIC, switch/cable, host, software, …) with rates per
//!   device-hour, exponential or Weibull; the default rates come from the Llama 3 405B failure table.
//! - [`plan`]: fault plans, timed `(time_s, target, kind)` entries that the campaign simulator and the live
//!   daemons both consume; [`sample_plan`] draws one from a failure model and a seed.
//! - [`policy`]: what a checkpoint costs and how often to take one (Young, Daly).
//! - [`campaign`]: one long-horizon campaign on the `des` engine: detection, restart, lost work, checkpoints,
//!   spares; returns interruptions by cause, ETTR, goodput and lost GPU-hours.
//! - [`study`]: many seeds and a sweep of checkpoint intervals, with percentiles and the best interval.
//!
//! Pure and deterministic: no IO, no clock; randomness only from seeded ChaCha8 streams. The step time is an
//! input (the CLI takes it from the step simulator), so this crate does not depend on `sim`.

pub mod campaign;
mod error;
mod outcome;
pub mod plan;
pub mod policy;
pub mod rates;
mod sample;
mod segment;
pub mod study;

pub use campaign::{
    CampaignConfig, CampaignResult, CheckpointPolicy, RecoveryConfig, TimeBreakdown, every_steps,
    run_campaign,
};
pub use error::FaultsError;
pub use plan::{FaultEntry, FaultKind, FaultPlan, FaultTarget};
pub use policy::{
    CheckpointCosts, CheckpointMode, CheckpointSizing, checkpoint_bytes, checkpoint_costs, daly_interval_s,
    first_order_waste, young_interval_s,
};
pub use rates::{ComponentRate, Distribution, Effect, FailureModel, Fleet, Scope};
pub use sample::{SampleConfig, sample_plan};
pub use study::{PlanSource, Spread, Study, StudyConfig, SweepPoint, interval_grid, run_study, spread};

#[cfg(test)]
mod tests;
