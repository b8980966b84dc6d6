//! Parallel plans and the per-rank task graph of one training step.
//!
//! This crate says *what* runs on every GPU and in which order; it never says how long anything takes (that is
//! `sim`'s job, and the live workers'). [`build`] turns a model and a [`ParallelPlan`] into a [`StepProgram`]:
//! one op list per pipeline stage, in the exact order Megatron's schedules run them, with per-layer compute,
//! tensor/context/expert-parallel collectives, pipeline sends and receives, FSDP gathers, bucketed gradient
//! reduction and the optimizer step. Every rank of a stage runs its stage's program; the [`Layout`] maps a
//! rank to its coordinate and its communication groups.

mod build;
mod layout;
mod pipeline;
mod plan;
mod program;

pub use layout::{Coord, GroupKind, Layout};
pub use pipeline::{Pass, PipeStep, peak_in_flight, stage_order};
pub use plan::{KernelStack, ParallelPlan, PipelineSchedule, RankOrder, Recompute};
pub use program::{
    CollectiveKind, CommPurpose, Op, OpIdx, OpKind, OpTag, StageProgram, StaticMemory, Stream, Work,
};

use serde::Serialize;

/// A plan that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A constraint between the plan, the model and the GPU count is violated; the message names it.
    #[error("invalid plan: {0}")]
    Constraint(String),
    /// A field has a value outside its set.
    #[error("invalid plan: {field} = {value:?}; expected {expected}")]
    Unknown {
        /// The field.
        field: &'static str,
        /// The value given.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// The model itself is invalid.
    #[error("invalid model: {0}")]
    Model(String),
}

/// The programs of one training step for every pipeline stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepProgram {
    /// The plan.
    pub plan: ParallelPlan,
    /// Rank placement.
    pub layout: Layout,
    /// Micro-batches per replica.
    pub micro_batches: u32,
    /// One program per pipeline stage.
    pub stages: Vec<StageProgram>,
}

impl StepProgram {
    /// Total ops over all stage programs (each instantiated once per rank of its stage).
    pub fn ops_per_replica(&self) -> usize {
        self.stages.iter().map(|s| s.ops.len()).sum()
    }
}

/// Builds the task graph of one training step.
pub fn build(spec: &model::ModelSpec, plan: &ParallelPlan) -> Result<StepProgram, PlanError> {
    spec.validate().map_err(|e| PlanError::Model(e.to_string()))?;
    plan.validate(spec, None)?;
    let ranges = plan.virtual_stage_layers(spec.n_layers);
    let stages = (0..plan.pp).map(|s| build::build_stage(spec, plan, s, &ranges)).collect();
    Ok(StepProgram {
        plan: plan.clone(),
        layout: Layout::of(plan),
        micro_batches: plan.micro_batches(),
        stages,
    })
}

#[cfg(test)]
mod tests;
