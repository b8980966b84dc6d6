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
/// Weibull processes are drawn unit by unit as renewal processes in equilibrium: the fleet has been running
/// long before the job starts, so each unit's first failure is drawn from the forward-recurrence distribution
/// (density S(x)/mean) and later ones, after the unit is renewed, from the Weibull itself. The expected count
/// over any window is then rate × window, as for the exponential; only the clustering differs (with shape < 1
/// a renewed unit is likely to fail again soon, like a lemon node).
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
                let mut t = weibull_forward_recurrence(rng, scale, shape);
                loop {
                    if t >= config.horizon_s {
                        break;
                    }
                    push(t, unit);
                    t += weibull(rng, scale, shape);
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

/// The time to the next failure of a Weibull renewal process in equilibrium, seen from an arbitrary instant:
/// its CDF is P(1/k, (x/λ)^k) (the regularised incomplete gamma function), so x = λ·G^(1/k) with
/// G ~ Gamma(1/k, 1).
fn weibull_forward_recurrence(rng: &mut ChaCha8Rng, scale: f64, shape: f64) -> f64 {
    scale * gamma(rng, 1.0 / shape).powf(1.0 / shape)
}

/// A Gamma(a, 1) draw: Marsaglia & Tsang, "A simple method for generating gamma variables" (ACM TOMS 26(3),
/// 2000), with Gamma(a) = Gamma(a + 1)·U^(1/a) for a < 1.
fn gamma(rng: &mut ChaCha8Rng, a: f64) -> f64 {
    if a < 1.0 {
        let u: f64 = rng.random();
        return gamma(rng, a + 1.0) * (1.0 - u).powf(1.0 / a);
    }
    let d = a - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.random();
        if (1.0 - u).ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random();
    let u2: f64 = rng.random();
    (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
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
            // Exponential: Poisson(419) per seed, so the mean of 40 has a standard deviation of 3.2. Weibull in
            // equilibrium has the same expected count.
            assert!((mean - 419.0).abs() < 16.0, "{distribution:?}: mean {mean}");
        }
    }

    #[test]
    fn gamma_and_forward_recurrence_draws_have_the_right_means() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let n = 200_000;
        for a in [0.5, 1.0 / 0.7, 3.0] {
            let mean = (0..n).map(|_| gamma(&mut rng, a)).sum::<f64>() / n as f64;
            assert!((mean / a - 1.0).abs() < 0.01, "Gamma({a}): mean {mean}");
        }
        // Exponential (k = 1): the forward recurrence time is the exponential itself, mean λ.
        let mean = (0..n).map(|_| weibull_forward_recurrence(&mut rng, 2.0, 1.0)).sum::<f64>() / n as f64;
        assert!((mean / 2.0 - 1.0).abs() < 0.01, "{mean}");
        // k = 2, λ = 1: E[forward recurrence] = E[X²]/(2E[X]) = Γ(2)/(2Γ(1.5)) = 1/√π.
        let mean = (0..n).map(|_| weibull_forward_recurrence(&mut rng, 1.0, 2.0)).sum::<f64>() / n as f64;
        assert!((mean * std::f64::consts::PI.sqrt() - 1.0).abs() < 0.01, "{mean}");
    }

    #[test]
    fn weibull_below_one_clusters_failures_on_renewed_units() {
        let fleet = Fleet { gpus: 16_384, gpus_per_node: 8 };
        let repeats = |distribution| {
            let model = FailureModel::llama3().with_distribution(distribution).unwrap();
            (0..10)
                .map(|seed| {
                    let plan = sample_plan(&model, &SampleConfig { fleet, horizon_s: DAYS_54_S, seed });
                    let mut targets: Vec<_> = plan
                        .faults
                        .iter()
                        .filter(|f| f.target != FaultTarget::Job)
                        .map(|f| (f.cause.clone(), f.target))
                        .collect();
                    let n = targets.len();
                    targets.sort();
                    targets.dedup();
                    n - targets.len()
                })
                .sum::<usize>()
        };
        let exponential = repeats(Distribution::Exponential);
        let weibull = repeats(Distribution::Weibull { shape: 0.5 });
        assert!(
            weibull > 3 * exponential.max(1),
            "repeat failures: Weibull {weibull}, exponential {exponential}"
        );
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
