//! Many campaigns: one per seed, and a sweep of checkpoint intervals over the same fault plans.
//!
//! Every interval of the sweep replays the same per-seed plans (common random numbers), so the differences
//! between intervals come from the interval, not from luck. Seeds run in parallel with rayon; results are
//! collected in seed order, so a study is deterministic.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::campaign::{CampaignConfig, CampaignResult, every_steps, run_campaign, validate};
use crate::error::{FaultsError, check_min};
use crate::plan::FaultPlan;
use crate::rates::FailureModel;
use crate::sample::{SampleConfig, sample_plan};

/// Where a study's fault plans come from.
#[derive(Debug, Clone, Copy)]
pub enum PlanSource<'a> {
    /// One plan per seed, drawn from this model.
    Sampled(&'a FailureModel),
    /// The same given plan for every run (one seed is enough).
    Fixed(&'a FaultPlan),
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyConfig {
    /// The campaign, with the checkpoint interval of the main runs.
    pub campaign: CampaignConfig,
    /// How many seeds.
    pub seeds: u64,
    /// The first seed; the others follow it.
    pub first_seed: u64,
    /// Checkpoint intervals to sweep, seconds (empty: no sweep).
    pub sweep_intervals_s: Vec<f64>,
}

/// Mean and percentiles of one figure over seeds (nearest-rank percentiles).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Arithmetic mean.
    pub mean: f64,
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

/// The spread of `values` (all zero when empty).
pub fn spread(values: &[f64]) -> Spread {
    if values.is_empty() {
        return Spread::default();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    Spread {
        mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
        p10: rank(0.10),
        p50: rank(0.50),
        p90: rank(0.90),
        min: sorted[0],
        max: sorted[sorted.len() - 1],
    }
}

/// One interval of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// The interval as run: whole steps × step time, seconds.
    pub interval_s: f64,
    /// Steps between checkpoints.
    pub every_steps: u64,
    /// ETTR over seeds.
    pub ettr: Spread,
    /// Goodput over seeds, tokens/s.
    pub goodput_tokens_per_s: Spread,
}

/// The outcome of a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Study {
    /// One campaign per seed at the main interval, in seed order.
    pub runs: Vec<CampaignResult>,
    /// Interruptions per campaign.
    pub interruptions: Spread,
    /// Unexpected interruptions per campaign.
    pub unexpected_interruptions: Spread,
    /// ETTR.
    pub ettr: Spread,
    /// Goodput, tokens/s.
    pub goodput_tokens_per_s: Spread,
    /// GPU-hours not spent on kept steps.
    pub lost_gpu_hours: Spread,
    /// Mean interruptions per campaign, per cause.
    pub interruptions_by_cause: BTreeMap<String, f64>,
    /// Mean lost GPU-hours per campaign, per cause.
    pub lost_gpu_hours_by_cause: BTreeMap<String, f64>,
    /// The sweep, in interval order.
    pub sweep: Vec<SweepPoint>,
    /// The swept interval with the highest mean goodput.
    pub best_interval_s: Option<f64>,
    /// The minimum of `waste = a/τ + b·τ + c` fitted by least squares to the sweep's mean waste (1 − ETTR):
    /// √(a/b). Smooths the seed-to-seed noise of the raw best; `None` when the fit has no interior minimum.
    pub fitted_best_interval_s: Option<f64>,
}

/// `points` intervals spaced geometrically from `center_s / factor` to `center_s · factor`, rounded to whole
/// steps of `step_time_s` (at least one), without repeats.
pub fn interval_grid(center_s: f64, factor: f64, points: usize, step_time_s: f64) -> Vec<f64> {
    let mut steps: Vec<u64> = (0..points)
        .map(|i| {
            let x = if points > 1 { i as f64 / (points - 1) as f64 * 2.0 - 1.0 } else { 0.0 };
            every_steps(center_s * factor.powf(x), step_time_s)
        })
        .collect();
    steps.dedup();
    steps.into_iter().map(|n| n as f64 * step_time_s).collect()
}

/// Runs the study: `seeds` campaigns at the main interval and, over the same plans, every swept interval.
pub fn run_study(config: &StudyConfig, source: PlanSource<'_>) -> Result<Study, FaultsError> {
    validate(&config.campaign)?;
    check_min("seeds", config.seeds as f64, 1.0, true)?;
    for &interval in &config.sweep_intervals_s {
        check_min("swept checkpoint interval (s)", interval, 0.0, false)?;
    }
    let c = &config.campaign;
    let plans: Vec<FaultPlan> = match source {
        PlanSource::Fixed(plan) => vec![plan.clone(); config.seeds as usize],
        PlanSource::Sampled(model) => (0..config.seeds)
            .into_par_iter()
            .map(|i| {
                let seed = config.first_seed + i;
                sample_plan(model, &SampleConfig { fleet: c.fleet, horizon_s: c.horizon_s, seed })
            })
            .collect(),
    };
    let run_all = |interval_s: f64| -> Result<Vec<CampaignResult>, FaultsError> {
        let mut campaign = c.clone();
        campaign.checkpoint.interval_s = interval_s;
        plans.par_iter().map(|plan| run_campaign(&campaign, plan)).collect()
    };
    let runs = run_all(c.checkpoint.interval_s)?;
    let mut sweep = Vec::with_capacity(config.sweep_intervals_s.len());
    for &interval_s in &config.sweep_intervals_s {
        let results = run_all(interval_s)?;
        let n = every_steps(interval_s, c.step_time_s);
        sweep.push(SweepPoint {
            interval_s: n as f64 * c.step_time_s,
            every_steps: n,
            ettr: spread(&results.iter().map(|r| r.ettr).collect::<Vec<_>>()),
            goodput_tokens_per_s: spread(&results.iter().map(|r| r.goodput_tokens_per_s).collect::<Vec<_>>()),
        });
    }
    let best_interval_s = sweep
        .iter()
        .max_by(|a, b| a.goodput_tokens_per_s.mean.total_cmp(&b.goodput_tokens_per_s.mean))
        .map(|p| p.interval_s);
    let fitted_best_interval_s = fit_best_interval(&sweep);
    Ok(summarise(runs, sweep, best_interval_s, fitted_best_interval_s))
}

fn summarise(
    runs: Vec<CampaignResult>,
    sweep: Vec<SweepPoint>,
    best: Option<f64>,
    fitted: Option<f64>,
) -> Study {
    let figure = |f: &dyn Fn(&CampaignResult) -> f64| spread(&runs.iter().map(f).collect::<Vec<_>>());
    let n = runs.len().max(1) as f64;
    let mut interruptions_by_cause = BTreeMap::new();
    let mut lost_gpu_hours_by_cause = BTreeMap::new();
    for r in &runs {
        for (cause, count) in &r.interruptions_by_cause {
            *interruptions_by_cause.entry(cause.clone()).or_insert(0.0) += *count as f64 / n;
        }
        for (cause, hours) in &r.lost_gpu_hours_by_cause {
            *lost_gpu_hours_by_cause.entry(cause.clone()).or_insert(0.0) += hours / n;
        }
    }
    Study {
        interruptions: figure(&|r| r.interruptions as f64),
        unexpected_interruptions: figure(&|r| r.unexpected_interruptions as f64),
        ettr: figure(&|r| r.ettr),
        goodput_tokens_per_s: figure(&|r| r.goodput_tokens_per_s),
        lost_gpu_hours: figure(&|r| r.lost_gpu_hours_by_cause.values().sum()),
        interruptions_by_cause,
        lost_gpu_hours_by_cause,
        runs,
        sweep,
        best_interval_s: best,
        fitted_best_interval_s: fitted,
    }
}

/// Least-squares fit of `w(τ) = a/τ + b·τ + c` to the sweep's mean waste; returns √(a/b) when a, b > 0 and
/// the minimum lies inside the swept range.
fn fit_best_interval(sweep: &[SweepPoint]) -> Option<f64> {
    if sweep.len() < 3 {
        return None;
    }
    // Normal equations AᵀA·x = Aᵀw for the columns (1/τ, τ, 1).
    let mut ata = [[0.0f64; 3]; 3];
    let mut atw = [0.0f64; 3];
    for p in sweep {
        let row = [1.0 / p.interval_s, p.interval_s, 1.0];
        let w = 1.0 - p.ettr.mean;
        for i in 0..3 {
            for j in 0..3 {
                ata[i][j] += row[i] * row[j];
            }
            atw[i] += row[i] * w;
        }
    }
    let [a, b, _] = solve3(ata, atw)?;
    let lo = sweep.iter().map(|p| p.interval_s).fold(f64::INFINITY, f64::min);
    let hi = sweep.iter().map(|p| p.interval_s).fold(0.0, f64::max);
    let tau = (a / b).sqrt();
    (a > 0.0 && b > 0.0 && tau >= lo && tau <= hi).then_some(tau)
}

/// Solves a 3×3 system by Gaussian elimination with partial pivoting; `None` when singular.
fn solve3(mut m: [[f64; 3]; 3], mut v: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let pivot = (col..3).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))?;
        if m[pivot][col].abs() < 1e-300 {
            return None;
        }
        m.swap(col, pivot);
        v.swap(col, pivot);
        for row in col + 1..3 {
            let f = m[row][col] / m[col][col];
            let pivot_row = m[col];
            for (x, p) in m[row].iter_mut().zip(pivot_row).skip(col) {
                *x -= f * p;
            }
            v[row] -= f * v[col];
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        let tail: f64 = (row + 1..3).map(|k| m[row][k] * x[k]).sum();
        x[row] = (v[row] - tail) / m[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let s = spread(&values);
        assert_eq!((s.p10, s.p50, s.p90, s.min, s.max), (1.0, 5.0, 9.0, 1.0, 10.0));
        assert!((s.mean - 5.5).abs() < 1e-12);
        assert_eq!(spread(&[]), Spread::default());
    }

    #[test]
    fn the_grid_is_geometric_in_whole_steps() {
        let grid = interval_grid(100.0, 4.0, 5, 1.0);
        assert_eq!(grid, [25.0, 50.0, 100.0, 200.0, 400.0]);
        let coarse = interval_grid(3.0, 4.0, 9, 2.0);
        assert!(coarse.windows(2).all(|w| w[0] < w[1]), "{coarse:?}");
        assert_eq!(coarse[0], 2.0);
    }

    #[test]
    fn the_fit_recovers_a_known_minimum() {
        let point = |tau: f64| SweepPoint {
            interval_s: tau,
            every_steps: tau as u64,
            ettr: Spread { mean: 1.0 - (8.0 / tau + tau / 200.0 + 0.01), ..Spread::default() },
            goodput_tokens_per_s: Spread::default(),
        };
        let sweep: Vec<_> = [10.0, 20.0, 30.0, 40.0, 60.0, 80.0, 120.0].into_iter().map(point).collect();
        let tau = fit_best_interval(&sweep).unwrap();
        assert!((tau - 40.0).abs() < 1e-6, "{tau}");
        assert_eq!(solve3([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 0.0, 1.0]], [1.0, 2.0, 3.0]), None);
    }
}
