//! The search itself: prune, skip dominated variants, bound, and simulate in deterministic parallel batches.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use schedule::{ParallelPlan, PipelineSchedule, Recompute};
use serde::Serialize;

use crate::bound::{ShapeKey, compute_per_micro_batch_s, step_lower_bound_s};
use crate::memory::{MemoryEstimate, estimate_memory};
use crate::space::enumerate;
use crate::{SearchConfig, SearchError, describe};

/// Plans simulated per batch. Fixed (not the thread count) so that the set of simulated plans, and so every
/// figure of the result, is the same on any machine.
const BATCH: usize = 16;

/// How far the closed-form memory estimate may exceed the limit before a plan is pruned unsimulated. The
/// estimate and the simulator's peak differ by up to about ±8% (the estimate counts the last stage's fp32 logits,
/// which the simulator does not; the simulator counts transient FSDP and recompute buffers, which the estimate
/// does not; `tests.rs` checks the band), so plans within 10% of the limit go to the simulator, which decides.
pub const PRUNE_SLACK: f64 = 1.10;

/// A simulated plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluated {
    /// The plan.
    pub plan: ParallelPlan,
    /// The simulator's report.
    pub report: sim::Report,
    /// The closed-form memory estimate that let it through.
    pub estimate: MemoryEstimate,
    /// The lower bound its simulation was scheduled by, seconds.
    pub lower_bound_s: f64,
    /// The analytical network model's step time, seconds; differs from `report.step_time_s` only after
    /// [`refine_with_flow`] replaced the report with the flow model's.
    pub analytical_step_time_s: f64,
}

/// Where the search is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Measuring per-shape compute bounds: `done` of `total` shapes.
    Bounding {
        /// Shapes measured.
        done: u64,
        /// Shapes in all.
        total: u64,
    },
    /// Simulating: `done` plans so far, at most `total`.
    Simulating {
        /// Plans simulated.
        done: u64,
        /// Plans that could still be simulated.
        total: u64,
    },
}

/// What a search found, and what happened to every plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    /// Valid plans enumerated (every one is accounted for below).
    pub evaluated: u64,
    /// Plans that fit: simulated and under the limit, or not simulated and estimated within
    /// [`PRUNE_SLACK`] of it.
    pub feasible: u64,
    /// Combinations rejected by validation, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Plans pruned because the closed-form memory estimate exceeds the limit by more than [`PRUNE_SLACK`].
    pub pruned_memory: u64,
    /// Pruned plans by their largest memory term ("activations", "optimizer state", ...).
    pub pruned_by_term: BTreeMap<String, u64>,
    /// Plans the simulator found over the limit (the closed form had let them through).
    pub simulated_oom: u64,
    /// Plans not simulated because a lighter variant (less recomputation, or ZeRO-1 for ZeRO-2) fits.
    pub skipped_dominated: u64,
    /// Plans not simulated because their step-time lower bound exceeds the `top`-th best simulated step.
    pub skipped_bound: u64,
    /// Plans simulated.
    pub simulated: u64,
    /// Distinct plan shapes whose compute bound was measured.
    pub shapes: u64,
    /// Memory limit used, bytes.
    pub memory_limit_bytes: f64,
    /// Every simulated plan that fits, fastest first (ties: enumeration order).
    pub ranked: Vec<Evaluated>,
    /// Plans the simulator could not run, with the reason (a bug if ever non-empty).
    pub failed: Vec<(String, String)>,
}

/// Ladder position: plans in one group differ only in these, and a later rung is never faster.
pub(crate) fn rung(plan: &ParallelPlan) -> (u8, u8) {
    let recompute = match plan.recompute {
        Recompute::None => 0,
        Recompute::Selective => 1,
        Recompute::Full => 2,
    };
    // ZeRO-2's step program is ZeRO-1's (same reduce-scatter and gather): it only saves memory.
    let zero = u8::from(plan.zero_stage == 2);
    (recompute, zero)
}

/// The group a plan climbs its ladder in: the plan with recomputation and ZeRO-1/2 folded.
pub(crate) fn ladder_group(plan: &ParallelPlan) -> ParallelPlan {
    ParallelPlan {
        recompute: Recompute::None,
        zero_stage: if plan.zero_stage == 2 { 1 } else { plan.zero_stage },
        ..plan.clone()
    }
}

fn key_bits(x: f64) -> u64 {
    // Non-negative floats order like their bit patterns.
    x.max(0.0).to_bits()
}

