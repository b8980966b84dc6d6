//! The daemons as real processes on loopback: `choir coordinator`, `choir worker` and `choir up`.
//! Every child is killed when its test ends, even on panic (`Procs` kills on drop).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{choir, choir_bin};

/// Child processes, killed and reaped on drop.
#[derive(Default)]
pub(crate) struct Procs(pub(crate) Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Procs {
    /// Starts a coordinator on free ports; returns its index and (grpc, http) addresses.
    pub(crate) fn coordinator(&mut self, token: &str, args: &[&str]) -> (usize, String, String) {
        let mut child = Command::new(choir_bin())
            .args(["coordinator", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(args)
            .env("CHOIR_TOKEN", token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = |key: &str| words.iter().position(|w| *w == key).map(|i| words[i + 1].to_string());
        let (grpc, http) = (at("grpc"), at("http"));
        self.0.push(child);
        let idx = self.0.len() - 1;
        match (grpc, http) {
            (Some(g), Some(h)) => (idx, g, h),
            _ => {
                let out = self.wait(idx, Duration::from_secs(5));
                panic!("coordinator did not start: {line:?} {}", out.1);
            }
        }
    }

    pub(crate) fn worker(&mut self, grpc: &str, token: &str) -> usize {
        let name = format!("w-{}", self.0.len());
        self.named_worker(grpc, token, &name)
    }

    /// Starts a worker with a name (listed by the coordinator), so that a test can find its process.
    pub(crate) fn named_worker(&mut self, grpc: &str, token: &str, name: &str) -> usize {
        let child = Command::new(choir_bin())
            .args(["worker", "--coordinator", &format!("http://{grpc}"), "--connect-timeout", "20s"])
            .args(["--name", name])
            .env("CHOIR_TOKEN", token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.0.push(child);
        self.0.len() - 1
    }

    /// Waits for a child to exit; returns its exit code and stderr.
    pub(crate) fn wait(&mut self, idx: usize, timeout: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + timeout;
        let child = &mut self.0[idx];
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "process {idx} still running after {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        let _ = child.stderr.as_mut().unwrap().read_to_string(&mut err);
        (status.code(), err)
    }
}

pub(crate) fn default_job(dir: &Path, steps: u32) -> String {
    let out = choir(&["up", "--print-default-job"]);
    assert!(out.status.success());
    let mut text = String::from_utf8(out.stdout).unwrap().replace("steps = 10", &format!("steps = {steps}"));
    // Checkpoints every 2 steps, so that recoveries have one to go back to.
    text += "\n[checkpoint]\nevery = 2\n";
    let path = dir.join("job.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A raw HTTP/1.1 GET; returns (status code, body).
pub(crate) fn http_get(addr: &str, path: &str, token: Option<&str>) -> (u32, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

#[test]
fn four_workers_run_three_steps_in_schedule_order() {
    let dir = tempfile::tempdir().unwrap();
    let job = default_job(dir.path(), 3);
    let report = dir.path().join("report.json");
    let mut procs = Procs::default();
    let (c, grpc, _) = procs.coordinator(
        "tok",
        &["--job", &job, "--nnodes", "4", "--rdzv-timeout", "60s", "--report", report.to_str().unwrap()],
    );
    let workers: Vec<usize> = (0..4).map(|_| procs.worker(&grpc, "tok")).collect();
    let (code, err) = procs.wait(c, Duration::from_secs(120));
    assert_eq!(code, Some(0), "{err}");
    for w in workers {
        let (code, err) = procs.wait(w, Duration::from_secs(20));
        assert_eq!(code, Some(0), "worker: {err}");
    }
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["summary"]["state"], "succeeded");
    assert_eq!(r["summary"]["steps_done"], 3);
    let stages = r["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for step in steps {
        let ranks = step["ranks"].as_array().unwrap();
        assert_eq!(ranks.len(), 4, "every rank reports every step");
        for rank in ranks {
            let stage = &stages[rank[1].as_u64().unwrap() as usize].as_array().unwrap();
            let ops: Vec<(usize, f64, f64)> = rank[2]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (t[0].as_u64().unwrap() as usize, t[1].as_f64().unwrap(), t[2].as_f64().unwrap()))
                .collect();
            // Every op of the stage ran exactly once.
            let mut seen: Vec<usize> = ops.iter().map(|o| o.0).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..stage.len()).collect::<Vec<_>>());
            let mut end = vec![0.0; stage.len()];
            for &(op, _, e) in &ops {
                end[op] = e;
            }
            // Each stream ran its ops in program order, one at a time; each op after its dependencies.
            let mut by_start = ops.clone();
            by_start.sort_by(|a, b| a.1.total_cmp(&b.1));
            let mut last: std::collections::BTreeMap<&str, (usize, f64)> = Default::default();
            for &(op, start, e) in &by_start {
                let stream = stage[op]["stream"].as_str().unwrap();
                if let Some(&(prev, prev_end)) = last.get(stream) {
                    assert!(prev < op && prev_end <= start, "stream {stream}: op {op} ran after op {prev}");
                }
                last.insert(stream, (op, e));
                for d in stage[op]["deps"].as_array().unwrap() {
                    assert!(
                        end[d.as_u64().unwrap() as usize] <= start,
                        "op {op} started before dependency {d} ended"
                    );
                }
            }
        }
    }
}

#[test]
fn a_wrong_token_is_rejected_over_grpc_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let job = default_job(dir.path(), 1);
    let mut procs = Procs::default();
    let (c, grpc, http) =
        procs.coordinator("right", &["--job", &job, "--nnodes", "4", "--rdzv-timeout", "20s"]);
    let w = procs.worker(&grpc, "wrong");
    let (code, err) = procs.wait(w, Duration::from_secs(20));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("Unauthenticated") && err.contains("token"), "{err}");
    assert_eq!(http_get(&http, "/status", None).0, 401);
    assert_eq!(http_get(&http, "/metrics", Some("wrong")).0, 401);
    let (code, body) = http_get(&http, "/status", Some("right"));
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["job"]["state"], "rendezvous");
    assert_eq!(status["workers"].as_array().unwrap().len(), 0, "the stranger did not get in");
    let (code, metrics) = http_get(&http, "/metrics", Some("right"));
    assert_eq!(code, 200);
    assert!(metrics.contains("choir_workers_alive 0"), "{metrics}");
    assert_eq!(http_get(&http, "/healthz", None).0, 200);
    let _ = procs.0[c].kill();
}

#[test]
fn hostile_bytes_do_not_crash_the_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let job = default_job(dir.path(), 1);
    let mut procs = Procs::default();
    let (c, grpc, http) = procs.coordinator("t", &["--job", &job, "--nnodes", "4", "--rdzv-timeout", "20s"]);
    // Garbage, a truncated HTTP/2 preface, an HTTP/1 request and a huge bogus frame header on the gRPC port.
    let payloads: [&[u8]; 4] = [
        b"\x00\x01\x02garbage\xff\xfe",
        b"PRI * HTTP/2.0\r\n\r\nSM",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\x00\x00\x00\x00\x00\x01",
    ];
    for p in payloads {
        let mut s = TcpStream::connect(&grpc).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let _ = s.write_all(p);
        let _ = s.read(&mut [0u8; 256]);
    }
    assert!(procs.0[c].try_wait().unwrap().is_none(), "the coordinator died");
    let (code, _) = http_get(&http, "/status", Some("t"));
    assert_eq!(code, 200, "the coordinator stopped answering");
}

