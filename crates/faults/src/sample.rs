//! Drawing a fault plan from a failure model with a seed.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::plan::{FaultEntry, FaultKind, FaultPlan, FaultTarget};
use crate::rates::{ComponentRate, Distribution, Effect, FailureModel, Fleet, Scope};

/// What to sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampleConfig {
    /// The job's size.
    pub fleet: Fleet,
    /// How long the plan covers, seconds.
    pub horizon_s: f64,
    /// The seed: the same seed gives the same plan.
    pub seed: u64,
}

/// Draws every failure of `model` in `[0, horizon_s)` for a job of `config.fleet` and returns them as a plan,
/// sorted by time.
///
/// Each component draws from its own ChaCha8 stream, numbered by a hash of its name, so adding or removing a
/// component leaves the others' failures unchanged. Exponential processes are drawn as one Poisson process of
/// the summed rate with a uniformly chosen unit, which is the same distribution as one process per unit;
/// Weibull processes are drawn unit by unit (each unit new at time zero, renewed after every failure).
/// Effects become kinds: crash → `kill`, node loss → `kill {permanent}` on the node, hang → `hang` (until a
/// watchdog fires), drain → `drain` of the job.
pub fn sample_plan(model: &FailureModel, config: &SampleConfig) -> FaultPlan {
    let mut faults = Vec::new();
    for component in &model.components {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(fnv1a(component.name.as_bytes()));
        sample_component(component, config, &mut rng, &mut faults);
    }
    // Stable: simultaneous faults stay in component order.
    faults.sort_by(|a, b| a.time_s.total_cmp(&b.time_s));
    FaultPlan { seed: Some(config.seed), faults }
}

fn sample_component(
    component: &ComponentRate,
    config: &SampleConfig,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<FaultEntry>,
) {
    let units = config.fleet.units(component.scope);
    let rate_per_unit_s = component.failures_per_unit_hour / 3600.0;
    if units == 0 || rate_per_unit_s <= 0.0 || config.horizon_s <= 0.0 {
        return;
    }
    let mut push = |time_s: f64, unit: u64| {
        out.push(FaultEntry {
            time_s,
            target: target(component, config.fleet, unit),
            kind: kind(component.effect),
            cause: Some(component.name.clone()),
        });
    };
    match component.distribution {
        Distribution::Exponential => {
            let total_rate = rate_per_unit_s * units as f64;
            let mut t = 0.0;
            loop {
                t += exponential(rng, total_rate);
                if t >= config.horizon_s {
                    break;
                }
                let unit = if units == 1 { 0 } else { rng.random_range(0..units) };
                push(t, unit);
            }
        }
        Distribution::Weibull { shape } => {
            let scale = Distribution::weibull_scale(1.0 / rate_per_unit_s, shape);
            for unit in 0..units {
                let mut t = 0.0;
                loop {
                    t += weibull(rng, scale, shape);
                    if t >= config.horizon_s {
                        break;
                    }
                    push(t, unit);
                }
            }
        }
    }
}

/// Where a failure of `unit` lands: a GPU-scope unit is that rank; a node-scope unit is the node, or, for
/// a crash or hang, the node's first rank (one process failing takes the job down either way).
fn target(component: &ComponentRate, fleet: Fleet, unit: u64) -> FaultTarget {
    match component.scope {
        Scope::Gpu => FaultTarget::Rank(unit as u32),
        Scope::Node => match component.effect {
            Effect::Crash | Effect::Hang => {
                FaultTarget::Rank((unit * u64::from(fleet.gpus_per_node.max(1))).min(fleet.gpus - 1) as u32)
            }
            Effect::NodeLoss | Effect::Drain => FaultTarget::Node(unit as u32),
        },
        Scope::Job => FaultTarget::Job,
    }
}

fn kind(effect: Effect) -> FaultKind {
    match effect {
        Effect::Crash => FaultKind::Kill { permanent: false },
        Effect::NodeLoss => FaultKind::Kill { permanent: true },
        Effect::Hang => FaultKind::Hang { duration_s: None },
        Effect::Drain => FaultKind::Drain,
    }
}

