//! `choir coordinator`: the coordinator daemon (rendezvous, job control, health, status and metrics).
//!
//! Also home of what the three daemon commands share: the security flags, the stop signal, the log line
//! format, the report file and the exit codes beyond the table in `exit.rs`:
//!
//! | code | meaning |
//! |---|---|
//! | 3 | retryable failure: the rendezvous timed out, a worker was lost with no restarts left, the coordinator was unreachable; running again (more workers, a restart) may succeed |
//! | 130 | interrupted (Ctrl-C, SIGTERM) |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::exit::bad_input;
use crate::inputs::{load_cluster_spec, load_model};
use crate::output::{print_json, read_text, write_atomic};

/// Exit code of a failure that a retry may fix (rendezvous timeout, lost worker, unreachable coordinator).
pub(crate) const RETRYABLE: i32 = 3;
/// Exit code after Ctrl-C or SIGTERM.
pub(crate) const INTERRUPTED: i32 = 130;

/// Flags of `choir coordinator`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// gRPC listen address (torchrun: --rdzv-endpoint). Loopback by default.
    #[arg(long, visible_alias = "rdzv-endpoint", env = "CHOIR_LISTEN", default_value = "127.0.0.1:29400")]
    listen: SocketAddr,
    /// HTTP listen address for /status and /metrics, or `off`.
    #[arg(long, env = "CHOIR_HTTP_LISTEN", default_value = "127.0.0.1:29401")]
    http_listen: String,
    /// The job file (TOML: model, cluster, plan, steps). Without one, wait for a SubmitJob call.
    #[arg(long, env = "CHOIR_JOB")]
    job: Option<PathBuf>,
    /// Replace the job file's step count.
    #[arg(long, env = "CHOIR_STEPS")]
    steps: Option<u32>,
    /// Workers to wait for (torchrun: --nnodes).
    #[arg(long, env = "CHOIR_NNODES", default_value_t = 1)]
    nnodes: u32,
    /// How long to wait for --nnodes workers.
    #[arg(long, env = "CHOIR_RDZV_TIMEOUT", default_value = "300s")]
    rdzv_timeout: String,
    /// Job name, replacing the job file's (torchrun: --rdzv-id); names the journal.
    #[arg(long, env = "CHOIR_RDZV_ID")]
    rdzv_id: Option<String>,
    /// Times a lost worker sends the job back to rendezvous, resuming from the last step (torchrun: --max-restarts).
    #[arg(long, env = "CHOIR_MAX_RESTARTS", default_value_t = 0)]
    max_restarts: u32,
    /// Heartbeat interval the workers are told to use.
    #[arg(long, env = "CHOIR_HEARTBEAT_INTERVAL", default_value = "500ms")]
    heartbeat_interval: String,
    /// Missed heartbeats before a worker is declared dead (a broken stream counts at once).
    #[arg(long, env = "CHOIR_HEARTBEAT_MISSES", default_value_t = 3)]
    heartbeat_misses: u32,
    /// A step taking longer than this fails (and is restarted if restarts are left).
    #[arg(long, env = "CHOIR_STEP_TIMEOUT", default_value = "300s")]
    step_timeout: String,
    /// No progress on any worker of a running step for this long is a hang (a worker still heartbeating but
    /// stuck, say in a collective); the workers busy with their own work are taken as the hung ones.
    /// `auto`: twice the step's planned live length, at least 1 s.
    #[arg(long, env = "CHOIR_HANG_TIMEOUT", default_value = "auto")]
    hang_timeout: String,
    /// Directory for the job journal (`<job>.journal`); a restarted coordinator resumes from it.
    #[arg(long, env = "CHOIR_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Where checkpoints go (one subdirectory per job). Workers write their shards there too: across machines
    /// it must be a shared file system at the same path on every host [default: <state-dir>/checkpoints, or a
    /// temporary directory removed after a successful job].
    #[arg(long, env = "CHOIR_CHECKPOINT_DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Write a JSON report (per-step, per-rank op timings and the schedule they are checked against).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Keep serving status after the job ends, until stopped.
    #[arg(long, env = "CHOIR_LINGER")]
    linger: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    security: SecurityArgs,
    /// Exit when stdin closes (used by `choir up` so that children never outlive it).
    #[arg(long, hide = true)]
    exit_on_stdin_eof: bool,
}

