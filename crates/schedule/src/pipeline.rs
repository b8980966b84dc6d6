//! The order of forward and backward passes on each pipeline stage, as the real schedules run them.
//!
//! Sources: Megatron-LM `megatron/core/pipeline_parallel/schedules.py` (1F1B without interleaving; interleaved
//! 1F1B with `microbatch_group_size_per_vp_stage = pp`); Huang et al. 2019 (GPipe); Qi et al. 2024 (ZB-H1).
//! See `/shared/reference/simulation.md` §4.

use serde::Serialize;

use crate::plan::PipelineSchedule;

/// Which pass of a model chunk over one micro-batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    /// Forward.
    Forward,
    /// Full backward: input gradient and weight gradient together.
    Backward,
    /// Input-gradient half of the backward (zero-bubble schedules).
    BackwardInput,
    /// Weight-gradient half of the backward (zero-bubble schedules).
    BackwardWeight,
}

/// One pass in a stage's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PipeStep {
    /// The pass.
    pub pass: Pass,
    /// Micro-batch index, `0..m`.
    pub micro_batch: u32,
    /// Model chunk (virtual stage) on this rank, `0..vp`.
    pub chunk: u32,
}

fn step(pass: Pass, micro_batch: u32, chunk: u32) -> PipeStep {
    PipeStep { pass, micro_batch, chunk }
}

/// The passes stage `stage` of `p` runs for `m` micro-batches and `v` chunks per rank, in order.
pub fn stage_order(schedule: PipelineSchedule, stage: u32, p: u32, m: u32, v: u32) -> Vec<PipeStep> {
    match schedule {
        PipelineSchedule::Gpipe => {
            let mut out: Vec<PipeStep> = (0..m).map(|i| step(Pass::Forward, i, 0)).collect();
            out.extend((0..m).map(|i| step(Pass::Backward, i, 0)));
            out
        }
        PipelineSchedule::OneFOneB => one_f_one_b(stage, p, m),
        PipelineSchedule::Interleaved => interleaved(stage, p, m, v),
        PipelineSchedule::ZbH1 => zb_h1(stage, p, m),
    }
}

/// Megatron's `forward_backward_pipelining_without_interleaving`: warm-up `min(p − r − 1, m)` forwards, then
/// one forward and one backward at a time, then the remaining backwards.
fn one_f_one_b(stage: u32, p: u32, m: u32) -> Vec<PipeStep> {
    let warmup = (p - stage - 1).min(m);
    let mut out = Vec::with_capacity(2 * m as usize);
    out.extend((0..warmup).map(|i| step(Pass::Forward, i, 0)));
    for i in 0..m - warmup {
        out.push(step(Pass::Forward, i + warmup, 0));
        out.push(step(Pass::Backward, i, 0));
    }
    out.extend((m - warmup..m).map(|i| step(Pass::Backward, i, 0)));
    out
}

/// The micro-batch and chunk of the `k`-th virtual micro-batch of an interleaved schedule: groups of `p`
/// micro-batches run through chunk 0, then chunk 1, ... (Megatron's `get_schedule_table` with group size p).
fn virtual_mb(k: u32, p: u32, v: u32, forward: bool) -> (u32, u32) {
    let group = k / (p * v);
    let within = k % (p * v);
    let chunk = within / p;
    let mb = group * p + within % p;
    (mb, if forward { chunk } else { v - 1 - chunk })
}

/// Megatron's interleaved 1F1B: warm-up `2(p − r − 1) + (v − 1)·p` virtual forwards, then 1F1B over virtual
/// micro-batches, then the remaining backwards.
fn interleaved(stage: u32, p: u32, m: u32, v: u32) -> Vec<PipeStep> {
    let total = m * v;
    let warmup = (2 * (p - stage - 1) + (v - 1) * p).min(total);
    let fwd = |k| {
        let (mb, c) = virtual_mb(k, p, v, true);
        step(Pass::Forward, mb, c)
    };
    let bwd = |k| {
        let (mb, c) = virtual_mb(k, p, v, false);
        step(Pass::Backward, mb, c)
    };
    let mut out = Vec::with_capacity(2 * total as usize);
    out.extend((0..warmup).map(fwd));
    for k in 0..total - warmup {
        out.push(fwd(k + warmup));
        out.push(bwd(k));
    }
    out.extend((total - warmup..total).map(bwd));
    out
}