/// Searches `config.space` for `spec` on `cluster` (built with at least `config.space.gpus` GPUs), calling
/// `progress` as it goes (from any thread).
pub fn search(
    spec: &model::ModelSpec,
    cluster: &topology::Cluster,
    config: &SearchConfig,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<SearchResult, SearchError> {
    let space = &config.space;
    if space.gpus > cluster.num_gpus() {
        return Err(SearchError::TooManyGpus { gpus: space.gpus, available: cluster.num_gpus() });
    }
    let enumeration = enumerate(spec, space, cluster.gpus_per_node());
    let plans = enumeration.plans;
    if plans.is_empty() {
        let mut reasons: Vec<(&String, &u64)> = enumeration.rejected.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let reasons =
            reasons.iter().take(3).map(|(r, n)| format!("{r} ({n}×)")).collect::<Vec<_>>().join("; ");
        return Err(SearchError::NoValidPlan { gpus: space.gpus, reasons });
    }
    let limit = config.memory_limit_bytes.unwrap_or(cluster.gpu_spec().hbm_bytes);
    let estimates: Vec<MemoryEstimate> = plans.par_iter().map(|p| estimate_memory(spec, p)).collect();
    let fits: Vec<bool> = estimates.iter().map(|e| e.total_bytes <= limit * PRUNE_SLACK).collect();
    let pruned_memory = fits.iter().filter(|f| !**f).count() as u64;
    let mut pruned_by_term: BTreeMap<String, u64> = BTreeMap::new();
    for (e, _) in estimates.iter().zip(&fits).filter(|(_, f)| !**f) {
        *pruned_by_term.entry(e.dominant().0.to_owned()).or_default() += 1;
    }
    if pruned_memory == plans.len() as u64 {
        return Err(nothing_fits(&plans, &estimates, limit));
    }

    // Ladders: per group, the fitting variants in rung order; the first is active.
    let mut ladders: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, p) in plans.iter().enumerate().filter(|(i, _)| fits[*i]) {
        let group = if config.exhaustive { format!("{i}") } else { format!("{:?}", ladder_group(p)) };
        ladders.entry(group).or_default().push(i);
    }
    for l in ladders.values_mut() {
        l.sort_by_key(|&i| (rung(&plans[i]), i));
    }

    // Bounds, one measurement per shape, for the active (lightest fitting) variant of every ladder; a rung
    // climbed to later is bounded on demand.
    let mut shapes: BTreeMap<ShapeKey, usize> = BTreeMap::new();
    for l in ladders.values() {
        shapes.entry(ShapeKey::of(&plans[l[0]])).or_insert(l[0]);
    }
    let total_shapes = shapes.len() as u64;
    let done = std::sync::atomic::AtomicU64::new(0);
    let shape_list: Vec<(ShapeKey, usize)> = shapes.into_iter().collect();
    let per_mb: Vec<Result<f64, SearchError>> = shape_list
        .par_iter()
        .map(|(_, i)| {
            let r = compute_per_micro_batch_s(spec, &plans[*i], cluster);
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(Progress::Bounding { done: d, total: total_shapes });
            r
        })
        .collect();
    let mut per_shape: BTreeMap<ShapeKey, f64> = BTreeMap::new();
    for ((k, _), r) in shape_list.into_iter().zip(per_mb) {
        per_shape.insert(k, r?);
    }
    let mut bound_of = |i: usize| -> Result<f64, SearchError> {
        let key = ShapeKey::of(&plans[i]);
        let per_mb = match per_shape.get(&key) {
            Some(&x) => x,
            None => {
                let x = compute_per_micro_batch_s(spec, &plans[i], cluster)?;
                per_shape.insert(key, x);
                x
            }
        };
        Ok(step_lower_bound_s(&plans[i], per_mb))
    };

    // Best bound first.
    let mut next_rung: BTreeMap<usize, (String, usize)> = BTreeMap::new();
    let mut queue: BTreeSet<(u64, usize)> = BTreeSet::new();
    for (g, l) in &ladders {
        queue.insert((key_bits(bound_of(l[0])?), l[0]));
        next_rung.insert(l[0], (g.clone(), 1));
    }
    let mut result = SearchResult {
        evaluated: plans.len() as u64,
        feasible: 0,
        rejected: enumeration.rejected,
        pruned_memory,
        pruned_by_term,
        simulated_oom: 0,
        skipped_dominated: 0,
        skipped_bound: 0,
        simulated: 0,
        shapes: 0,
        memory_limit_bytes: limit,
        ranked: Vec::new(),
        failed: Vec::new(),
    };
    let mut best_steps: BTreeSet<(u64, usize)> = BTreeSet::new();
    let sim_config = sim::SimConfig { ranks: sim::RankMode::Unique, ..sim::SimConfig::default() };
    loop {
        let threshold = if config.exhaustive || best_steps.len() < config.top.max(1) {
            f64::INFINITY
        } else {
            best_steps.iter().nth(config.top.max(1) - 1).map_or(f64::INFINITY, |(b, _)| f64::from_bits(*b))
        };
        let batch: Vec<(u64, usize)> =
            queue.iter().take_while(|(b, _)| f64::from_bits(*b) <= threshold).take(BATCH).copied().collect();
        if batch.is_empty() {
            break;
        }
        for item in &batch {
            queue.remove(item);
        }
        let outcomes: Vec<Result<sim::Report, String>> = batch
            .par_iter()
            .map(|&(_, i)| {
                let program = schedule::build(spec, &plans[i]).map_err(|e| e.to_string())?;
                sim::simulate(spec, &program, cluster, &sim_config)
                    .map(|s| s.report)
                    .map_err(|e| e.to_string())
            })
            .collect();
        for (&(bound_bits, i), outcome) in batch.iter().zip(outcomes) {
            result.simulated += 1;
            let climb = match outcome {
                Ok(report) if report.memory_peak_bytes <= limit => {
                    best_steps.insert((key_bits(report.step_time_s), i));
                    result.ranked.push(Evaluated {
                        plan: plans[i].clone(),
                        analytical_step_time_s: report.step_time_s,
                        report,
                        estimate: estimates[i],
                        lower_bound_s: f64::from_bits(bound_bits),
                    });
                    false
                }
                Ok(_) => {
                    result.simulated_oom += 1;
                    true
                }
                Err(e) => {
                    result.failed.push((describe(&plans[i]), e));
                    true
                }
            };
            // A variant that does not fit (or fails) hands over to the next rung of its ladder.
            let (group, pos) = next_rung.remove(&i).unwrap_or_default();
            if climb && let Some(&j) = ladders.get(&group).and_then(|l| l.get(pos)) {
                queue.insert((key_bits(bound_of(j)?), j));
                next_rung.insert(j, (group, pos + 1));
            }
        }
        progress(Progress::Simulating {
            done: result.simulated,
            total: result.simulated + queue.len() as u64,
        });
    }
    result.skipped_bound = queue.len() as u64;
    let _ = bound_of;
    result.shapes = per_shape.len() as u64;
    let fitting = plans.len() as u64 - pruned_memory;
    result.skipped_dominated = fitting - result.simulated - result.skipped_bound;
    result.feasible = fitting - result.simulated_oom - result.failed.len() as u64;
    result.ranked.sort_by(|a, b| {
        a.report.step_time_s.total_cmp(&b.report.step_time_s).then_with(|| plan_order(&a.plan, &b.plan))
    });
    Ok(result)
}

