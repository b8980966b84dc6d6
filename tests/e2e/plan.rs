//! `choir plan` as a user runs it.

use crate::support::choir;

fn plan(args: &[&str]) -> std::process::Output {
    let mut all = vec!["plan"];
    all.extend_from_slice(args);
    choir(&all)
}

/// A small, fast search: llama3-8b on 16 GPUs.
const SMALL: &[&str] =
    &["--model", "llama3-8b", "--gpus", "16", "--global-batch", "32", "--seq", "4096", "--top", "5"];

#[test]
fn json_lists_the_best_plans_with_their_figures_and_is_byte_identical_across_runs() {
    let mut args = SMALL.to_vec();
    args.push("--json");
    let a = plan(&args);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = plan(&args);
    assert_eq!(a.stdout, b.stdout, "the search is deterministic");
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let evaluated = v["evaluated"].as_u64().unwrap();
    let feasible = v["feasible"].as_u64().unwrap();
    assert!(evaluated > 0 && feasible > 0 && feasible <= evaluated);
    let best = v["best"].as_array().unwrap();
    assert_eq!(best.len(), 5);
    for key in [
        "tp",
        "pp",
        "dp",
        "cp",
        "vp",
        "micro_batch",
        "zero_stage",
        "recompute",
        "schedule",
        "step_time_s",
        "mfu",
        "memory_peak_bytes",
    ] {
        assert!(best[0].get(key).is_some(), "missing {key}");
    }
    // Ranked fastest first, every plan uses the 16 GPUs.
    let steps: Vec<f64> = best.iter().map(|b| b["step_time_s"].as_f64().unwrap()).collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
    for b in best {
        let gpus = ["tp", "pp", "dp", "cp"].iter().map(|k| b[*k].as_u64().unwrap()).product::<u64>();
        assert_eq!(gpus, 16);
        assert!(b["memory_peak_bytes"].as_f64().unwrap() <= 80e9);
    }
}

#[test]
fn the_table_explains_what_limits_each_plan_and_the_svg_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("plans.svg");
    let mut args = SMALL.to_vec();
    args.extend_from_slice(&["--svg", svg.to_str().unwrap()]);
    let out = plan(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("valid plans in"), "{text}");
    assert!(text.contains("pruned: closed-form memory"), "{text}");
    assert_eq!(text.matches("limited by").count(), 5, "{text}");
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg") && picture.contains("frontier") && picture.contains("<circle"));
}

#[test]
fn the_flow_network_re_ranks_the_analytical_top_plans() {
    let mut args = SMALL.to_vec();
    args.extend_from_slice(&["--network", "flow", "--json"]);
    let out = plan(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["network"], "flow");
    let best = v["best"].as_array().unwrap();
    assert_eq!(best.len(), 5);
    // Ranked by the flow model's step time; each plan also carries the analytical figure it was found by.
    // On 2 nodes the two models agree closely (the collectives that cross nodes run alone).
    let steps: Vec<f64> = best.iter().map(|b| b["step_time_s"].as_f64().unwrap()).collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
    for b in best {
        let (flow, analytical) =
            (b["step_time_s"].as_f64().unwrap(), b["analytical_step_time_s"].as_f64().unwrap());
        assert!((flow / analytical - 1.0).abs() < 0.1, "flow {flow} s vs analytical {analytical} s");
    }
    // The same plans as the analytical search's top 5, whatever their order.
    let mut plain = SMALL.to_vec();
    plain.push("--json");
    let a: serde_json::Value = serde_json::from_slice(&plan(&plain).stdout).unwrap();
    let key = |b: &serde_json::Value| {
        ["tp", "pp", "dp", "cp", "vp", "micro_batch", "zero_stage"].map(|k| b[k].as_u64().unwrap())
    };
    let mut ours: Vec<_> = best.iter().map(key).collect();
    let mut theirs: Vec<_> = a["best"].as_array().unwrap().iter().map(key).collect();
    ours.sort_unstable();
    theirs.sort_unstable();
    assert_eq!(ours, theirs);
    assert_eq!(a["network"], "analytical");
}

#[test]
fn a_model_that_fits_nowhere_names_the_dominant_memory_term() {
    let out = plan(&["--model", "llama3-70b", "--gpus", "8", "--global-batch", "8", "--seq", "4096"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no plan fits in 80.0 GB per GPU") && err.contains("largest term is"), "{err}");
}

#[test]
fn an_impossible_gpu_count_says_why() {
    let out = plan(&["--model", "llama3-8b", "--gpus", "7", "--global-batch", "64"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no valid plan uses exactly 7 GPUs"), "{err}");
}
