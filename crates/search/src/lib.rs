//! Strategy search: every valid parallel plan for a model on a cluster, ranked by simulated step time.
//!
//! [`search`] runs four phases:
//! 1. **Enumerate** ([`enumerate`]): every combination of tp, pp, cp, dp, ep, vp, micro-batch, ZeRO stage,
//!    recomputation and pipeline schedule in the [`SearchSpace`] that passes `ParallelPlan::validate` for the GPU
//!    count, with Megatron's rank order (TP innermost, inside a node unless allowed otherwise).
//! 2. **Prune by memory** ([`estimate_memory`]): a closed-form peak per GPU drops plans that cannot fit (more
//!    than [`PRUNE_SLACK`] over the limit; the simulator judges the rest).
//! 3. **Skip dominated variants**: of plans that differ only in recomputation (and ZeRO-1 vs ZeRO-2, whose step
//!    programs are the same), only the lightest that fits is simulated; heavier ones cannot be faster.
//! 4. **Simulate, best bound first**: a lower bound on each plan's step time (compute-stream time per
//!    micro-batch × micro-batches, measured once per plan shape; see `bound.rs`) orders the rest; they are
//!    simulated in fixed-size batches on all cores (rayon, results collected in order) until the next bound
//!    exceeds the `top`-th best simulated step time. The top plans are therefore exact, and the run is
//!    deterministic: the batches, and so the set of plans simulated, do not depend on the thread count.
//!
//! With [`SearchConfig::exhaustive`] phases 3 and 4's cut-offs are off and every plan that fits is simulated.
//! [`refine_with_flow`] then optionally re-ranks the top plans under the flow network model (contention).
//! The crate is pure: it reads no files and no clock; progress goes to a caller-supplied callback.

mod bound;
mod evaluate;
mod explain;
mod memory;
mod space;

pub use evaluate::{Evaluated, PRUNE_SLACK, Progress, SearchResult, refine_with_flow, search};
pub use explain::{Limiter, family, frontier, limiters};
pub use memory::{MemoryEstimate, estimate_memory};
pub use space::{Enumeration, SearchSpace, enumerate};

/// How to search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchConfig {
    /// The plans to consider.
    pub space: SearchSpace,
    /// How many of the best plans must be exact (simulated); the bound stops the search once no other plan
    /// can enter them.
    pub top: usize,
    /// Simulate every plan that fits, with no dominance skipping and no bound cut-off.
    pub exhaustive: bool,
    /// Memory per GPU a plan may use, bytes [default: the GPU's HBM].
    pub memory_limit_bytes: Option<f64>,
}

impl SearchConfig {
    /// A search of `space` for the best 10 plans.
    pub fn new(space: SearchSpace) -> SearchConfig {
        SearchConfig { space, top: 10, exhaustive: false, memory_limit_bytes: None }
    }
}

/// A search that cannot run or finds nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SearchError {
    /// No combination of parallel sizes uses exactly the GPUs asked for.
    #[error("no valid plan uses exactly {gpus} GPUs: {reasons}")]
    NoValidPlan {
        /// GPUs asked for.
        gpus: u32,
        /// The most frequent reasons, with counts.
        reasons: String,
    },
    /// The job asks for more GPUs than the cluster has.
    #[error("the job asks for {gpus} GPUs but the cluster has {available}")]
    TooManyGpus {
        /// GPUs asked for.
        gpus: u32,
        /// GPUs in the cluster.
        available: u32,
    },
    /// Every valid plan needs more memory than a GPU has.
    #[error(
        "no plan fits in {limit_gb:.1} GB per GPU: the most frugal of {plans} plans ({plan}) needs {need_gb:.1} GB, \
         {over_gb:.1} GB over; its largest term is {term} at {term_gb:.1} GB"
    )]
    NothingFits {
        /// Valid plans considered.
        plans: u64,
        /// The plan with the smallest estimated peak, described.
        plan: String,
        /// Its estimated peak, GB.
        need_gb: f64,
        /// The limit, GB.
        limit_gb: f64,
        /// How far over, GB.
        over_gb: f64,
        /// Its dominant memory term.
        term: &'static str,
        /// That term, GB.
        term_gb: f64,
    },
    /// Building a step program failed (a plan the enumeration thought valid).
    #[error("building a plan's step program: {0}")]
    Plan(String),
    /// The simulator refused a plan.
    #[error("simulating a plan: {0}")]
    Simulation(String),
}

/// A one-line description of a plan: `tp 8 · pp 4 · dp 32 · cp 1, mb 1, zero 1, recompute none, 1f1b`.
pub fn describe(plan: &schedule::ParallelPlan) -> String {
    let ep = if plan.ep > 1 { format!(" · ep {}", plan.ep) } else { String::new() };
    let vp = if plan.vp > 1 { format!(" (vp {})", plan.vp) } else { String::new() };
    format!(
        "tp {} · pp {} · dp {} · cp {}{ep}, mb {}, zero {}, recompute {}, {}{vp}",
        plan.tp,
        plan.pp,
        plan.dp,
        plan.cp,
        plan.micro_batch,
        plan.zero_stage,
        recompute_name(plan.recompute),
        plan.schedule.name()
    )
}

/// The command-line name of a recomputation setting.
pub fn recompute_name(r: schedule::Recompute) -> &'static str {
    match r {
        schedule::Recompute::None => "none",
        schedule::Recompute::Selective => "selective",
        schedule::Recompute::Full => "full",
    }
}

#[cfg(test)]
mod tests;
