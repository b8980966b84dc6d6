//! A lower bound on a plan's step time, cheap enough to compute for every candidate.
//!
//! Ops on one stream of a rank run one at a time (`schedule::Stream`), and every micro-batch puts the same
//! passes on a stage's compute stream. So a stage's step takes at least `m` times the compute-stream time of
//! one micro-batch's passes (its kernels, the blocking TP/EP collectives and, when pipeline communication is
//! not overlapped, its sends). That per-micro-batch time does not depend on the data-parallel size, the number
//! of micro-batches or the ZeRO stage (a send can only be faster on the small program, whose stages may share
//! a node), so it is measured once per *shape* on a small program of the same shape (one micro-batch per
//! replica, or `pp` for interleaving, which needs a multiple of `pp`), costed with `sim::op_durations`, and
//! shared by every plan of that shape.

use schedule::{OpKind, ParallelPlan, PipelineSchedule, Stream};

use crate::SearchError;

/// The key under which plans share a per-micro-batch compute time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ShapeKey {
    tp: u32,
    pp: u32,
    cp: u32,
    ep: u32,
    vp: u32,
    micro_batch: u32,
    zero3: bool,
    recompute: u8,
    schedule: u8,
    blocking_p2p: bool,
}

impl ShapeKey {
    /// The shape of a plan.
    pub(crate) fn of(plan: &ParallelPlan) -> ShapeKey {
        ShapeKey {
            tp: plan.tp,
            pp: plan.pp,
            cp: plan.cp,
            ep: plan.ep,
            vp: plan.vp,
            micro_batch: plan.micro_batch,
            zero3: plan.zero_stage == 3,
            recompute: plan.recompute as u8,
            // GPipe and 1F1B run the same passes per micro-batch; ZB-H1 splits the backward, interleaving
            // splits the stage into chunks.
            schedule: match plan.schedule {
                PipelineSchedule::Gpipe | PipelineSchedule::OneFOneB => 0,
                PipelineSchedule::Interleaved => 1,
                PipelineSchedule::ZbH1 => 2,
            },
            blocking_p2p: !plan.overlaps_p2p(),
        }
    }
}

/// The small plan measured for a shape: the same layers per rank and the same groups, with the fewest
/// replicas and micro-batches the schedule allows.
fn probe_plan(plan: &ParallelPlan) -> ParallelPlan {
    let dp = plan.ep.max(1);
    let m = if plan.schedule == PipelineSchedule::Interleaved { plan.pp } else { 1 };
    ParallelPlan {
        dp,
        global_batch: plan.micro_batch * dp * m,
        zero_stage: if plan.zero_stage == 3 { 3 } else { 0 },
        schedule: if plan.schedule == PipelineSchedule::Gpipe {
            PipelineSchedule::OneFOneB
        } else {
            plan.schedule
        },
        ..plan.clone()
    }
}

/// Seconds of compute-stream work one micro-batch puts on the busiest stage of `plan`'s shape.
pub(crate) fn compute_per_micro_batch_s(
    spec: &model::ModelSpec,
    plan: &ParallelPlan,
    cluster: &topology::Cluster,
) -> Result<f64, SearchError> {
    let probe = probe_plan(plan);
    let program = schedule::build(spec, &probe).map_err(|e| SearchError::Plan(e.to_string()))?;
    let durations =
        sim::op_durations(&program, cluster, None).map_err(|e| SearchError::Simulation(e.to_string()))?;
    let mut worst = 0.0f64;
    for (stage, d) in program.stages.iter().zip(&durations) {
        let (mut total, mut ops) = (0.0, 0u32);
        for (op, s) in stage.ops.iter().zip(d) {
            // Receives only wait; sends on the compute stream (blocking pipeline communication) take their time.
            let counted = op.stream == Stream::Compute
                && op.tag.pass.is_some()
                && matches!(
                    op.kind,
                    OpKind::Compute { .. } | OpKind::Collective { .. } | OpKind::Send { .. }
                );
            if counted {
                total += *s;
                ops += 1;
            }
        }
        // The simulator rounds every op to whole nanoseconds; allow a nanosecond per op so that rounding can
        // never lift the bound above the simulated step.
        let total = (total - f64::from(ops) * 1e-9).max(0.0);
        worst = worst.max(total / f64::from(probe.micro_batches()));
    }
    Ok(worst)
}

/// The lower bound on `plan`'s step time from its shape's per-micro-batch compute time, in seconds.
pub(crate) fn step_lower_bound_s(plan: &ParallelPlan, per_micro_batch_s: f64) -> f64 {
    f64::from(plan.micro_batches()) * per_micro_batch_s
}