/// Exit code of a coordinator killed by a drill (128 + SIGKILL, what a shell reports for `kill -9`).
pub(crate) const KILLED: i32 = 137;

/// Token and TLS flags shared by the daemons.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SecurityArgs {
    /// Shared secret every gRPC and HTTP call must carry (`authorization: Bearer <token>`).
    #[arg(long, env = "CHOIR_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// This daemon's TLS certificate (PEM); with --tls-key and --tls-ca enables mutual TLS.
    #[arg(long, env = "CHOIR_TLS_CERT", requires_all = ["tls_key", "tls_ca"])]
    pub(crate) tls_cert: Option<PathBuf>,
    /// This daemon's TLS private key (PEM).
    #[arg(long, env = "CHOIR_TLS_KEY", requires_all = ["tls_cert", "tls_ca"])]
    pub(crate) tls_key: Option<PathBuf>,
    /// The CA that signs every daemon's certificate (PEM).
    #[arg(long, env = "CHOIR_TLS_CA", requires_all = ["tls_cert", "tls_key"])]
    pub(crate) tls_ca: Option<PathBuf>,
    /// Allow listening beyond loopback without a token.
    #[arg(long, env = "CHOIR_INSECURE")]
    pub(crate) insecure: bool,
}

impl SecurityArgs {
    /// Reads the TLS files and checks the token policy for a daemon listening on `listen`.
    pub(crate) fn load(&self, listen: Option<SocketAddr>) -> anyhow::Result<rpc::net::Security> {
        if let Some(t) = &self.token
            && (t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(bad_input("--token: expected printable ASCII without spaces"));
        }
        if let Some(addr) = listen
            && !addr.ip().is_loopback()
            && self.token.is_none()
            && !self.insecure
        {
            return Err(bad_input(format!(
                "listening on {addr} without --token: anyone who can reach it could control the job; set \
                 --token/CHOIR_TOKEN (or pass --insecure)"
            )));
        }
        let tls = match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (Some(cert), Some(key), Some(ca)) => Some(rpc::net::TlsPem {
                cert_pem: read_bytes(cert)?,
                key_pem: read_bytes(key)?,
                ca_pem: read_bytes(ca)?,
            }),
            _ => None,
        };
        Ok(rpc::net::Security { token: self.token.clone(), tls })
    }
}

fn read_bytes(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .with_context(|| format!("reading {}", path.display()))
        .map_err(|e| bad_input(format!("{e:#}")))
}

/// A log sink printing `[name +seconds] line` on stderr.
pub(crate) fn stderr_log(name: &str) -> Arc<dyn Fn(&str) + Send + Sync> {
    let t0 = Instant::now();
    let name = name.to_string();
    Arc::new(move |line: &str| eprintln!("[{name} +{:.3}s] {line}", t0.elapsed().as_secs_f64()))
}

/// Resolves on Ctrl-C, SIGTERM, or (when asked) end of stdin.
pub(crate) async fn stop_signal(stdin_eof: bool) {
    use tokio::io::AsyncReadExt;
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await;
    };
    let eof = async {
        if !stdin_eof {
            return std::future::pending::<()>().await;
        }
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 256];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
        () = eof => {}
    }
}

/// A duration flag in seconds.
pub(crate) fn duration_flag(flag: &str, text: &str) -> anyhow::Result<Duration> {
    let s = units::parse_duration(text).map_err(|e| bad_input(format!("--{flag}: {e}")))?;
    Ok(Duration::from_secs_f64(s))
}

/// Prints the error like `exit::report` and exits with the given code.
pub(crate) fn exit_with(err: &anyhow::Error, code: i32) -> ! {
    let _ = crate::exit::report(err);
    std::process::exit(code)
}

/// Reads, checks and prepares a job file (model and cluster resolved as `choir sim` does).
pub(crate) fn prepare_job(
    text: &str,
    origin: &str,
    steps: Option<u32>,
    name: Option<&str>,
) -> anyhow::Result<coordinator::PreparedJob> {
    let mut file = coordinator::parse(text).map_err(|e| bad_input(format!("{origin}: {e}")))?;
    if let Some(s) = steps {
        if s == 0 {
            return Err(bad_input("--steps 0: expected at least 1"));
        }
        file.steps = s;
    }
    if let Some(n) = name {
        file.name = n.to_string();
    }
    let spec = load_model(&file.model).map_err(|e| bad_input(format!("{origin}: model: {e:#}")))?;
    let cluster =
        load_cluster_spec(&file.cluster).map_err(|e| bad_input(format!("{origin}: cluster: {e:#}")))?;
    coordinator::prepare(&file, &spec, &cluster).map_err(|e| bad_input(format!("{origin}: {e}")))
}