#[test]
fn a_late_worker_joining_within_the_rendezvous_window_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let job = default_job(dir.path(), 2);
    let mut procs = Procs::default();
    let (c, grpc, http) =
        procs.coordinator("tok", &["--job", &job, "--nnodes", "4", "--rdzv-timeout", "30s", "--json"]);
    for _ in 0..3 {
        procs.worker(&grpc, "tok");
    }
    std::thread::sleep(Duration::from_secs(2));
    let (_, status) = http_get(&http, "/status", Some("tok"));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["job"]["state"], "rendezvous", "{status}");
    procs.worker(&grpc, "tok");
    let (code, err) = procs.wait(c, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{err}");
    let mut out = String::new();
    procs.0[c].stdout.as_mut().unwrap().read_to_string(&mut out).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["state"], "succeeded");
    assert_eq!(summary["steps_done"], 2);
}

#[test]
fn a_rendezvous_timeout_is_a_clear_retryable_error() {
    let dir = tempfile::tempdir().unwrap();
    let job = default_job(dir.path(), 1);
    let mut procs = Procs::default();
    let (c, grpc, _) = procs.coordinator("tok", &["--job", &job, "--nnodes", "4", "--rdzv-timeout", "1s"]);
    let w = procs.worker(&grpc, "tok");
    let (code, err) = procs.wait(c, Duration::from_secs(30));
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("rendezvous timed out after 1 s: 1 of 4 workers joined"), "{err}");
    // The coordinator sends the worker that did come home.
    let (code, err) = procs.wait(w, Duration::from_secs(20));
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_malformed_job_file_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let job = default_job(dir.path(), 1);
    let text = std::fs::read_to_string(&job).unwrap().replace("pp = 2", "ppp = 2");
    std::fs::write(&job, text).unwrap();
    let out = choir(&["coordinator", "--listen", "127.0.0.1:0", "--http-listen", "off", "--job", &job]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `ppp`"), "{err}");
    let out = choir(&["up", "--job", &job]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ppp"));
}

#[test]
fn choir_up_runs_the_default_job_deterministically() {
    let run = || {
        let out = choir(&["up", "--steps", "3", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a["state"], "succeeded");
    assert_eq!(a["steps_done"], 3);
    assert_eq!(a["workers"], 4);
    let sim = a["sim_step_time_s"].as_f64().unwrap();
    let live = a["live_step_equiv_s"].as_f64().unwrap();
    assert!(sim > 0.0 && live >= sim * 0.5, "live {live} vs simulated {sim}");
    // The ranks' state is a function of (seed, step) only.
    assert_eq!(a["state_digest"], b["state_digest"]);
}

#[test]
fn ctrl_c_on_choir_up_leaves_no_process_behind() {
    let mut up = Command::new(choir_bin())
        .args(["up", "--steps", "100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _guard = Procs::default();
    let mut pids = vec![];
    let mut lines = BufReader::new(up.stderr.take().unwrap()).lines();
    while pids.len() < 5 {
        let line = lines.next().expect("choir up ended early").unwrap();
        if let Some(pid) = line.split("pid ").nth(1).and_then(|p| p.trim_end_matches(')').parse::<u32>().ok())
        {
            pids.push(pid);
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let st = Command::new("kill").args(["-INT", &up.id().to_string()]).status().unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = up.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "choir up ignored Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    std::thread::sleep(Duration::from_millis(500));
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().and_then(|s| s.split_whitespace().next()).unwrap_or("gone");
        assert!(stat.is_empty() || state == "Z", "process {pid} outlived choir up (state {state})");
    }
}

#[test]
fn every_choir_variable_in_the_deploy_files_is_a_real_flag() {
    let help: String = ["coordinator", "worker"]
        .iter()
        .map(|c| String::from_utf8(choir(&[c, "--help"]).stdout).unwrap())
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let root = crate::support::repo_root().join("deploy");
    for file in ["systemd/coordinator.env", "systemd/worker.env", "k8s/coordinator.yaml", "k8s/workers.yaml"]
    {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("CHOIR_") && word.len() > 6 {
                assert!(help.contains(&format!("env: {word}")), "{file}: {word} is not a flag's variable");
            }
        }
    }
}

/// Runs the job to completion on a fresh coordinator and 4 workers; returns the report.
pub(crate) fn run_job(procs: &mut Procs, job: &str, extra: &[&str], report: &Path) -> serde_json::Value {
    let mut args =
        vec!["--job", job, "--nnodes", "4", "--rdzv-timeout", "60s", "--report", report.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (c, grpc, _) = procs.coordinator("tok", &args);
    for _ in 0..4 {
        procs.worker(&grpc, "tok");
    }
    let (code, err) = procs.wait(c, Duration::from_secs(180));
    assert_eq!(code, Some(0), "{err}");
    serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap()
}

#[test]
fn a_killed_coordinator_restarted_on_its_state_dir_resumes_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let job = default_job(dir.path(), 8);
    let mut procs = Procs::default();
    let reference = run_job(&mut procs, &job, &[], &dir.path().join("reference.json"));

    // The same job with a journal; kill -9 the coordinator once a few steps are journalled.
    let state = dir.path().join("state");
    let state_arg = state.to_str().unwrap();
    let (c, grpc, http) = procs.coordinator(
        "tok",
        &["--job", &job, "--nnodes", "4", "--rdzv-timeout", "60s", "--state-dir", state_arg],
    );
    for _ in 0..4 {
        procs.worker(&grpc, "tok");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let (done_before_kill, committed) = loop {
        let (_, body) = http_get(&http, "/status", Some("tok"));
        let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let done = status["job"]["steps_done"].as_u64().unwrap_or(0);
        let committed = status["job"]["checkpoint_step"].as_u64().unwrap_or(0);
        if done >= 3 && committed >= 2 {
            break (done, committed);
        }
        assert!(Instant::now() < deadline, "the job did not reach step 3: {body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    procs.0[c].kill().unwrap();
    procs.0[c].wait().unwrap();
    assert!(done_before_kill < 8, "the job finished before the coordinator could be killed");

    // A new coordinator on the same state directory resumes; new workers join it.
    let resumed = run_job(&mut procs, &job, &["--state-dir", state_arg], &dir.path().join("resumed.json"));
    assert_eq!(resumed["summary"]["state"], "succeeded");
    assert_eq!(resumed["summary"]["steps_done"], 8);
    // It resumed from a checkpoint at least as new as the one committed before the kill: the steps it ran
    // are at most those since that checkpoint.
    let rerun = resumed["steps"].as_array().unwrap().len() as u64;
    assert!(
        rerun <= 8 - committed,
        "the resumed coordinator ran {rerun} steps; a checkpoint of step {committed} was committed"
    );
    assert_eq!(
        resumed["summary"]["state_digest"], reference["summary"]["state_digest"],
        "the resumed job must end in the same state as an uninterrupted one"
    );
}

/// Makes a CA and one certificate for 127.0.0.1/localhost signed by it, with the system's `openssl`.
fn make_certs(dir: &Path, name: &str) -> [String; 3] {
    let p = |f: &str| dir.join(format!("{name}-{f}")).display().to_string();
    let run = |args: &[&str]| {
        let out =
            Command::new("openssl").args(args).output().expect("openssl must be installed for the TLS test");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ext = dir.join(format!("{name}-ext.cnf"));
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n\
         basicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let (ca_key, ca, key, csr, cert) = (p("ca.key"), p("ca.pem"), p("key.pem"), p("csr.pem"), p("cert.pem"));
    run(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &ca_key]);
    run(&[
        "req",
        "-x509",
        "-new",
        "-key",
        &ca_key,
        "-subj",
        &format!("/CN={name} test CA"),
        "-days",
        "2",
        "-out",
        &ca,
    ]);
    run(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key]);
    // rustls wants the key as PKCS#8.
    let pk8 = p("key8.pem");
    run(&["pkcs8", "-topk8", "-nocrypt", "-in", &key, "-out", &pk8]);
    run(&["req", "-new", "-key", &pk8, "-subj", "/CN=localhost", "-out", &csr]);
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        &cert,
    ]);
    [cert, pk8, ca]
}

#[test]
fn mutual_tls_runs_a_job_and_refuses_peers_without_a_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let job = default_job(dir.path(), 2);
    let [cert, key, ca] = make_certs(dir.path(), "good");
    let tls = ["--tls-cert", cert.as_str(), "--tls-key", key.as_str(), "--tls-ca", ca.as_str()];
    let mut procs = Procs::default();
    let mut args = vec!["--job", job.as_str(), "--nnodes", "4", "--rdzv-timeout", "60s"];
    args.extend_from_slice(&tls);
    let (c, grpc, _) = procs.coordinator("tok", &args);

    // A worker with a certificate from another CA, and one without TLS, are both refused.
    let [bad_cert, bad_key, bad_ca] = make_certs(dir.path(), "bad");
    for extra in [
        vec!["--tls-cert", bad_cert.as_str(), "--tls-key", bad_key.as_str(), "--tls-ca", bad_ca.as_str()],
        vec![],
    ] {
        let scheme = if extra.is_empty() { "http" } else { "https" };
        let out = Command::new(choir_bin())
            .args(["worker", "--coordinator", &format!("{scheme}://{grpc}"), "--connect-timeout", "2s"])
            .args(&extra)
            .env("CHOIR_TOKEN", "tok")
            .output()
            .unwrap();
        assert!(!out.status.success(), "a worker without a good certificate was let in ({scheme})");
    }

    for _ in 0..4 {
        let child = Command::new(choir_bin())
            .args(["worker", "--coordinator", &format!("https://{grpc}"), "--connect-timeout", "20s"])
            .args(tls)
            .env("CHOIR_TOKEN", "tok")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        procs.0.push(child);
    }
    let (code, err) = procs.wait(c, Duration::from_secs(120));
    assert_eq!(code, Some(0), "the job over mutual TLS failed: {err}");
}
