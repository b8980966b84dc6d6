//! The search space: which values each parallel dimension may take, and the enumeration of every plan in it
//! that passes `ParallelPlan::validate` for the GPU count.

use std::collections::BTreeMap;

use schedule::{ParallelPlan, PipelineSchedule, Recompute};
use serde::Serialize;

/// Which plans to consider.
///
/// Every `Option<Vec<u32>>` dimension is free (every divisor that fits) when `None`, or restricted to the listed
/// values. The framework settings a search does not vary (precision, FlashAttention, gradient-reduction overlap
/// and precision, parameter-gather overlap, pipeline-communication overlap, FSDP prefetch, bucket size) come
/// from `base`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchSpace {
    /// GPUs every plan must use exactly (tp·cp·dp·pp).
    pub gpus: u32,
    /// Sequences per optimizer step.
    pub global_batch: u32,
    /// Tokens per sequence.
    pub seq_len: u32,
    /// Template for the settings the search does not vary.
    pub base: ParallelPlan,
    /// Tensor-parallel sizes.
    pub tp: Option<Vec<u32>>,
    /// Pipeline-parallel sizes.
    pub pp: Option<Vec<u32>>,
    /// Context-parallel sizes.
    pub cp: Option<Vec<u32>>,
    /// Expert-parallel sizes (MoE models only; dense models always use 1).
    pub ep: Option<Vec<u32>>,
    /// Virtual stages per rank for the interleaved schedule (values below 2 are ignored).
    pub vp: Option<Vec<u32>>,
    /// Sequences per micro-batch.
    pub micro_batch: Option<Vec<u32>>,
    /// Largest micro-batch tried when `micro_batch` is free.
    pub max_micro_batch: u32,
    /// ZeRO stages tried. Stages 2 and 3 are only combined with pp = 1, as DeepSpeed requires ("ZeRO-2 and
    /// ZeRO-3 are incompatible with pipeline parallelism", DeepSpeed pipeline docs).
    pub zero_stages: Vec<u8>,
    /// Recomputation settings tried.
    pub recompute: Vec<Recompute>,
    /// Pipeline schedules tried when pp > 1 (pp = 1 always runs 1F1B, which is then the same as every other).
    pub schedules: Vec<PipelineSchedule>,
    /// Megatron sequence parallelism on every plan with tp > 1 (Korthikanti et al. 2022: same communication
    /// volume as plain TP, less activation memory); off for frameworks without it (Megatron-LM before 2022).
    pub sequence_parallel: bool,
    /// Keep every TP group inside one node (tp ≤ GPUs per node), as Megatron's rank order does when it can.
    pub tp_within_node: bool,
    /// When `cp` is free, only split a sequence over CP ranks while each keeps at least this many tokens.
    pub min_tokens_per_cp_rank: u32,
}

impl SearchSpace {
    /// Every dimension free, with the current-practice template (`ParallelPlan::default()`: bf16,
    /// FlashAttention, overlapped gradient reduction).
    pub fn new(gpus: u32, global_batch: u32, seq_len: u32) -> SearchSpace {
        SearchSpace {
            gpus,
            global_batch,
            seq_len,
            base: ParallelPlan::default(),
            tp: None,
            pp: None,
            cp: None,
            ep: None,
            vp: None,
            micro_batch: None,
            max_micro_batch: 8,
            zero_stages: vec![0, 1, 2, 3],
            recompute: vec![Recompute::None, Recompute::Selective, Recompute::Full],
            schedules: PipelineSchedule::ALL.to_vec(),
            sequence_parallel: true,
            tp_within_node: true,
            min_tokens_per_cp_rank: 1024,
        }
    }
}

/// The valid plans of a space, and why the rest were rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct Enumeration {
    /// Every valid plan, in enumeration order (a stable order for the same inputs).
    pub plans: Vec<ParallelPlan>,
    /// Rejected combinations by reason, with how many each reason rejected.
    pub rejected: BTreeMap<String, u64>,
}

/// Every divisor of `n`, ascending.
pub(crate) fn divisors(n: u32) -> Vec<u32> {
    (1..=n).filter(|d| n.is_multiple_of(*d)).collect()
}

fn allowed(list: &Option<Vec<u32>>, v: u32) -> bool {
    list.as_ref().is_none_or(|l| l.contains(&v))
}