/// The journal in a directory, written atomically.
struct FileStore(PathBuf);

impl coordinator::JournalStore for FileStore {
    fn load(&self) -> Result<Option<Vec<u8>>, String> {
        match std::fs::read(&self.0) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("reading {}: {e}", self.0.display())),
        }
    }
    fn save(&self, bytes: &[u8]) -> Result<(), String> {
        write_atomic(&self.0, bytes).map_err(|e| format!("{e:#}"))
    }
}

/// Runs `choir coordinator`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    match run_inner(&args) {
        Ok(0) => Ok(()),
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let code = match e.downcast_ref::<coordinator::CoordinatorError>() {
                Some(ce) if ce.retryable() => RETRYABLE,
                _ => return Err(e),
            };
            exit_with(&e, code)
        }
    }
}

fn run_inner(args: &Args) -> anyhow::Result<i32> {
    let security = args.security.load(Some(args.listen))?;
    let http_listen = match args.http_listen.as_str() {
        "off" | "" => None,
        a => Some(
            a.parse::<SocketAddr>()
                .map_err(|e| bad_input(format!("--http-listen {a}: {e}; expected HOST:PORT or off")))?,
        ),
    };
    if args.nnodes == 0 {
        return Err(bad_input("--nnodes 0: expected at least 1 worker"));
    }
    let job = match &args.job {
        Some(path) => Some(prepare_job(
            &read_text(path)?,
            &path.display().to_string(),
            args.steps,
            args.rdzv_id.as_deref(),
        )?),
        None => None,
    };
    let (checkpoint_dir, temporary) = match (&args.checkpoint_dir, &args.state_dir) {
        (Some(d), _) => (d.clone(), false),
        (None, Some(state)) => (state.join("checkpoints"), false),
        (None, None) => {
            (std::env::temp_dir().join(format!("choir-coordinator-{}", std::process::id())), true)
        }
    };
    std::fs::create_dir_all(&checkpoint_dir)
        .with_context(|| format!("creating the checkpoint directory {}", checkpoint_dir.display()))
        .map_err(|e| bad_input(format!("{e:#}")))?;
    let config = coordinator::Config {
        checkpoint_dir: checkpoint_dir.clone(),
        listen: args.listen,
        http_listen,
        nnodes: args.nnodes,
        rdzv_timeout: duration_flag("rdzv-timeout", &args.rdzv_timeout)?,
        heartbeat: coordinator::HeartbeatPolicy {
            interval: duration_flag("heartbeat-interval", &args.heartbeat_interval)?
                .max(Duration::from_millis(10)),
            misses: args.heartbeat_misses.max(1),
        },
        step_timeout: duration_flag("step-timeout", &args.step_timeout)?,
        hang_timeout: match args.hang_timeout.as_str() {
            "auto" => None,
            text => Some(duration_flag("hang-timeout", text)?),
        },
        max_restarts: args.max_restarts,
        record_ops: args.report.is_some(),
        linger: args.linger,
        security,
        log: stderr_log("coordinator"),
        // A kill drill ends the process at once, as SIGKILL would: no shutdown, no final report.
        self_kill: Some(Arc::new(|| std::process::exit(KILLED))),
    };
    let store: Arc<dyn coordinator::JournalStore> = match (&args.state_dir, &job) {
        (Some(dir), Some(job)) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            Arc::new(FileStore(dir.join(format!("{}.journal", job.id))))
        }
        _ => Arc::new(coordinator::MemoryStore::default()),
    };
    let (steps, name) = (args.steps, args.rdzv_id.clone());
    let resolver: coordinator::Resolver = Arc::new(move |text: &str| {
        prepare_job(text, "submitted job", steps, name.as_deref()).map_err(|e| format!("{e:#}"))
    });
    let program = job.as_ref().map(|j| j.program.clone());
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let outcome = runtime.block_on(async {
        let bound = coordinator::bind(config).await?;
        // The first stdout line says where we listen (`choir up` and scripts read it; ports may be 0).
        println!(
            "coordinator listening on grpc {} http {}",
            bound.grpc_addr,
            bound.http_addr.map_or("off".to_string(), |a| a.to_string())
        );
        bound.serve(job, Some(resolver), store, stop_signal(args.exit_on_stdin_eof)).await
    })?;
    if let (Some(path), Some(program)) = (&args.report, &program) {
        let report = ReportFile::new(&outcome, args.nnodes, program);
        write_atomic(path, serde_json::to_string_pretty(&report)?.as_bytes())
            .context("writing the report")?;
    }
    if temporary && outcome.state == rpc::types::JobState::Succeeded {
        let _ = std::fs::remove_dir_all(&checkpoint_dir);
    }
    let summary = Summary::of(&outcome, args.nnodes);
    if args.json {
        print_json(&summary)?;
    } else {
        print!("{}", summary.render());
    }
    Ok(match outcome.state {
        rpc::types::JobState::Succeeded => 0,
        rpc::types::JobState::Cancelled => INTERRUPTED,
        _ => crate::exit::FAILURE,
    })
}

