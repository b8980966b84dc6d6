//! Failure processes per component, with rates per device-hour.
//!
//! A [`FailureModel`] is a list of [`ComponentRate`]s. Each is one failure process per *unit* of its
//! [`Scope`] (a GPU, a node, or the whole job): an independent renewal process whose inter-failure times are
//! exponential (the default, a Poisson process) or Weibull with the same mean. The default model,
//! [`FailureModel::llama3`], derives its rates from the Llama 3 405B failure table (`data/llama3_table5.toml`,
//! which documents the derivation): `rate = count / (units in the observed job × days × 24)`.

use serde::{Deserialize, Serialize};

use crate::error::{FaultsError, check_min};

/// The Llama 3 405B failure counts, with provenance and the derivation of rates (see the file's comments).
pub const LLAMA3_TABLE5_TOML: &str = include_str!("../data/llama3_table5.toml");

/// What one failure process belongs to, and so how its count scales with the job's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One process per GPU.
    Gpu,
    /// One process per node (server).
    Node,
    /// One process for the whole job.
    Job,
}

/// What a failure does to the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The job's processes die; it restarts on the same nodes.
    Crash,
    /// A node is lost and must be swapped for a spare before the job restarts.
    NodeLoss,
    /// Ranks stop making progress until a watchdog notices.
    Hang,
    /// Planned: the job checkpoints, stops and restarts.
    Drain,
}

/// The distribution of the time between two failures of one unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Distribution {
    /// Memoryless: a Poisson process per unit.
    Exponential,
    /// Weibull with this shape and the same mean as the rate gives: shape < 1 is infant mortality (failures
    /// bunch up early), > 1 wear-out. Every unit starts new at time zero and is renewed after each failure.
    Weibull {
        /// The shape parameter k (> 0).
        shape: f64,
    },
}

impl Distribution {
    /// The Weibull scale λ that gives mean `mean` for shape `shape`: λ = mean / Γ(1 + 1/k).
    pub fn weibull_scale(mean: f64, shape: f64) -> f64 {
        mean / ln_gamma(1.0 + 1.0 / shape).exp()
    }
}

/// One component's failure process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentRate {
    /// The component or cause, as it appears in reports ("Faulty GPU").
    pub name: String,
    /// A coarser grouping ("GPU", "Host", "Network").
    pub category: String,
    /// What one process belongs to.
    pub scope: Scope,
    /// Failures per unit-hour (per GPU-hour for [`Scope::Gpu`]).
    pub failures_per_unit_hour: f64,
    /// Inter-failure time distribution of one unit.
    pub distribution: Distribution,
    /// What a failure does.
    pub effect: Effect,
    /// Planned (maintenance) rather than an unexpected failure.
    pub planned: bool,
}

/// The job's size, in the units the scopes count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fleet {
    /// GPUs (ranks) in the job.
    pub gpus: u64,
    /// GPUs per node.
    pub gpus_per_node: u32,
}

impl Fleet {
    /// Nodes in the job (a partial last node counts).
    pub fn nodes(&self) -> u64 {
        self.gpus.div_ceil(u64::from(self.gpus_per_node.max(1)))
    }

    /// How many units of `scope` the job has.
    pub fn units(&self, scope: Scope) -> u64 {
        match scope {
            Scope::Gpu => self.gpus,
            Scope::Node => self.nodes(),
            Scope::Job => 1,
        }
    }
}