/// The 64-bit FNV-1a hash (Fowler, Noll, Vo): a fixed, platform-independent stream number per name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// An exponential draw of rate `rate` by inversion; `1 - u` keeps the logarithm's argument in (0, 1].
fn exponential(rng: &mut ChaCha8Rng, rate: f64) -> f64 {
    let u: f64 = rng.random();
    -(1.0 - u).ln() / rate
}

/// A Weibull draw by inversion: λ (−ln U)^(1/k).
fn weibull(rng: &mut ChaCha8Rng, scale: f64, shape: f64) -> f64 {
    let u: f64 = rng.random();
    scale * (-(1.0 - u).ln()).powf(1.0 / shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA3: Fleet = Fleet { gpus: 16_384, gpus_per_node: 8 };
    const DAYS_54_S: f64 = 54.0 * 86_400.0;

    fn unexpected(plan: &FaultPlan) -> usize {
        plan.faults.iter().filter(|f| f.kind != FaultKind::Drain).count()
    }

    #[test]
    fn same_seed_same_plan_and_sorted() {
        let model = FailureModel::llama3();
        let config = SampleConfig { fleet: LLAMA3, horizon_s: DAYS_54_S, seed: 9 };
        let a = sample_plan(&model, &config);
        assert_eq!(a, sample_plan(&model, &config));
        assert_ne!(a, sample_plan(&model, &SampleConfig { seed: 10, ..config }));
        assert!(a.faults.windows(2).all(|w| w[0].time_s <= w[1].time_s));
        assert!(a.faults.iter().all(|f| f.time_s < DAYS_54_S));
        assert!(a.check_targets(LLAMA3.gpus, LLAMA3.nodes()).is_ok());
    }

    #[test]
    fn llama3_counts_average_to_419_over_seeds() {
        for distribution in [Distribution::Exponential, Distribution::Weibull { shape: 0.7 }] {
            let model = FailureModel::llama3().with_distribution(distribution).unwrap();
            let n_seeds = 40;
            let total: usize = (0..n_seeds)
                .map(|seed| {
                    unexpected(&sample_plan(
                        &model,
                        &SampleConfig { fleet: LLAMA3, horizon_s: DAYS_54_S, seed },
                    ))
                })
                .sum();
            let mean = total as f64 / n_seeds as f64;
            // Exponential: Poisson(419) per seed, so the mean of 40 has a standard deviation of 3.2.
            if distribution == Distribution::Exponential {
                assert!((mean - 419.0).abs() < 16.0, "{distribution:?}: mean {mean}");
            } else {
                // Weibull k < 1 from new: more failures early in a unit's life than the long-run rate gives.
                assert!(mean > 419.0 * 1.1, "{distribution:?}: mean {mean}");
            }
        }
    }

    #[test]
    fn components_draw_independent_streams() {
        let model = FailureModel::llama3();
        let config = SampleConfig { fleet: LLAMA3, horizon_s: DAYS_54_S, seed: 1 };
        let full = sample_plan(&model, &config);
        let mut fewer = model.clone();
        fewer.components.remove(2);
        let removed = &model.components[2].name;
        let kept: Vec<_> =
            full.faults.iter().filter(|f| f.cause.as_ref() != Some(removed)).cloned().collect();
        assert_eq!(sample_plan(&fewer, &config).faults, kept);
    }

    #[test]
    fn effects_map_to_kinds_and_targets() {
        let model = FailureModel::llama3();
        let plan = sample_plan(&model, &SampleConfig { fleet: LLAMA3, horizon_s: DAYS_54_S, seed: 4 });
        for f in &plan.faults {
            match f.cause.as_deref() {
                Some("Faulty GPU") => {
                    assert_eq!(f.kind, FaultKind::Kill { permanent: true });
                    assert!(matches!(f.target, FaultTarget::Rank(_)));
                }
                Some("Host Maintenance") => assert!(matches!(f.target, FaultTarget::Node(_))),
                Some("Network Switch/Cable") => assert_eq!(f.kind, FaultKind::Kill { permanent: false }),
                Some("NCCL Watchdog Timeouts") => assert_eq!(f.kind, FaultKind::Hang { duration_s: None }),
                Some("Planned Maintenance") => {
                    assert_eq!((f.target, &f.kind), (FaultTarget::Job, &FaultKind::Drain))
                }
                _ => {}
            }
        }
    }
}