/// The outcome in a few figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub(crate) job_id: String,
    pub(crate) state: String,
    pub(crate) message: String,
    pub(crate) steps_done: u32,
    pub(crate) steps_total: u32,
    pub(crate) workers: u32,
    pub(crate) restarts: u32,
    pub(crate) time_scale: f64,
    /// Median live wall seconds per step (the first step excluded when there are more: it includes warm-up).
    pub(crate) live_step_wall_s: f64,
    /// `live_step_wall_s / time_scale`: comparable with the simulated step.
    pub(crate) live_step_equiv_s: f64,
    pub(crate) sim_step_time_s: f64,
    /// Live (scaled back) over simulated.
    pub(crate) live_over_sim: f64,
    /// XOR of every rank's final state digest, hex: equal across runs with the same job and seed.
    pub(crate) state_digest: String,
    /// The job's checkpoint directory.
    pub(crate) checkpoint_dir: String,
    /// Checkpoints committed, and the newest one's step.
    pub(crate) checkpoints: u32,
    pub(crate) checkpoint_step: u32,
    /// Steps run and then lost to failures (redone from a checkpoint).
    pub(crate) lost_steps: u32,
    /// Every failure, with detection and recovery seconds (negative: unknown or not recovered).
    pub(crate) recoveries: Vec<rpc::types::Recovery>,
}

impl Summary {
    pub(crate) fn of(o: &coordinator::JobOutcome, workers: u32) -> Summary {
        let mut walls: Vec<f64> =
            o.step_wall_s.iter().copied().skip(usize::from(o.step_wall_s.len() > 1)).collect();
        walls.sort_by(f64::total_cmp);
        let median = if walls.is_empty() { 0.0 } else { walls[walls.len() / 2] };
        let equiv = median / o.time_scale;
        Summary {
            job_id: o.job_id.clone(),
            state: o.state.name().to_string(),
            message: o.message.clone(),
            steps_done: o.steps_done,
            steps_total: o.steps_total,
            workers,
            restarts: o.restarts,
            time_scale: o.time_scale,
            live_step_wall_s: median,
            live_step_equiv_s: equiv,
            sim_step_time_s: o.sim_step_time_s,
            live_over_sim: if o.sim_step_time_s > 0.0 { equiv / o.sim_step_time_s } else { 0.0 },
            state_digest: format!("{:016x}", o.digests.values().fold(0u64, |a, &d| a ^ d)),
            checkpoint_dir: o.checkpoint_dir.display().to_string(),
            checkpoints: o.checkpoints,
            checkpoint_step: o.checkpoint_step,
            lost_steps: o.lost_steps,
            recoveries: o.recoveries.clone(),
        }
    }

    pub(crate) fn render(&self) -> String {
        use units::format_duration;
        let mut s = format!(
            "job {} {}: {}/{} steps on {} workers, {} restarts\n",
            self.job_id, self.state, self.steps_done, self.steps_total, self.workers, self.restarts
        );
        if self.steps_done > 0 {
            s += &format!(
                "live step        {} wall (median), = {} simulated-equivalent at time scale {}\n",
                format_duration(self.live_step_wall_s),
                format_duration(self.live_step_equiv_s),
                self.time_scale
            );
            s += &format!(
                "simulated step   {}   live/sim {:.3} ({:+.1}%)\n",
                format_duration(self.sim_step_time_s),
                self.live_over_sim,
                (self.live_over_sim - 1.0) * 100.0
            );
            s += &format!("state digest     {}\n", self.state_digest);
        }
        if self.checkpoints > 0 {
            s += &format!(
                "checkpoints      {} committed, newest after step {} ({})\n",
                self.checkpoints, self.checkpoint_step, self.checkpoint_dir
            );
        }
        if !self.recoveries.is_empty() {
            let drains = self.recoveries.iter().filter(|r| r.fault == "drain").count();
            let failures = self.recoveries.len() - drains;
            let planned = if drains > 0 { format!(", {drains} planned drain(s)") } else { String::new() };
            s += &format!(
                "failures         {failures}{planned} ({} steps lost and redone)\n",
                self.lost_steps
            );
            s += &render_recoveries(&self.recoveries);
        }
        if self.state != "succeeded" && !self.message.is_empty() {
            s += &format!("{}\n", self.message);
        }
        s
    }
}