/// A set of failure processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureModel {
    /// Where the rates come from.
    pub source: String,
    /// One process per component.
    pub components: Vec<ComponentRate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCounts {
    observed: RawObserved,
    component: Vec<RawComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObserved {
    source: String,
    gpus: u64,
    gpus_per_node: u32,
    days: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    name: String,
    category: String,
    count: f64,
    scope: String,
    effect: String,
    #[serde(default)]
    planned: bool,
}

impl FailureModel {
    /// The default model: rates derived from the Llama 3 405B table (see [`LLAMA3_TABLE5_TOML`]), exponential.
    pub fn llama3() -> FailureModel {
        match FailureModel::from_counts_toml(LLAMA3_TABLE5_TOML) {
            Ok(model) => model,
            Err(e) => unreachable!("the embedded Llama 3 table is checked by a test: {e}"),
        }
    }

    /// Derives rates from failure counts observed over one job, in the schema of `data/llama3_table5.toml`:
    /// an `[observed]` table (`source`, `gpus`, `gpus_per_node`, `days`) and `[[component]]` rows (`name`,
    /// `category`, `count`, `scope` = gpu|node|job, `effect` = crash|node_loss|hang|drain, optional `planned`).
    /// Each rate is `count / (units of the scope in the observed job × days × 24)`; all are exponential.
    pub fn from_counts_toml(text: &str) -> Result<FailureModel, FaultsError> {
        let raw: RawCounts = toml::from_str(text)
            .map_err(|e| FaultsError::Parse { what: "failure counts".into(), message: e.to_string() })?;
        check_min("observed.days", raw.observed.days, 0.0, false)?;
        check_min("observed.gpus", raw.observed.gpus as f64, 1.0, true)?;
        check_min("observed.gpus_per_node", f64::from(raw.observed.gpus_per_node), 1.0, true)?;
        let observed = Fleet { gpus: raw.observed.gpus, gpus_per_node: raw.observed.gpus_per_node };
        let hours = raw.observed.days * 24.0;
        let mut components = Vec::with_capacity(raw.component.len());
        for c in raw.component {
            check_min(&format!("{}: count", c.name), c.count, 0.0, true)?;
            let scope = match c.scope.as_str() {
                "gpu" => Scope::Gpu,
                "node" => Scope::Node,
                "job" => Scope::Job,
                other => return Err(unknown("scope", other, "gpu, node, job")),
            };
            let effect = match c.effect.as_str() {
                "crash" => Effect::Crash,
                "node_loss" => Effect::NodeLoss,
                "hang" => Effect::Hang,
                "drain" => Effect::Drain,
                other => return Err(unknown("effect", other, "crash, node_loss, hang, drain")),
            };
            components.push(ComponentRate {
                name: c.name,
                category: c.category,
                scope,
                failures_per_unit_hour: c.count / (observed.units(scope) as f64 * hours),
                distribution: Distribution::Exponential,
                effect,
                planned: c.planned,
            });
        }
        Ok(FailureModel { source: raw.observed.source, components })
    }

    /// The same model with every component's distribution replaced by `distribution`.
    pub fn with_distribution(mut self, distribution: Distribution) -> Result<FailureModel, FaultsError> {
        if let Distribution::Weibull { shape } = distribution {
            check_min("Weibull shape", shape, 0.0, false)?;
        }
        for c in &mut self.components {
            c.distribution = distribution;
        }
        Ok(self)
    }

    /// The same model without its planned processes.
    pub fn without_planned(mut self) -> FailureModel {
        self.components.retain(|c| !c.planned);
        self
    }

    /// Expected failures per hour in `fleet`: unplanned and planned. Exact for exponential processes and the
    /// long-run rate for Weibull ones (a renewal process fails once per mean inter-failure time).
    pub fn failures_per_hour(&self, fleet: Fleet) -> (f64, f64) {
        let mut unplanned = 0.0;
        let mut planned = 0.0;
        for c in &self.components {
            let r = c.failures_per_unit_hour * fleet.units(c.scope) as f64;
            if c.planned {
                planned += r;
            } else {
                unplanned += r;
            }
        }
        (unplanned, planned)
    }

    /// Mean time between unexpected (unplanned) interruptions of a job of `fleet`, seconds; infinite when no
    /// process can fail.
    pub fn mtbf_s(&self, fleet: Fleet) -> f64 {
        let (unplanned, _) = self.failures_per_hour(fleet);
        if unplanned > 0.0 { 3600.0 / unplanned } else { f64::INFINITY }
    }
}

fn unknown(field: &str, value: &str, expected: &str) -> FaultsError {
    FaultsError::UnknownName { field: field.into(), value: value.into(), expected: expected.into() }
}

/// ln Γ(x) for x > 0: shift x up with Γ(x) = Γ(x+1)/x until x ≥ 10, then Stirling's series to the x⁻⁷ term
/// (Abramowitz & Stegun 6.1.40), accurate to about 1e-12 there.
pub(crate) fn ln_gamma(x: f64) -> f64 {
    let mut x = x;
    let mut shift = 0.0;
    while x < 10.0 {
        shift -= x.ln();
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    let series = inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 / 1680.0)));
    shift + (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + series
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA3: Fleet = Fleet { gpus: 16_384, gpus_per_node: 8 };

    #[test]
    fn llama3_rates_give_back_the_published_counts_at_the_observed_size() {
        let model = FailureModel::llama3();
        let (unplanned, planned) = model.failures_per_hour(LLAMA3);
        let hours = 54.0 * 24.0;
        assert!((unplanned * hours - 419.0).abs() < 1e-9, "{}", unplanned * hours);
        assert!((planned * hours - 47.0).abs() < 1e-9, "{}", planned * hours);
        // 54 d × 24 h / 419 = 3.09 h, the figure reliability.toml derives.
        assert!((model.mtbf_s(LLAMA3) / 3600.0 - 3.093).abs() < 0.001);
        let gpu = &model.components[0];
        assert_eq!(gpu.name, "Faulty GPU");
        assert!((gpu.failures_per_unit_hour - 148.0 / (16_384.0 * 1296.0)).abs() < 1e-15);
    }

    #[test]
    fn scopes_scale_counts_differently() {
        let model = FailureModel::llama3().without_planned();
        let half = Fleet { gpus: 8192, gpus_per_node: 8 };
        let (unplanned, planned) = model.failures_per_hour(half);
        assert_eq!(planned, 0.0);
        // Every unplanned row scales with GPUs or nodes, so half the job sees half the failures.
        assert!((unplanned * 1296.0 - 209.5).abs() < 1e-9);
        let fat_nodes = Fleet { gpus: 16_384, gpus_per_node: 16 };
        let node_rows: f64 = 35.0 + 32.0 + 7.0 + 3.0 + 3.0 + 2.0 + 2.0 + 2.0 + 2.0;
        let (u, _) = model.failures_per_hour(fat_nodes);
        assert!((u * 1296.0 - (419.0 - node_rows / 2.0)).abs() < 1e-9);
    }

    #[test]
    fn ln_gamma_matches_known_values() {
        assert!(ln_gamma(1.0).abs() < 1e-12);
        assert!(ln_gamma(2.0).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        // Γ(1.5) = √π / 2; Weibull k = 2 with mean 1 has scale 1/Γ(1.5).
        assert!((Distribution::weibull_scale(1.0, 2.0) - 2.0 / std::f64::consts::PI.sqrt()).abs() < 1e-12);
        assert!((Distribution::weibull_scale(3.0, 1.0) - 3.0).abs() < 1e-10);
    }

    #[test]
    fn bad_tables_name_the_value() {
        let text = LLAMA3_TABLE5_TOML.replacen("scope = \"gpu\"", "scope = \"rack\"", 1);
        let err = FailureModel::from_counts_toml(&text).unwrap_err().to_string();
        assert!(err.contains("\"rack\"") && err.contains("gpu, node, job"), "{err}");
        let err = FailureModel::from_counts_toml("[observed]\n").unwrap_err().to_string();
        assert!(err.starts_with("failure counts:"), "{err}");
        let weibull = FailureModel::llama3().with_distribution(Distribution::Weibull { shape: -1.0 });
        assert!(weibull.unwrap_err().to_string().contains("Weibull shape = -1"));
    }
}