/// Enumerates every plan of `space` for `spec` on nodes of `gpus_per_node` GPUs that passes validation.
pub fn enumerate(spec: &model::ModelSpec, space: &SearchSpace, gpus_per_node: u32) -> Enumeration {
    let mut plans = Vec::new();
    let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
    let mut reject = |why: String, n: u64| *rejected.entry(why).or_default() += n;
    let n = space.gpus;
    if n == 0 {
        reject("the job has 0 GPUs".to_owned(), 1);
        return Enumeration { plans, rejected };
    }
    for tp in divisors(n).into_iter().filter(|&t| allowed(&space.tp, t)) {
        if space.tp_within_node && tp > gpus_per_node {
            reject(format!("tp > {gpus_per_node} GPUs per node would split a TP group across nodes"), 1);
            continue;
        }
        for pp in divisors(n / tp).into_iter().filter(|&p| allowed(&space.pp, p)) {
            if u64::from(pp) > spec.n_layers {
                reject(format!("pp larger than the model's {} layers", spec.n_layers), 1);
                continue;
            }
            for cp in divisors(n / tp / pp).into_iter().filter(|&c| allowed(&space.cp, c)) {
                if space.cp.is_none() && cp > 1 && space.seq_len / cp < space.min_tokens_per_cp_rank {
                    continue;
                }
                let dp = n / tp / pp / cp;
                if !space.global_batch.is_multiple_of(dp) {
                    reject(format!("global batch {} is not divisible by dp", space.global_batch), 1);
                    continue;
                }
                let eps: Vec<u32> = match &spec.moe {
                    Some(_) => divisors(dp * cp).into_iter().filter(|&e| allowed(&space.ep, e)).collect(),
                    None => vec![1],
                };
                let per_replica = space.global_batch / dp;
                let mbs: Vec<u32> = match &space.micro_batch {
                    Some(l) => l.iter().copied().filter(|&b| per_replica.is_multiple_of(b)).collect(),
                    None => {
                        divisors(per_replica).into_iter().filter(|&b| b <= space.max_micro_batch).collect()
                    }
                };
                for &ep in &eps {
                    for &mb in &mbs {
                        for (schedule, vp) in schedules(spec, space, pp) {
                            for &zero in &space.zero_stages {
                                if zero >= 2 && pp > 1 {
                                    continue;
                                }
                                for &recompute in &space.recompute {
                                    let plan = ParallelPlan {
                                        tp,
                                        pp,
                                        dp,
                                        cp,
                                        ep,
                                        vp,
                                        micro_batch: mb,
                                        global_batch: space.global_batch,
                                        seq_len: space.seq_len,
                                        zero_stage: zero,
                                        sequence_parallel: space.sequence_parallel && tp > 1,
                                        recompute,
                                        schedule,
                                        stage_layers: None,
                                        ..space.base.clone()
                                    };
                                    match plan.validate(spec, Some(u64::from(n))) {
                                        Ok(()) => plans.push(plan),
                                        Err(e) => reject(reason_of(&e.to_string()), 1),
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Enumeration { plans, rejected }
}

/// The (schedule, vp) pairs tried for `pp` stages.
fn schedules(spec: &model::ModelSpec, space: &SearchSpace, pp: u32) -> Vec<(PipelineSchedule, u32)> {
    if pp == 1 {
        return vec![(PipelineSchedule::OneFOneB, 1)];
    }
    let per_stage = (spec.n_layers / u64::from(pp)) as u32;
    let mut out = Vec::new();
    for &s in &space.schedules {
        if s == PipelineSchedule::Interleaved {
            for v in divisors(per_stage).into_iter().filter(|&v| v >= 2 && allowed(&space.vp, v)) {
                out.push((s, v));
            }
        } else {
            out.push((s, 1));
        }
    }
    out
}

/// A validation message without its "invalid plan: " prefix (the numbers stay: they name the constraint).
fn reason_of(msg: &str) -> String {
    msg.trim_start_matches("invalid plan: ").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_enumerated_plan_is_valid_and_uses_every_gpu() {
        let spec = model::preset("llama3-8b").unwrap();
        let space = SearchSpace::new(64, 256, 8192);
        let e = enumerate(&spec, &space, 8);
        assert!(e.plans.len() > 100, "{}", e.plans.len());
        for p in &e.plans {
            assert_eq!(p.gpus(), 64);
            p.validate(&spec, Some(64)).unwrap();
            assert!(p.tp <= 8);
            assert!(p.zero_stage < 2 || p.pp == 1);
        }
        // Megatron's own plan for this scale is among them.
        assert!(e.plans.iter().any(|p| p.tp == 8 && p.pp == 1 && p.dp == 8 && p.micro_batch == 1));
    }

    #[test]
    fn restricted_dimensions_are_respected() {
        let spec = model::preset("llama3-8b").unwrap();
        let mut space = SearchSpace::new(64, 256, 8192);
        space.tp = Some(vec![4]);
        space.pp = Some(vec![2]);
        space.schedules = vec![PipelineSchedule::Interleaved];
        let e = enumerate(&spec, &space, 8);
        assert!(!e.plans.is_empty());
        assert!(e.plans.iter().all(|p| p.tp == 4 && p.pp == 2 && p.vp >= 2));
    }

    #[test]
    fn an_impossible_gpu_count_yields_no_plan_and_reasons() {
        let spec = model::preset("llama3-8b").unwrap();
        // 7 GPUs: tp must divide 32 heads and 8 KV heads, pp must divide 32 layers, so dp = 7 must divide 256.
        let e = enumerate(&spec, &SearchSpace::new(7, 256, 8192), 8);
        assert!(e.plans.is_empty());
        assert!(!e.rejected.is_empty());
    }
}
