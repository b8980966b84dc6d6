//! `choir up`: an embedded local cluster. Starts a coordinator and N workers as real child processes of this
//! binary on loopback (free ports, a fresh random token), runs the job with a progress bar, prints a summary
//! comparing the live step time with the simulated one, and shuts everything down. Children are killed when
//! `up` exits for any reason (a guard kills them on drop, and they exit by themselves when `up`'s end of their
//! stdin closes, even if `up` is killed with SIGKILL).

use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

use crate::cmd::coordinator::{INTERRUPTED, RETRYABLE, ReportFile, exit_with, prepare_job};
use crate::exit::bad_input;
use crate::output::{print_json, read_text, write_atomic};

/// Flags of `choir up`. With none it runs the embedded default job (GPT-2 124M, PP=2 × DP=2) on 4 workers.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Worker processes to start.
    #[arg(long, env = "CHOIR_WORKERS", default_value_t = 4)]
    workers: u32,
    /// GPUs (ranks) per worker.
    #[arg(long, default_value_t = 1)]
    gpus_per_worker: u32,
    /// The job file [default: the embedded job, see `choir up --print-default-job`].
    #[arg(long, env = "CHOIR_JOB")]
    job: Option<PathBuf>,
    /// Replace the job's step count.
    #[arg(long)]
    steps: Option<u32>,
    /// Restarts allowed after a lost worker: the job's restarts from a checkpoint, and `up` restarting dead
    /// worker processes (as torchrun's agent does).
    #[arg(long, default_value_t = 0)]
    max_restarts: u32,
    /// Extra (hot spare) workers: they join and wait, and replace a lost worker at once.
    #[arg(long, default_value_t = 0)]
    spares: u32,
    /// A fault plan (TOML, the format `choir chaos --fault-plan` reads) played live through the coordinator's
    /// API: each fault at `time_s` live seconds after the job starts running.
    #[arg(long, value_name = "FILE")]
    faults: Option<PathBuf>,
    /// How long the coordinator waits for the workers.
    #[arg(long, default_value = "60s")]
    rdzv_timeout: String,
    /// Show the daemons' logs on stderr (otherwise they go to files, shown on failure).
    #[arg(long)]
    verbose: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Print the embedded default job file and exit.
    #[arg(long)]
    print_default_job: bool,
}

