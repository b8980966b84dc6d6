//! `choir chaos`: long campaigns under failures, through the real binary.

use crate::support::choir;

/// The Llama 3 405B setup with a given step time, so the tests need no step simulation.
const LLAMA3: &[&str] = &[
    "chaos",
    "--model",
    "llama3-405b",
    "--gpus",
    "16384",
    "--tp",
    "8",
    "--pp",
    "16",
    "--global-batch",
    "2048",
    "--step-time",
    "5.6s",
];

fn json(args: &[&str]) -> serde_json::Value {
    let out = choir(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

/// The Llama 3 flags followed by `extra`.
fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    LLAMA3.iter().copied().chain(extra.iter().copied()).collect()
}

#[test]
fn llama3_campaign_reproduces_the_published_interruptions_and_ettr() {
    let report = json(&with(&["--seeds", "30", "--sweep-points", "0", "--json"]));
    let unexpected = report["unexpected_interruptions"]["mean"].as_f64().unwrap();
    assert!((unexpected - 419.0).abs() < 41.9, "unexpected interruptions {unexpected}");
    let ettr = report["ettr"]["p50"].as_f64().unwrap();
    assert!(ettr > 0.90, "ETTR {ettr}");
    let goodput = report["goodput_tokens_per_s"]["mean"].as_f64().unwrap();
    let fault_free = report["fault_free_tokens_per_s"].as_f64().unwrap();
    assert!((goodput / fault_free - report["ettr"]["mean"].as_f64().unwrap()).abs() < 1e-9);
    // 126 layers on 16 stages: the CLI splits them unevenly instead of refusing.
    assert_eq!(report["checkpoint_interval_source"], "auto: Daly");
    assert!(report["lost_gpu_hours_by_cause"]["Faulty GPU"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_sweep_finds_dalys_interval_and_draws_it() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("goodput.svg");
    let svg_arg = svg.display().to_string();
    let report =
        json(&with(&["--no-planned", "--seeds", "60", "--sweep-points", "21", "--svg", &svg_arg, "--json"]));
    let daly = report["daly_interval_s"].as_f64().unwrap();
    let fitted = report["fitted_best_interval_s"].as_f64().unwrap();
    assert!((fitted / daly - 1.0).abs() < 0.10, "fitted {fitted} vs Daly {daly}");
    assert!(report["best_interval_s"].as_f64().is_some());
    assert_eq!(report["sweep"].as_array().unwrap().len(), 21);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("Daly") && text.contains("<polyline"), "{text}");
}

#[test]
fn a_fault_plan_file_is_replayed_and_a_sampled_one_can_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "[[faults]]\ntime_s = 3600\ntarget = { rank = 5 }\nkind = \"kill\"\npermanent = true\n\
         cause = \"Faulty GPU\"\n\n[[faults]]\ntime_s = 7200\ntarget = \"job\"\nkind = \"drain\"\n",
    )
    .unwrap();
    let plan_arg = plan.display().to_string();
    let report = json(&with(&["--days", "1", "--fault-plan", &plan_arg, "--sweep-points", "0", "--json"]));
    assert_eq!(report["seeds"], 1);
    assert_eq!(report["interruptions"]["mean"], 2.0);
    assert_eq!(report["interruptions_by_cause"]["Faulty GPU"], 1.0);

    let written = dir.path().join("sampled.json");
    let written_arg = written.display().to_string();
    let out = choir(&with(&[
        "--days",
        "2",
        "--seeds",
        "1",
        "--sweep-points",
        "0",
        "--write-fault-plan",
        &written_arg,
    ]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sampled: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&written).unwrap()).unwrap();
    assert_eq!(sampled["seed"], 0);
    assert!(!sampled["faults"].as_array().unwrap().is_empty());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ETTR") && stdout.contains("checkpoint interval: Young"), "{stdout}");
}

#[test]
fn bad_input_names_the_flag_and_exits_2() {
    let out = choir(&with(&["--checkpoint-interval", "soon"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--checkpoint-interval"));
    let out = choir(&with(&["--storage-gbps", "0"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--storage-gbps 0"));
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, "[[faults]]\ntime_s = 10\ntarget = { rank = 99999 }\nkind = \"kill\"\n").unwrap();
    let plan_arg = plan.display().to_string();
    let out = choir(&with(&["--fault-plan", &plan_arg]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rank 99999") && err.contains("16384 ranks"), "{err}");
}

#[test]
fn the_step_time_is_simulated_when_not_given() {
    let report = json(&[
        "chaos",
        "--model",
        "llama3-8b",
        "--gpus",
        "64",
        "--tp",
        "2",
        "--days",
        "2",
        "--seeds",
        "3",
        "--sweep-points",
        "0",
        "--json",
    ]);
    assert_eq!(report["step_time_source"], "simulated");
    let step = report["step_time_s"].as_f64().unwrap();
    assert!(step > 0.1 && step < 100.0, "{step}");
}