/// Re-simulates the first `n` ranked plans with the flow network model (every rank simulated, collectives that
/// cross nodes sharing link bandwidth with every other one in flight) and re-orders them by that step time, in
/// parallel. The search itself stays analytical (the flow model costs seconds per plan at scale): this ranks
/// the analytical model's top `n` under contention, and the plans after them keep their analytical order.
/// A plan the flow model finds over the memory limit cannot happen (memory does not depend on the network).
pub fn refine_with_flow(
    spec: &model::ModelSpec,
    cluster: &topology::Cluster,
    result: &mut SearchResult,
    n: usize,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<(), SearchError> {
    let n = n.min(result.ranked.len());
    let config = sim::SimConfig {
        ranks: sim::RankMode::All,
        network: sim::NetworkModel::Flow,
        ..sim::SimConfig::default()
    };
    let done = std::sync::atomic::AtomicU64::new(0);
    let reports: Vec<Result<sim::Report, SearchError>> = result.ranked[..n]
        .par_iter()
        .map(|e| {
            let program = schedule::build(spec, &e.plan).map_err(|err| SearchError::Plan(err.to_string()))?;
            let report = sim::simulate(spec, &program, cluster, &config)
                .map(|s| s.report)
                .map_err(|err| SearchError::Simulation(format!("{}: {err}", describe(&e.plan))))?;
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(Progress::Simulating { done: d, total: n as u64 });
            Ok(report)
        })
        .collect();
    for (e, report) in result.ranked[..n].iter_mut().zip(reports) {
        e.report = report?;
    }
    result.ranked[..n].sort_by(|a, b| {
        a.report.step_time_s.total_cmp(&b.report.step_time_s).then_with(|| plan_order(&a.plan, &b.plan))
    });
    Ok(())
}

/// A stable order on plans for ties: smaller parallel sizes, then micro-batch, ZeRO, recompute, schedule.
fn plan_order(a: &ParallelPlan, b: &ParallelPlan) -> std::cmp::Ordering {
    let key = |p: &ParallelPlan| {
        (
            p.tp,
            p.pp,
            p.cp,
            p.ep,
            p.dp,
            p.vp,
            p.micro_batch,
            p.zero_stage,
            p.recompute as u8,
            sched(p.schedule),
        )
    };
    key(a).cmp(&key(b))
}

fn sched(s: PipelineSchedule) -> u8 {
    PipelineSchedule::ALL.iter().position(|&x| x == s).unwrap_or(0) as u8
}

/// The error for a search where nothing fits: the most frugal plan and its dominant term.
fn nothing_fits(plans: &[ParallelPlan], estimates: &[MemoryEstimate], limit: f64) -> SearchError {
    let i = (0..plans.len())
        .min_by(|&a, &b| estimates[a].total_bytes.total_cmp(&estimates[b].total_bytes).then(a.cmp(&b)))
        .unwrap_or(0);
    let e = estimates[i];
    let (term, bytes) = e.dominant();
    SearchError::NothingFits {
        plans: plans.len() as u64,
        plan: describe(&plans[i]),
        need_gb: e.total_bytes / 1e9,
        limit_gb: limit / 1e9,
        over_gb: (e.total_bytes - limit) / 1e9,
        term,
        term_gb: bytes / 1e9,
    }
}
