//! The human-readable report of `choir chaos`.

use std::fmt::Write;

use units::{format_bytes, format_count, format_duration, format_rate};

use super::ChaosReport;

/// Renders the report as text tables.
pub(super) fn render(r: &ChaosReport, plan: &schedule::ParallelPlan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} on {} × {}, {} days, {} seed(s)", r.model, r.gpus, r.gpu, r.days, r.seeds);
    let layers = match &plan.stage_layers {
        Some(l) => format!(", stage layers {}", compact(l)),
        None => String::new(),
    };
    let _ = writeln!(
        s,
        "plan: tp {} · pp {} · dp {} · cp {}, global batch {} × {} tokens{layers}",
        plan.tp, plan.pp, plan.dp, plan.cp, plan.global_batch, plan.seq_len
    );
    let _ = writeln!(
        s,
        "step {} ({}), {} tokens/step, fault-free {}",
        format_duration(r.step_time_s),
        r.step_time_source,
        format_count(r.tokens_per_step),
        format_rate(r.fault_free_tokens_per_s, "tokens/s")
    );
    let c = &r.checkpoint.costs;
    let _ = writeln!(
        s,
        "checkpoint {} (weights + Adam state): write {}, load {}, host snapshot {}",
        format_bytes(r.checkpoint_bytes),
        format_duration(c.write_s),
        format_duration(c.load_s),
        format_duration(c.snapshot_s)
    );
    let f = &r.failures;
    let _ = writeln!(
        s,
        "failures: {}, {}: {:.2} unexpected + {:.2} planned per day, MTBF {}",
        f.source,
        f.distribution,
        f.unexpected_per_day,
        f.planned_per_day,
        format_duration(f.mtbf_s)
    );
    let rc = &r.recovery;
    let _ = writeln!(
        s,
        "policy: {} checkpoint every {} ({} step(s), {}); detect {}, hang timeout {}, restart {}; {} spare nodes, \
         repair {}",
        mode_name(r.checkpoint.mode),
        format_duration(r.checkpoint.interval_s),
        r.checkpoint_every_steps,
        r.checkpoint_interval_source,
        format_duration(rc.detect_s),
        format_duration(rc.hang_timeout_s),
        format_duration(rc.restart_s),
        rc.spare_nodes,
        format_duration(rc.repair_s)
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "{:<22} {:>12} {:>12} {:>12} {:>12}", "over seeds", "mean", "p10", "p50", "p90");
    let row = |s: &mut String, name: &str, x: &faults::Spread, fmt: &dyn Fn(f64) -> String| {
        let _ = writeln!(
            s,
            "{name:<22} {:>12} {:>12} {:>12} {:>12}",
            fmt(x.mean),
            fmt(x.p10),
            fmt(x.p50),
            fmt(x.p90)
        );
    };
    let count = |v: f64| format!("{v:.1}");
    let pct = |v: f64| format!("{:.2}%", v * 100.0);
    row(&mut s, "interruptions", &r.interruptions, &count);
    row(&mut s, "  unexpected", &r.unexpected_interruptions, &count);
    row(&mut s, "ETTR", &r.ettr, &pct);
    row(&mut s, "goodput (tokens/s)", &r.goodput_tokens_per_s, &amount);
    row(&mut s, "lost GPU-hours", &r.lost_gpu_hours, &amount);
    let _ = writeln!(s);
    let _ =
        writeln!(s, "{:<32} {:>14} {:>16}", "cause (mean per campaign)", "interruptions", "lost GPU-hours");
    let mut causes: Vec<(&String, f64)> = r.lost_gpu_hours_by_cause.iter().map(|(k, v)| (k, *v)).collect();
    causes.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    for (cause, hours) in causes {
        let n = r.interruptions_by_cause.get(cause).map_or("-".to_string(), |n| format!("{n:.1}"));
        let _ = writeln!(s, "{cause:<32} {n:>14} {:>16}", amount(hours));
    }
    if !r.sweep.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(s, "checkpoint interval sweep (the same fault plans for every interval):");
        let _ = writeln!(
            s,
            "{:>12} {:>7} {:>9} {:>9} {:>14}",
            "interval", "steps", "ETTR p50", "ETTR p10", "goodput mean"
        );
        for p in &r.sweep {
            let mark = if Some(p.interval_s) == r.best_interval_s { "  ← best" } else { "" };
            let _ = writeln!(
                s,
                "{:>12} {:>7} {:>9} {:>9} {:>14}{mark}",
                format_duration(p.interval_s),
                p.every_steps,
                pct(p.ettr.p50),
                pct(p.ettr.p10),
                amount(p.goodput_tokens_per_s.mean)
            );
        }
    }
    let _ = writeln!(s);
    let opt = |v: Option<f64>| v.map_or("-".to_string(), format_duration);
    let _ = writeln!(
        s,
        "checkpoint interval: Young {} · Daly {} · best simulated {} (least-squares fit {})",
        format_duration(r.young_interval_s),
        format_duration(r.daly_interval_s),
        opt(r.best_interval_s),
        opt(r.fitted_best_interval_s)
    );
    s
}

/// `sync` or `async`, as on the command line.
pub(super) fn mode_name(mode: faults::CheckpointMode) -> &'static str {
    match mode {
        faults::CheckpointMode::Sync => "sync",
        faults::CheckpointMode::Async => "async",
    }
}

/// A count with a metric prefix, and one decimal below a thousand.
fn amount(v: f64) -> String {
    if v.abs() < 1000.0 { format!("{v:.1}") } else { format_count(v) }
}

/// `[7, 8, 8, 8, 7]` as `7, 8×3, 7`.
fn compact(layers: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < layers.len() {
        let run = layers[i..].iter().take_while(|&&l| l == layers[i]).count();
        parts.push(if run > 1 { format!("{}×{run}", layers[i]) } else { layers[i].to_string() });
        i += run;
    }
    parts.join(", ")
}
