//! Live fault injection and recovery, with real processes: workers killed with SIGKILL, faults injected with
//! `choir inject` (kill, hang, slow, partition, a kill half-way through a checkpoint write, a corrupted
//! checkpoint), checkpoints on disk. Every run must end in the same state as a fault-free one, committed
//! checkpoints must only move forward (except when a corrupt one is passed over), and no run may lose more
//! than the steps since its last checkpoint.
#![allow(clippy::print_stderr)] // the tests report the measured detection and recovery times

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::daemons::{Procs, default_job, http_get, run_job};
use crate::support::choir;

const STEPS: u32 = 40;
const EVERY: u64 = 2;

/// The coordinator's `/status`, or `None` when it no longer answers (it exited).
fn status(http: &str) -> Option<Value> {
    std::net::TcpStream::connect(http).ok()?;
    let (_, body) = http_get(http, "/status", Some("tok"));
    serde_json::from_str(&body).ok()
}

/// Polls `/status` until `ready` holds, recording every committed checkpoint step seen.
fn wait_until(http: &str, what: &str, seen: &mut Vec<u64>, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let Some(s) = status(http) else {
            panic!("the coordinator stopped answering while waiting for {what} (checkpoints seen {seen:?})");
        };
        if let Some(c) = s["job"]["checkpoint_step"].as_u64()
            && seen.last() != Some(&c)
        {
            seen.push(c);
        }
        if ready(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {s:#}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn recoveries(s: &Value) -> Vec<Value> {
    s["job"]["recoveries"].as_array().cloned().unwrap_or_default()
}

/// Waits until `n` failures are known and all are recovered from (their first step after the restore done).
fn wait_recovered(http: &str, n: usize, seen: &mut Vec<u64>) -> Value {
    wait_until(http, &format!("{n} recovered failure(s)"), seen, |s| {
        let r = recoveries(s);
        r.len() >= n && r.iter().all(|x| x["recover_s"].as_f64().unwrap_or(-1.0) >= 0.0)
    })
}

fn inject(grpc: &str, args: &[&str]) {
    let url = format!("http://{grpc}");
    let mut all = vec!["inject", "--coordinator", &url, "--token", "tok"];
    all.extend_from_slice(args);
    let out = choir(&all);
    assert!(out.status.success(), "choir {all:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn reference_digest(dir: &Path, job: &str) -> Value {
    let mut procs = Procs::default();
    let report = run_job(&mut procs, job, &[], &dir.join("reference.json"));
    assert_eq!(report["summary"]["state"], "succeeded");
    report["summary"]["state_digest"].clone()
}

/// Checks the invariants every faulty run must keep, and prints its recoveries.
fn check_nothing_lost(report: &Value, reference: &Value, seen: &[u64], ckpt: &Path) {
    let summary = &report["summary"];
    assert_eq!(summary["state"], "succeeded", "{summary:#}");
    assert_eq!(summary["steps_done"], STEPS);
    assert_eq!(&summary["state_digest"], reference, "the run with faults must end in the fault-free state");
    let recs = summary["recoveries"].as_array().unwrap();
    for r in recs {
        eprintln!(
            "{:<20} detected {:>8.3} s  recovered {:>8.3} s  restored step {:>2}  lost {}  {}",
            r["fault"].as_str().unwrap(),
            r["detect_s"].as_f64().unwrap(),
            r["recover_s"].as_f64().unwrap(),
            r["restored_step"],
            r["lost_steps"],
            r["cause"].as_str().unwrap()
        );
        let restored = r["restored_step"].as_u64().unwrap();
        // A drain commits its own checkpoint at the step boundary where it takes the worker out.
        if r["fault"] != "drain" {
            assert_eq!(restored % EVERY, 0, "restored from a step that is no checkpoint: {r}");
        }
        if r["fault"] != "corrupt-checkpoint" && r["skipped"].as_array().unwrap().is_empty() {
            assert!(
                r["lost_steps"].as_u64().unwrap() <= EVERY,
                "lost more than the steps since the checkpoint: {r}"
            );
        }
        assert!(r["recover_s"].as_f64().unwrap() >= 0.0, "not recovered: {r}");
    }
    // Committed checkpoints only move forward, except when a corrupt one is passed over.
    let fallbacks = recs.iter().filter(|r| r["fault"] == "corrupt-checkpoint").count();
    let backwards = seen.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(backwards <= fallbacks, "committed checkpoints went backwards {backwards} times: {seen:?}");
    // On disk: committed checkpoints only (the job keeps 3), no torn file left behind.
    let job_dir = std::fs::read_dir(ckpt).unwrap().next().unwrap().unwrap().path();
    let mut steps = vec![];
    for e in std::fs::read_dir(&job_dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            assert!(p.join("manifest.json").is_file(), "{} has no manifest", p.display());
            for f in std::fs::read_dir(&p).unwrap() {
                let name = f.unwrap().file_name().to_string_lossy().into_owned();
                assert!(!name.ends_with(".tmp"), "torn file {name} left in {}", p.display());
            }
            steps.push(p);
        }
    }
    assert!(!steps.is_empty() && steps.len() <= 3, "{steps:?}");
    assert_eq!(std::fs::read_to_string(job_dir.join("latest")).unwrap().trim(), format!("step-{STEPS:08}"));
}

/// Starts a coordinator for the faulty run, with a checkpoint directory and a report under `dir`; returns its
/// index, its gRPC and HTTP addresses, the checkpoint directory and the report path.
fn start_faulty(
    procs: &mut Procs,
    dir: &Path,
    job: &str,
    max_restarts: u32,
) -> (usize, String, String, std::path::PathBuf, std::path::PathBuf) {
    let (ckpt, report) = (dir.join("ckpt"), dir.join("faulty.json"));
    let restarts = max_restarts.to_string();
    let args = [
        "--job",
        job,
        "--nnodes",
        "4",
        "--max-restarts",
        &restarts,
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ];
    let (c, grpc, http) = procs.coordinator("tok", &args);
    (c, grpc, http, ckpt, report)
}

#[test]
fn a_worker_killed_with_sigkill_is_replaced_by_a_spare_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let job = default_job(dir.path(), STEPS);
    let reference = reference_digest(dir.path(), &job);

    let mut procs = Procs::default();
    let (c, grpc, http, ckpt, report) = start_faulty(&mut procs, dir.path(), &job, 2);
    let workers: Vec<usize> =
        (0..5).map(|i| procs.named_worker(&grpc, "tok", &format!("proc-{i}"))).collect();
    let mut seen = vec![];
    let s = wait_until(&http, "a checkpoint and a step past it", &mut seen, |s| {
        s["job"]["checkpoint_step"].as_u64() >= Some(2) && s["job"]["steps_done"].as_u64() >= Some(3)
    });
    // The process hosting rank 1.
    let name = s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["ranks"].as_array().unwrap().contains(&Value::from(1)))
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let idx = workers[name.strip_prefix("proc-").unwrap().parse::<usize>().unwrap()];
    let killed_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    procs.0[idx].kill().unwrap(); // SIGKILL
    procs.0[idx].wait().unwrap();
    let s = wait_recovered(&http, 1, &mut seen);
    let r = &recoveries(&s)[0];
    let detect = r["detected_unix_s"].as_f64().unwrap() - killed_at;
    eprintln!("SIGKILL of {name}: detected after {detect:.3} s; {r}");
    assert_eq!(r["fault"], "lost", "nothing was injected through the coordinator: {r}");
    assert!(
        detect < 1.0,
        "a killed worker must be noticed at once (the heartbeat stream breaks): {detect:.3} s"
    );
    let (code, err) = procs.wait(c, Duration::from_secs(180));
    assert_eq!(code, Some(0), "{err}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    check_nothing_lost(&report, &reference, &seen, &ckpt);
}

#[test]
fn a_drained_worker_leaves_after_a_checkpoint_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let job = default_job(dir.path(), STEPS);
    let reference = reference_digest(dir.path(), &job);

    let mut procs = Procs::default();
    let (c, grpc, http, ckpt, report) = start_faulty(&mut procs, dir.path(), &job, 0);
    let workers: Vec<usize> =
        (0..5).map(|i| procs.named_worker(&grpc, "tok", &format!("proc-{i}"))).collect();
    let mut seen = vec![];
    // Between two checkpoints (every 2 steps), so that the drain has steps of its own to save.
    let s = wait_until(&http, "an odd step", &mut seen, |s| {
        s["job"]["steps_done"].as_u64().is_some_and(|n| n >= 3 && n % 2 == 1)
    });
    let host = s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["ranks"].as_array().unwrap().contains(&Value::from(2)))
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let asked_at = s["job"]["steps_done"].as_u64().unwrap();
    inject(&grpc, &["--drain", "2"]);
    let s = wait_recovered(&http, 1, &mut seen);
    let r = &recoveries(&s)[0];
    eprintln!(
        "drain of {host}: left after {:.3} s, back to work after {:.3} s; {r}",
        r["detect_s"], r["recover_s"]
    );
    assert_eq!(r["fault"], "drain", "{r}");
    assert_eq!(r["lost_steps"], 0, "a drain loses nothing: {r}");
    // It left at a step boundary after the request, with every step done so far in its checkpoint.
    assert!(r["restored_step"].as_u64().unwrap() >= asked_at, "asked at step {asked_at}: {r}");
    // The drained process exits cleanly, and the spare took its place.
    let idx = workers[host.strip_prefix("proc-").unwrap().parse::<usize>().unwrap()];
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = procs.0[idx].try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the drained worker {host} did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "the drained worker exited with {status}");
    let (code, err) = procs.wait(c, Duration::from_secs(180));
    assert_eq!(code, Some(0), "{err}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["summary"]["restarts"], 0, "a drain spends no restart (max-restarts is 0 here)");
    check_nothing_lost(&report, &reference, &seen, &ckpt);
}