/// ZB-H1 (Qi et al. 2024 §3): 1F1B with the backward split into B (input gradient) and W (weight gradient).
/// Stage `r` defers its weight-gradient passes by `p − r − 1` micro-batches so that they fill the cool-down
/// bubble; at most that many W passes are pending, keeping activation memory at 1F1B's level.
fn zb_h1(stage: u32, p: u32, m: u32) -> Vec<PipeStep> {
    let warmup = (p - stage - 1).min(m);
    let mut out = Vec::with_capacity(3 * m as usize);
    let mut next_w = 0;
    out.extend((0..warmup).map(|i| step(Pass::Forward, i, 0)));
    for i in 0..m - warmup {
        out.push(step(Pass::Forward, i + warmup, 0));
        out.push(step(Pass::BackwardInput, i, 0));
        if i >= warmup {
            out.push(step(Pass::BackwardWeight, next_w, 0));
            next_w += 1;
        }
    }
    for i in m - warmup..m {
        out.push(step(Pass::BackwardInput, i, 0));
        out.push(step(Pass::BackwardWeight, next_w, 0));
        next_w += 1;
    }
    out.extend((next_w..m).map(|i| step(Pass::BackwardWeight, i, 0)));
    out
}

/// The most micro-batch chunks whose activations a stage holds at once under this order.
pub fn peak_in_flight(order: &[PipeStep]) -> u32 {
    let (mut live, mut peak) = (0i64, 0i64);
    for s in order {
        match s.pass {
            Pass::Forward => live += 1,
            Pass::Backward | Pass::BackwardInput => live -= 1,
            Pass::BackwardWeight => {}
        }
        peak = peak.max(live);
    }
    peak as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passes(order: &[PipeStep]) -> String {
        order
            .iter()
            .map(|s| match s.pass {
                Pass::Forward => format!("F{}", s.micro_batch),
                Pass::Backward => format!("B{}", s.micro_batch),
                Pass::BackwardInput => format!("b{}", s.micro_batch),
                Pass::BackwardWeight => format!("w{}", s.micro_batch),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn one_f_one_b_matches_megatron() {
        assert_eq!(
            passes(&stage_order(PipelineSchedule::OneFOneB, 0, 4, 6, 1)),
            "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5"
        );
        assert_eq!(
            passes(&stage_order(PipelineSchedule::OneFOneB, 3, 4, 6, 1)),
            "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5"
        );
        // Fewer micro-batches than stages: warm-up is capped at m.
        assert_eq!(passes(&stage_order(PipelineSchedule::OneFOneB, 0, 4, 2, 1)), "F0 F1 B0 B1");
    }

    #[test]
    fn first_stage_holds_p_micro_batches_under_1f1b_and_m_under_gpipe() {
        let (p, m) = (4, 8);
        assert_eq!(peak_in_flight(&stage_order(PipelineSchedule::OneFOneB, 0, p, m, 1)), p);
        assert_eq!(peak_in_flight(&stage_order(PipelineSchedule::OneFOneB, p - 1, p, m, 1)), 1);
        assert_eq!(peak_in_flight(&stage_order(PipelineSchedule::Gpipe, 0, p, m, 1)), m);
        assert_eq!(peak_in_flight(&stage_order(PipelineSchedule::ZbH1, 0, p, m, 1)), p);
    }

    #[test]
    fn interleaved_table_matches_megatrons_example() {
        // schedules.py: PP2, M4 (groups of p = 2), VP2 → virtual ids map to micro-batches 0 1 0 1 2 3 2 3 and
        // chunks 0 0 1 1 0 0 1 1.
        let fwd: Vec<(u32, u32)> = (0..8).map(|k| virtual_mb(k, 2, 2, true)).collect();
        assert_eq!(fwd, [(0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (3, 0), (2, 1), (3, 1)]);
        let order = stage_order(PipelineSchedule::Interleaved, 0, 2, 4, 2);
        // Warm-up on stage 0: 2(p−1) + (v−1)p = 4 virtual forwards.
        assert!(order[..4].iter().all(|s| s.pass == Pass::Forward));
        assert_eq!(order.len(), 16);
    }

    #[test]
    fn every_schedule_runs_every_pass_exactly_once() {
        for sched in PipelineSchedule::ALL {
            let v = if sched == PipelineSchedule::Interleaved { 3 } else { 1 };
            for stage in 0..4 {
                let order = stage_order(sched, stage, 4, 8, v);
                for mb in 0..8 {
                    for chunk in 0..v {
                        let count = |pass| {
                            order
                                .iter()
                                .filter(|s| s.pass == pass && s.micro_batch == mb && s.chunk == chunk)
                                .count()
                        };
                        assert_eq!(count(Pass::Forward), 1, "{sched:?} stage {stage} mb {mb}");
                        let bw = count(Pass::Backward) + count(Pass::BackwardInput);
                        assert_eq!(bw, 1, "{sched:?} stage {stage} mb {mb}");
                    }
                }
                // A backward never precedes its forward on the same stage.
                for (i, s) in order.iter().enumerate() {
                    if s.pass != Pass::Forward {
                        let f = order.iter().position(|x| {
                            x.pass == Pass::Forward && x.micro_batch == s.micro_batch && x.chunk == s.chunk
                        });
                        assert!(f.is_some_and(|f| f < i));
                    }
                }
            }
        }
    }
}
