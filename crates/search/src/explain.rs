//! Reading a simulated plan: what limits it, which strategy family it belongs to, and the step-time/memory
//! frontier of a set of plans.

use schedule::ParallelPlan;
use serde::Serialize;

/// One way a plan loses time against pure compute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limiter {
    /// What, in words: "PP bubble", "TP communication exposed", ...
    pub label: &'static str,
    /// Seconds of the step it costs (on the slowest stage).
    pub seconds: f64,
    /// `seconds` over the step time.
    pub fraction: f64,
}

/// The label of a `sim::Report::breakdown` key, or `None` for plain compute.
fn label_of(key: &str) -> Option<&'static str> {
    Some(match key {
        "bubble" => "PP bubble",
        "tail" => "step tail (gradient reduction and optimizer after the last backward)",
        "exposed_tp" => "TP communication exposed",
        "exposed_dp" => "DP gradient reduction exposed",
        "exposed_fsdp" => "FSDP gathers and reduce-scatters exposed",
        "exposed_cp" => "CP K/V exchange exposed",
        "exposed_pp" => "PP send/receive exposed",
        "exposed_ep" => "EP all-to-all exposed",
        _ => return None,
    })
}

/// Every loss of `report`, largest first: its breakdown's bubble, exposed communication by purpose and tail,
/// and the recomputation share of compute (compute × (1 − MFU/HFU)). Losses under a millisecond are left out.
pub fn limiters(report: &sim::Report) -> Vec<Limiter> {
    let step = report.step_time_s.max(f64::MIN_POSITIVE);
    let mut out: Vec<Limiter> = report
        .breakdown
        .iter()
        .filter_map(|(k, &v)| label_of(k).map(|label| Limiter { label, seconds: v, fraction: v / step }))
        .collect();
    if report.hfu > 0.0 && report.hfu > report.mfu {
        let compute = report.breakdown.get("compute").copied().unwrap_or(0.0);
        let seconds = compute * (1.0 - report.mfu / report.hfu);
        out.push(Limiter { label: "activation recomputation", seconds, fraction: seconds / step });
    }
    out.retain(|l| l.seconds >= 1e-3);
    out.sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then(a.label.cmp(b.label)));
    out
}

/// The strategy family of a plan: its parallel dimensions above 1, with ZeRO-3 data parallelism named FSDP
/// ("TP·PP·DP", "TP·FSDP", "DP", ...).
pub fn family(plan: &ParallelPlan) -> String {
    let mut parts = Vec::new();
    if plan.tp > 1 {
        parts.push("TP");
    }
    if plan.pp > 1 {
        parts.push("PP");
    }
    if plan.cp > 1 {
        parts.push("CP");
    }
    if plan.ep > 1 {
        parts.push("EP");
    }
    if plan.zero_stage == 3 {
        parts.push("FSDP");
    } else if plan.dp > 1 {
        parts.push("DP");
    }
    if parts.is_empty() { "single GPU".to_owned() } else { parts.join("·") }
}

/// Indices of the points on the lower-left frontier of (memory, time): no other point is both no larger in
/// memory and faster. Ordered by memory ascending; ties broken by index.
pub fn frontier(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| {
        points[a].0.total_cmp(&points[b].0).then(points[a].1.total_cmp(&points[b].1)).then(a.cmp(&b))
    });
    let mut best = f64::INFINITY;
    let mut out = Vec::new();
    for i in order {
        if points[i].1 < best {
            best = points[i].1;
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_keeps_only_undominated_points() {
        let pts = [(10.0, 5.0), (20.0, 4.0), (15.0, 6.0), (30.0, 4.0), (5.0, 9.0)];
        assert_eq!(frontier(&pts), vec![4, 0, 1]);
    }

    #[test]
    fn families_name_the_dimensions() {
        let p = ParallelPlan { tp: 8, pp: 4, dp: 32, ..ParallelPlan::default() };
        assert_eq!(family(&p), "TP·PP·DP");
        let f = ParallelPlan { tp: 2, dp: 8, zero_stage: 3, ..ParallelPlan::default() };
        assert_eq!(family(&f), "TP·FSDP");
    }
}