#[test]
fn every_injected_fault_kind_is_survived_with_the_fault_free_final_state() {
    let dir = tempfile::tempdir().unwrap();
    let job = default_job(dir.path(), STEPS);
    let reference = reference_digest(dir.path(), &job);

    let mut procs = Procs::default();
    let (c, grpc, http, ckpt, report) = start_faulty(&mut procs, dir.path(), &job, 12);
    // Two spares: a killed worker is gone for good; a hung or partitioned one comes back as a spare.
    for i in 0..6 {
        procs.named_worker(&grpc, "tok", &format!("proc-{i}"));
    }
    let mut seen = vec![];
    let at_step = |n: u64| move |s: &Value| s["job"]["steps_done"].as_u64() >= Some(n);
    wait_until(&http, "step 1", &mut seen, at_step(1));

    inject(&grpc, &["--kill", "1"]);
    wait_recovered(&http, 1, &mut seen);

    // A hang keeps heartbeating (found by the progress watchdog); a freeze stops heartbeats too.
    inject(&grpc, &["--hang", "2", "--for", "3s"]);
    wait_recovered(&http, 2, &mut seen);

    inject(&grpc, &["--freeze", "2", "--for", "3s"]);
    wait_recovered(&http, 3, &mut seen);

    inject(&grpc, &["--partition", "3", "--for", "3s"]);
    wait_recovered(&http, 4, &mut seen);

    // Long enough that at least one whole step runs slowed, however loaded the machine is.
    inject(&grpc, &["--slow", "0", "--factor", "5", "--for", "5s"]);
    wait_recovered(&http, 5, &mut seen);

    // A corrupt newest checkpoint, then a worker dying half-way through writing the next one: the torn
    // checkpoint is ignored, the corrupt one is caught by its checksum, the one before restores.
    let s = wait_until(&http, "a fresh checkpoint", &mut seen, |s| {
        s["job"]["checkpoint_step"].as_u64() >= Some(4)
            && s["job"]["steps_done"].as_u64() < Some(u64::from(STEPS) - 2)
    });
    let corrupted = s["job"]["checkpoint_step"].as_u64().unwrap();
    inject(&grpc, &["--corrupt-checkpoint", "latest"]);
    inject(&grpc, &["--kill", "0", "--during-checkpoint"]);
    let s = wait_recovered(&http, 7, &mut seen);
    let recs = recoveries(&s);
    let corrupt =
        recs.iter().find(|r| r["fault"] == "corrupt-checkpoint").expect("the corrupt checkpoint was found");
    assert!(corrupt["cause"].as_str().unwrap().contains("SHA-256"), "{corrupt}");
    assert!(corrupt["restored_step"].as_u64().unwrap() < corrupted, "{corrupt}");

    let (code, err) = procs.wait(c, Duration::from_secs(240));
    assert_eq!(code, Some(0), "{err}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let recs = report["summary"]["recoveries"].as_array().unwrap();
    let kinds: Vec<&str> = recs.iter().map(|r| r["fault"].as_str().unwrap()).collect();
    for kind in ["kill", "hang", "freeze", "partition", "slow", "corrupt-checkpoint"] {
        assert!(kinds.contains(&kind), "no {kind} among {kinds:?}");
    }
    let kill = &recs[0];
    assert!(kill["detect_s"].as_f64().unwrap() < 1.0, "{kill}");
    let hang = recs.iter().find(|r| r["fault"] == "hang").unwrap();
    assert!(
        hang["detect_s"].as_f64().unwrap() < 3.0,
        "a hang is found by the progress watchdog (1 s): {hang}"
    );
    assert!(hang["cause"].as_str().unwrap().contains("no progress"), "{hang}");
    let freeze = recs.iter().find(|r| r["fault"] == "freeze").unwrap();
    assert!(
        freeze["detect_s"].as_f64().unwrap() < 3.0,
        "a freeze is found by heartbeat silence (1.5 s): {freeze}"
    );
    check_nothing_lost(&report, &reference, &seen, &ckpt);
}

#[test]
fn inject_refuses_bad_input_with_a_clear_error() {
    let out = choir(&["inject", "--coordinator", "127.0.0.1:1", "--slow", "0", "--factor", "0.5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--factor 0.5"));
    let out = choir(&["inject", "--coordinator", "127.0.0.1:1", "--corrupt-checkpoint", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--corrupt-checkpoint soon"));
    let out = choir(&["inject", "--coordinator", "127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2), "no fault named");
}

#[test]
fn choir_up_restarts_a_killed_worker_process_and_ends_in_the_fault_free_state() {
    let clean = choir(&["up", "--steps", "8", "--json"]);
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stderr));
    let clean: Value = serde_json::from_slice(&clean.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("kill.toml");
    std::fs::write(&plan, "[[faults]]\ntime_s = 1.0\ntarget = { rank = 1 }\nkind = \"kill\"\n").unwrap();
    let out =
        choir(&["up", "--steps", "8", "--max-restarts", "2", "--faults", plan.to_str().unwrap(), "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("exited (exit status: 3); restarted as worker-"), "{err}");
    let faulty: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(faulty["state_digest"], clean["state_digest"]);
    let recs = faulty["recoveries"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["fault"], "kill");
}

#[test]
fn a_coordinator_killed_between_shards_and_manifest_resumes_from_the_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let job = default_job(dir.path(), STEPS);
    let reference = reference_digest(dir.path(), &job);

    let mut procs = Procs::default();
    let state = dir.path().join("state");
    let state_arg = state.to_str().unwrap().to_string();
    let (c, grpc, http) = procs.coordinator(
        "tok",
        &["--job", &job, "--nnodes", "4", "--max-restarts", "2", "--state-dir", &state_arg],
    );
    for i in 0..4 {
        procs.named_worker(&grpc, "tok", &format!("proc-{i}"));
    }
    let mut seen = vec![];
    let s = wait_until(&http, "a committed checkpoint", &mut seen, |s| {
        s["job"]["checkpoint_step"].as_u64() >= Some(2)
    });
    let committed = s["job"]["checkpoint_step"].as_u64().unwrap();
    assert!(committed < u64::from(STEPS) - 2, "the job ran too far before the drill: {s}");
    inject(&grpc, &["--kill-coordinator", "--during-checkpoint"]);
    let (code, err) = procs.wait(c, Duration::from_secs(120));
    assert_eq!(code, Some(137), "{err}");
    assert!(err.contains("no manifest"), "{err}");
    // On disk: a step directory with shards and no manifest, newer than the last commit.
    let job_dir = std::fs::read_dir(state.join("checkpoints")).unwrap().next().unwrap().unwrap().path();
    let torn: Vec<_> = std::fs::read_dir(&job_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.join("manifest.json").exists())
        .collect();
    assert_eq!(torn.len(), 1, "expected one uncommitted step directory: {torn:?}");
    assert!(std::fs::read_dir(&torn[0]).unwrap().count() > 0, "the shards were written");

    // A new coordinator on the same state directory, with new workers (the old ones dialled the old port).
    for w in procs.0.iter_mut().skip(1) {
        let _ = w.kill();
        let _ = w.wait();
    }
    let resumed = run_job(&mut procs, &job, &["--state-dir", &state_arg], &dir.path().join("resumed.json"));
    let summary = &resumed["summary"];
    assert_eq!(summary["state"], "succeeded");
    assert_eq!(&summary["state_digest"], &reference, "the resumed job must end in the fault-free state");
    // It restored the last committed checkpoint and ran only the steps after it; the torn directory is gone.
    let torn_step: u64 =
        torn[0].file_name().unwrap().to_str().unwrap().trim_start_matches("step-").parse().unwrap();
    let restored = torn_step - EVERY;
    assert!(restored >= committed, "a checkpoint committed before the drill was lost");
    let rerun = resumed["steps"].as_array().unwrap().len() as u64;
    assert_eq!(rerun, u64::from(STEPS) - restored, "expected a resume from step {restored}");
    assert!(!torn[0].exists(), "the uncommitted step directory must be removed");
}