/// The failures table: what, where, seconds to detect and to the first step after the restore.
pub(crate) fn render_recoveries(recoveries: &[rpc::types::Recovery]) -> String {
    let secs = |x: f64| if x < 0.0 { "-".to_string() } else { units::format_duration(x) };
    let mut s = format!(
        "  {:<18} {:>10} {:>10} {:>9} {:>5}  {}\n",
        "fault", "detected", "recovered", "restored", "lost", "target: cause"
    );
    for r in recoveries {
        s += &format!(
            "  {:<18} {:>10} {:>10} {:>9} {:>5}  {}: {}\n",
            r.fault,
            secs(r.detect_s),
            secs(r.recover_s),
            // A straggler is carried, not restored from a checkpoint.
            if r.fault == "slow" { "-".to_string() } else { format!("step {}", r.restored_step) },
            r.lost_steps,
            if r.target.is_empty() { "?" } else { &r.target },
            r.cause
        );
        for why in &r.skipped {
            s += &format!("  {:<18} passed over checkpoint {why}\n", "");
        }
    }
    s += "  (detected: from the fault to its detection; recovered: from the fault to the first step finished after the restore; - when the fault's time is unknown)\n";
    s
}

/// The `--report` file.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReportFile {
    pub(crate) summary: Summary,
    pub(crate) step_wall_s: Vec<f64>,
    pub(crate) digests: std::collections::BTreeMap<u32, String>,
    /// The schedule: per stage, each op's stream and dependencies.
    pub(crate) stages: Vec<Vec<ReportOp>>,
    pub(crate) steps: Vec<ReportStep>,
}

/// One op of the schedule.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReportOp {
    pub(crate) stream: String,
    pub(crate) kind: String,
    pub(crate) deps: Vec<u32>,
}

/// One step as run.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReportStep {
    pub(crate) step: u32,
    pub(crate) wall_s: f64,
    /// Per rank: (rank, stage, ops as (op, start_s, end_s) in completion order).
    pub(crate) ranks: Vec<(u32, u32, Vec<OpRun>)>,
}

/// One op as run: (op index, start seconds, end seconds) from the worker's start of the step.
pub(crate) type OpRun = (u32, f64, f64);

impl ReportFile {
    fn new(o: &coordinator::JobOutcome, workers: u32, program: &schedule::StepProgram) -> ReportFile {
        let stages = program
            .stages
            .iter()
            .map(|s| {
                s.ops
                    .iter()
                    .map(|op| ReportOp {
                        stream: op.stream.name().to_string(),
                        kind: match op.kind {
                            schedule::OpKind::Compute { .. } => "compute",
                            schedule::OpKind::Collective { .. } => "collective",
                            schedule::OpKind::Send { .. } => "send",
                            schedule::OpKind::Recv { .. } => "recv",
                        }
                        .to_string(),
                        deps: op.deps.clone(),
                    })
                    .collect()
            })
            .collect();
        let layout = program.layout;
        ReportFile {
            summary: Summary::of(o, workers),
            step_wall_s: o.step_wall_s.clone(),
            digests: o.digests.iter().map(|(r, d)| (*r, format!("{d:016x}"))).collect(),
            stages,
            steps: o
                .records
                .iter()
                .map(|rec| ReportStep {
                    step: rec.step,
                    wall_s: rec.wall_s,
                    ranks: rec
                        .ranks
                        .iter()
                        .map(|r| {
                            (
                                r.rank,
                                layout.coord(r.rank).pp,
                                r.ops.iter().map(|t| (t.op, t.start_s, t.end_s)).collect(),
                            )
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}