/// The children; killed (and reaped) when dropped.
struct Cluster {
    children: Vec<(String, Child)>,
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.start_kill();
        }
        for (_, child) in &mut self.children {
            // Reap so that no zombie is left behind; each was just sent SIGKILL.
            for _ in 0..50 {
                if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Cluster {
    fn spawn(
        &mut self,
        name: &str,
        args: &[String],
        token: &str,
        verbose: bool,
    ) -> anyhow::Result<&mut Child> {
        let exe = std::env::current_exe().context("locating the choir binary")?;
        let log = if verbose {
            Stdio::inherit()
        } else {
            let path = self.dir.join(format!("{name}.log"));
            Stdio::from(std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?)
        };
        let child = Command::new(exe)
            .args(args)
            .env("CHOIR_TOKEN", token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the {name}"))?;
        self.children.push((name.to_string(), child));
        Ok(&mut self.children.last_mut().expect("just pushed").1)
    }

    /// The tails of the children's logs, for error messages.
    fn log_tails(&self) -> String {
        let mut s = String::new();
        for (name, _) in &self.children {
            if let Ok(text) = std::fs::read_to_string(self.dir.join(format!("{name}.log"))) {
                let lines: Vec<&str> = text.lines().collect();
                for l in &lines[lines.len().saturating_sub(5)..] {
                    s += &format!("\n  {l}");
                }
            }
        }
        s
    }
}

fn random_token() -> String {
    let a = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(a ^ u64::from(std::process::id()));
    format!("{a:016x}{:016x}", h.finish())
}

/// Runs `choir up`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    if args.print_default_job {
        print!("{}", coordinator::DEFAULT_JOB_TOML);
        return Ok(());
    }
    if args.workers == 0 || args.gpus_per_worker == 0 {
        return Err(bad_input("--workers and --gpus-per-worker must be at least 1"));
    }
    let (text, origin) = match &args.job {
        Some(p) => (read_text(p)?, p.display().to_string()),
        None => (coordinator::DEFAULT_JOB_TOML.to_string(), "the default job".to_string()),
    };
    // Check the job here first, so that a bad file is reported before any process starts.
    let job = prepare_job(&text, &origin, args.steps, None)?;
    let ranks = args.workers * args.gpus_per_worker;
    if ranks != job.world() {
        return Err(bad_input(format!(
            "{} workers × {} GPUs = {ranks} ranks, but the job's plan needs {}: set --workers/--gpus-per-worker to match",
            args.workers,
            args.gpus_per_worker,
            job.world()
        )));
    }
    let plan = match &args.faults {
        Some(p) => live_faults(&read_text(p)?, &p.display().to_string(), args.gpus_per_worker)?,
        None => vec![],
    };
    let dir = std::env::temp_dir().join(format!("choir-up-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let job_path = dir.join("job.toml");
    write_atomic(&job_path, text.as_bytes())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut cluster = Cluster { children: vec![], dir: dir.clone() };
    let result = runtime.block_on(up(&args, &job, &job_path, &plan, &mut cluster));
    let tails = cluster.log_tails();
    drop(cluster);
    let out = match result {
        Ok(Outcome::Done(report)) => {
            if args.json {
                print_json(&report.summary)?;
            } else {
                print!("{}", report.summary.render());
            }
            if report.summary.state == "succeeded" {
                Ok(())
            } else {
                Err(anyhow::anyhow!("the job {}", report.summary.state))
            }
        }
        Ok(Outcome::Interrupted) => {
            eprintln!("interrupted: the coordinator and workers were stopped");
            let _ = std::fs::remove_dir_all(&dir);
            std::process::exit(INTERRUPTED);
        }
        Err(e) if args.verbose || tails.is_empty() => Err(e),
        Err(e) => Err(e.context(format!("daemon logs in {} end with:{tails}", dir.display()))),
    };
    if out.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    match out {
        Err(e)
            if e.chain().any(|c| {
                c.to_string().contains("rendezvous timed out") || c.to_string().contains("worker lost")
            }) =>
        {
            exit_with(&e, RETRYABLE)
        }
        other => other,
    }
}

enum Outcome {
    Done(Box<ReportFile>),
    Interrupted,
}

/// One fault of a plan as `up` plays it: when (live seconds after the job starts running), where, what.
type LiveFault = (f64, coordinator::client::Target, rpc::types::Fault);

/// Turns a fault plan into live faults; kinds that cannot be played live are refused, naming the entry.
fn live_faults(text: &str, origin: &str, gpus_per_worker: u32) -> anyhow::Result<Vec<LiveFault>> {
    use coordinator::client::Target;
    use faults::{FaultKind, FaultTarget};
    use rpc::types::Fault;
    let plan = faults::FaultPlan::parse(text).map_err(|e| bad_input(format!("{origin}: {e}")))?;
    let mut out = Vec::with_capacity(plan.faults.len());
    for (i, f) in plan.faults.iter().enumerate() {
        let ranks = match f.target {
            FaultTarget::Rank(r) => vec![r],
            FaultTarget::Node(n) => (n * gpus_per_worker..(n + 1) * gpus_per_worker).collect(),
            FaultTarget::Job => vec![],
        };
        let needs_ranks = |what: &str| {
            bad_input(format!(
                "{origin}: faults[{i}]: a live {what} needs a rank or node target, not the whole job"
            ))
        };
        // A fault that lasts "until something intervenes" is played as one that outlasts any drill.
        const LONG_S: f64 = 3600.0;
        let (target, fault) = match &f.kind {
            FaultKind::Kill { .. } if !ranks.is_empty() => {
                (Target::Ranks(ranks), Fault::Kill { during_checkpoint: false })
            }
            FaultKind::Hang { duration_s } if !ranks.is_empty() => {
                (Target::Ranks(ranks), Fault::Hang { duration_s: duration_s.unwrap_or(LONG_S) })
            }
            FaultKind::Slow { factor } if !ranks.is_empty() => {
                (Target::Ranks(ranks), Fault::Slow { duration_s: LONG_S, factor: *factor })
            }
            FaultKind::Kill { .. } | FaultKind::Hang { .. } | FaultKind::Slow { .. } => {
                return Err(needs_ranks(f.kind.name()));
            }
            FaultKind::Partition { ranks } => {
                (Target::Ranks(ranks.clone()), Fault::Partition { duration_s: 10.0, peers: vec![] })
            }
            FaultKind::CorruptCheckpoint { step } => {
                let step = u32::try_from(*step).map_err(|_| {
                    bad_input(format!("{origin}: faults[{i}].step = {step}: expected a step of this job"))
                })?;
                (Target::Job, Fault::CorruptCheckpoint { step })
            }
            // Live, a drain takes the workers hosting the target out of the job (planned maintenance).
            FaultKind::Drain if !ranks.is_empty() => (Target::Ranks(ranks), Fault::Drain),
            FaultKind::Drain => return Err(needs_ranks("drain")),
        };
        out.push((f.time_s, target, fault));
    }
    Ok(out)
}

/// The command line of one worker child.
fn worker_args(url: &str, gpus: u32, name: &str) -> Vec<String> {
    [
        "worker",
        "--coordinator",
        url,
        "--gpus",
        &gpus.to_string(),
        "--name",
        name,
        "--connect-timeout",
        "30s",
        "--exit-on-stdin-eof",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Plays the live faults once the job runs.
async fn play_faults(url: String, security: rpc::net::Security, plan: Vec<LiveFault>) {
    let t0 = loop {
        if let Ok((ev, _)) = coordinator::client::status(&url, &security).await
            && ev.state == rpc::types::JobState::Running
        {
            break tokio::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for (at, target, fault) in plan {
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(at.max(0.0))).await;
        let name = fault.name();
        match coordinator::client::inject_fault(&url, &security, target, fault).await {
            Ok(detail) => eprintln!("t={at:.1}s injected: {detail}"),
            Err(e) => eprintln!("t={at:.1}s injecting {name} failed: {e}"),
        }
    }
}

async fn up(
    args: &Args,
    job: &coordinator::PreparedJob,
    job_path: &std::path::Path,
    plan: &[LiveFault],
    cluster: &mut Cluster,
) -> anyhow::Result<Outcome> {
    let token = random_token();
    let report_path = cluster.dir.join("report.json");
    let mut coord_args: Vec<String> = [
        "coordinator",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--exit-on-stdin-eof",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    coord_args.extend([
        "--nnodes".into(),
        args.workers.to_string(),
        "--job".into(),
        job_path.display().to_string(),
        "--report".into(),
        report_path.display().to_string(),
        "--rdzv-timeout".into(),
        args.rdzv_timeout.clone(),
        "--max-restarts".into(),
        args.max_restarts.to_string(),
    ]);
    if let Some(s) = args.steps {
        coord_args.extend(["--steps".into(), s.to_string()]);
    }
    let coord = cluster.spawn("coordinator", &coord_args, &token, args.verbose)?;
    let stdout = coord.stdout.take().context("coordinator stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .context("the coordinator did not report its address within 60 s")??
        .context("the coordinator exited before listening")?;
    let grpc = first
        .split_whitespace()
        .skip_while(|w| *w != "grpc")
        .nth(1)
        .with_context(|| format!("unexpected first line from the coordinator: {first:?}"))?
        .to_string();
    let url = format!("http://{grpc}");
    eprintln!("coordinator on {grpc} (pid {})", cluster.children[0].1.id().unwrap_or(0));
    for i in 0..args.workers + args.spares {
        let name =
            if i < args.workers { format!("worker-{i}") } else { format!("spare-{}", i - args.workers) };
        let wargs = worker_args(&url, args.gpus_per_worker, &name);
        let child = cluster.spawn(&name, &wargs, &token, args.verbose)?;
        let pid = child.id().unwrap_or(0);
        eprintln!("{name} started (pid {pid})");
    }
    let security = rpc::net::Security { token: Some(token.clone()), tls: None };
    let player =
        (!plan.is_empty()).then(|| tokio::spawn(play_faults(url.clone(), security.clone(), plan.to_vec())));
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(u64::from(job.file.steps)),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let watch = coordinator::client::watch(&url, &security, |ev| {
        bar.set_length(u64::from(ev.steps_total.max(1)));
        bar.set_position(u64::from(ev.steps_done));
        let msg = if ev.steps_done > 0 {
            format!("{} · last step {:.1} ms live", ev.state.name(), ev.last_step_wall_s * 1e3)
        } else {
            format!("{} · {}/{} workers", ev.state.name(), ev.workers, ev.nnodes)
        };
        bar.set_message(msg);
    });
    tokio::pin!(watch);
    // Like torchrun's agent, `up` restarts a worker process that dies (up to --max-restarts in all), so that a
    // lost worker comes back and rejoins even without spares.
    let mut respawns = 0;
    let mut check = tokio::time::interval(Duration::from_millis(100));
    let watched = loop {
        tokio::select! {
            r = &mut watch => break r,
            _ = tokio::signal::ctrl_c() => {
                bar.abandon_with_message("interrupted");
                return Ok(Outcome::Interrupted);
            }
            _ = check.tick() => {
                let dead: Vec<(usize, String)> = cluster
                    .children
                    .iter_mut()
                    .enumerate()
                    .skip(1)
                    .filter_map(|(i, (name, c))| matches!(c.try_wait(), Ok(Some(_))).then(|| (i, name.clone())))
                    .collect();
                for (i, name) in dead.into_iter().rev() {
                    let (_, mut gone) = cluster.children.remove(i);
                    let status = gone.wait().await;
                    if status.as_ref().is_ok_and(|s| s.success()) {
                        continue; // told to stop: the job is over
                    }
                    let status = status.map(|s| s.to_string()).unwrap_or_default();
                    if respawns >= args.max_restarts {
                        bar.suspend(|| eprintln!("{name} exited ({status}); no restarts left to replace it"));
                        continue;
                    }
                    respawns += 1;
                    let new_name = format!("{}-r{respawns}", name.split("-r").next().unwrap_or(&name));
                    let wargs = worker_args(&url, args.gpus_per_worker, &new_name);
                    let pid = cluster.spawn(&new_name, &wargs, &token, args.verbose)?.id().unwrap_or(0);
                    bar.suspend(|| eprintln!("{name} exited ({status}); restarted as {new_name} (pid {pid})"));
                }
            }
        }
    };
    bar.finish_and_clear();
    if let Some(p) = player {
        p.abort();
    }
    let last = watched.context("watching the job")?;
    // The coordinator exits after shutting the workers down; wait for everyone, then read its report.
    let coord_status = tokio::time::timeout(Duration::from_secs(30), cluster.children[0].1.wait())
        .await
        .context("the coordinator did not exit within 30 s of the job's end")??;
    for (name, child) in cluster.children.iter_mut().skip(1) {
        if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
            eprintln!("{name} did not exit within 10 s; killing it");
        }
    }
    if last.state == rpc::types::JobState::Failed {
        anyhow::bail!("the job failed: {}", last.message);
    }
    let text = std::fs::read_to_string(&report_path)
        .with_context(|| format!("the coordinator exited with {coord_status} and wrote no report"))?;
    let report = serde_json::from_str::<ReportFile>(&text).context("reading the coordinator's report")?;
    if !coord_status.success() && report.summary.state == "succeeded" {
        anyhow::bail!("the coordinator exited with {coord_status}");
    }
    if report.summary.state == "failed" {
        anyhow::bail!("the job failed: {}", report.summary.message);
    }
    Ok(Outcome::Done(Box::new(report)))
}
