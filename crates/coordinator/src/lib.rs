//! The choir coordinator daemon.
//!
//! The coordinator owns one job at a time (from `--job FILE` or a `SubmitJob` call). It waits for `nnodes`
//! workers to register (rendezvous, bounded by a timeout), assigns global ranks in join order (each worker
//! hosts `--gpus` consecutive ranks), sends every worker the task lists of its ranks' stages (the simulator's
//! own task graph from `schedule::build`, with `sim::op_durations`), then drives the steps: one `RunStep` to
//! every worker per step, checking that each rank ran exactly its schedule, journalling the ranks' state
//! digests after every step so that a restarted coordinator resumes where it stopped.
//!
//! Liveness: workers heartbeat on a stream. A broken stream (a killed process) marks its worker dead at
//! once; silence for `misses × interval` (a hung or partitioned process) does too, and so does a failed call.
//! A dead worker fails the running step; with restarts left the coordinator goes back to rendezvous (taking a
//! spare worker, or waiting for one to rejoin), rolls everyone back to the newest checkpoint that verifies
//! and runs on. Every `checkpoint.every` steps the workers write their shards and the coordinator commits
//! the checkpoint (see the `checkpoint` crate). Failures, with detection and recovery times, are in the job's
//! event stream and outcome.
//!
//! Status is served over gRPC (`GetStatus`, `WatchJob`, `ListWorkers`) and HTTP (`/status`, `/metrics`).

mod driver;
mod http;
pub mod job;
pub mod journal;
mod service;
mod state;

pub use driver::check_rank_order;
pub use job::{DEFAULT_JOB_TOML, JobFile, PreparedJob, parse, prepare};
pub use journal::{JournalState, JournalStore, MemoryStore};
pub use state::HeartbeatPolicy;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc::types::{JobEvent, JobState, RankStep};
use tokio::sync::{mpsc, watch};

/// A log sink: the daemon reports what it does through this (the CLI prints it).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// Turns a job file's text into a prepared job (the CLI resolves model and cluster names, reading files).
pub type Resolver = Arc<dyn Fn(&str) -> Result<PreparedJob, String> + Send + Sync>;

/// How the coordinator runs.
#[derive(Clone)]
pub struct Config {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// HTTP listen address for `/status` and `/metrics` (`None`: no HTTP).
    pub http_listen: Option<SocketAddr>,
    /// Workers to wait for.
    pub nnodes: u32,
    /// Rendezvous timeout.
    pub rdzv_timeout: Duration,
    /// Heartbeat interval and allowed misses.
    pub heartbeat: HeartbeatPolicy,
    /// A step that takes longer than this fails (and may be restarted).
    pub step_timeout: Duration,
    /// No progress on any worker of a running step for this long is a hang; the workers busy with their own
    /// work are the hung ones (`None`: twice the step's planned live length, at least 1 s).
    pub hang_timeout: Option<Duration>,
    /// Restarts (back to rendezvous, resume from the journal) before the job fails.
    pub max_restarts: u32,
    /// Keep per-op timings of every step in the outcome.
    pub record_ops: bool,
    /// Where checkpoints go: one subdirectory per job id. Workers write their shards there too, so on
    /// several machines it must be a shared file system mounted at the same path everywhere.
    pub checkpoint_dir: std::path::PathBuf,
    /// Keep serving status after the job ends, until stopped.
    pub linger: bool,
    /// Token and TLS.
    pub security: rpc::net::Security,
    /// Where progress lines go.
    pub log: Log,
    /// How the coordinator dies when a fault drill kills it (`choir inject --kill-coordinator`); the CLI exits
    /// the process at once. `None`: such drills are refused.
    pub self_kill: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// One finished step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// Step.
    pub step: u32,
    /// Live wall seconds, from dispatch to the last worker's answer.
    pub wall_s: f64,
    /// Every rank's ops in completion order, and its digest.
    pub ranks: Vec<RankStep>,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    /// Job identifier.
    pub job_id: String,
    /// Final state.
    pub state: JobState,
    /// What happened.
    pub message: String,
    /// Steps finished.
    pub steps_done: u32,
    /// Steps in the job.
    pub steps_total: u32,
    /// Live wall seconds of each finished step (including steps before a coordinator restart).
    pub step_wall_s: Vec<f64>,
    /// Live seconds per simulated second.
    pub time_scale: f64,
    /// Simulated step time.
    pub sim_step_time_s: f64,
    /// Restarts used.
    pub restarts: u32,
    /// Every rank's final state digest.
    pub digests: BTreeMap<u32, u64>,
    /// Per-step op timings (when `record_ops`; only steps run by this coordinator process).
    pub records: Vec<StepRecord>,
    /// The job's checkpoint directory.
    pub checkpoint_dir: std::path::PathBuf,
    /// The newest committed checkpoint (steps done; 0: none).
    pub checkpoint_step: u32,
    /// Checkpoints committed.
    pub checkpoints: u32,
    /// Steps run and then lost to failures.
    pub lost_steps: u32,
    /// Failures recovered from, with detection and recovery times.
    pub recoveries: Vec<rpc::types::Recovery>,
}

/// What can go wrong in the coordinator.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoordinatorError {
    /// The job file or its plan cannot be used.
    #[error("job: {0}")]
    Job(String),
    /// Not enough workers joined in time.
    #[error(
        "rendezvous timed out after {timeout_s:.0} s: {joined} of {expected} workers joined (start more workers, or raise --rdzv-timeout)"
    )]
    RendezvousTimeout {
        /// Workers that joined.
        joined: u32,
        /// Workers expected.
        expected: u32,
        /// Seconds waited.
        timeout_s: f64,
    },
    /// A worker was lost and no restarts were left.
    #[error("worker lost and no restarts left ({restarts} used): {why}")]
    WorkerLost {
        /// What happened.
        why: String,
        /// Restarts used.
        restarts: u32,
    },
    /// A worker refused a call or answered nonsense.
    #[error("worker {worker}: {message}")]
    Worker {
        /// Worker id.
        worker: String,
        /// The status message.
        message: String,
    },
    /// A worker's execution did not match the schedule.
    #[error("schedule mismatch: {0}")]
    Schedule(String),
    /// The journal cannot be read or written.
    #[error("journal: {0}")]
    Journal(String),
    /// The registry is full.
    #[error("registry full: {0} live workers")]
    Full(usize),
    /// A socket could not be bound or served.
    #[error("serving on {addr}: {reason}")]
    Serve {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A transport problem.
    #[error(transparent)]
    Net(#[from] rpc::net::NetError),
    /// A bug.
    #[error("internal: {0}")]
    Internal(String),
}

impl CoordinatorError {
    /// Whether running the job again may succeed (workers were missing or lost), as opposed to a job or
    /// configuration that will fail the same way.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            CoordinatorError::RendezvousTimeout { .. }
                | CoordinatorError::WorkerLost { .. }
                | CoordinatorError::Net(_)
        )
    }
}

/// A coordinator with its sockets bound, ready to [`serve`](Bound::serve).
pub struct Bound {
    /// The gRPC address actually bound (the port is known even when asked for port 0).
    pub grpc_addr: SocketAddr,
    /// The HTTP address actually bound.
    pub http_addr: Option<SocketAddr>,
    config: Config,
    grpc: tokio::net::TcpListener,
    http: Option<tokio::net::TcpListener>,
}

/// Binds the coordinator's sockets.
pub async fn bind(config: Config) -> Result<Bound, CoordinatorError> {
    let serve_err = |addr: SocketAddr| {
        move |e: std::io::Error| CoordinatorError::Serve { addr: addr.to_string(), reason: e.to_string() }
    };
    let grpc = tokio::net::TcpListener::bind(config.listen).await.map_err(serve_err(config.listen))?;
    let grpc_addr = grpc.local_addr().map_err(serve_err(config.listen))?;
    let (http, http_addr) = match config.http_listen {
        Some(a) => {
            let l = tokio::net::TcpListener::bind(a).await.map_err(serve_err(a))?;
            let addr = l.local_addr().map_err(serve_err(a))?;
            (Some(l), Some(addr))
        }
        None => (None, None),
    };
    Ok(Bound { grpc_addr, http_addr, config, grpc, http })
}

impl Bound {
    /// Serves until the job ends (or, with `linger`, until `stop`). `job` is the job to run; without one the
    /// coordinator waits for a `SubmitJob`, resolved by `resolver`.
    pub async fn serve(
        self,
        job: Option<PreparedJob>,
        resolver: Option<Resolver>,
        store: Arc<dyn JournalStore>,
        stop: impl Future<Output = ()> + Send,
    ) -> Result<JobOutcome, CoordinatorError> {
        let Bound { config, grpc, http, .. } = self;
        let (submit_tx, mut submit_rx) = mpsc::channel(1);
        let shared = Arc::new(state::Shared {
            checkpoint_root: config.checkpoint_dir.clone(),
            injected: Default::default(),
            drains: Default::default(),
            registry: Default::default(),
            changes: watch::channel(0).0,
            job: watch::channel(state::no_job(config.nnodes)).0,
            submissions: submit_tx,
            cancel: watch::channel(false).0,
            metrics: Default::default(),
            heartbeat: config.heartbeat,
            max_workers: (config.nnodes as usize * 2).max(64),
            log: config.log.clone(),
            self_kill: config.self_kill.clone(),
            kill_before_commit: Default::default(),
            started: Instant::now(),
        });
        let auth = rpc::net::AuthCheck::new(config.security.token.as_deref());
        let (_reporter, health) = rpc::net::health_service().await;
        let reflection = rpc::net::reflection_service(auth.clone())?;
        let svc = rpc::pb::coordinator_server::CoordinatorServer::new(service::CoordinatorService {
            shared: shared.clone(),
            security: config.security.clone(),
        })
        .max_decoding_message_size(rpc::net::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(rpc::net::MAX_MESSAGE_BYTES);
        let router = rpc::net::server_builder(&config.security)?
            .add_service(health)
            .add_service(reflection)
            .add_service(tonic::service::interceptor::InterceptedService::new(svc, auth));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut stop_grpc = stop_rx.clone();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc);
        let grpc_task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async move {
            let _ = stop_grpc.wait_for(|s| *s).await;
        }));
        let http_task = http.map(|listener| {
            let ctx =
                Arc::new(http::HttpCtx { shared: shared.clone(), token: config.security.token.clone() });
            let mut stop_http = stop_rx.clone();
            tokio::spawn(async move {
                axum::serve(listener, http::router(ctx))
                    .with_graceful_shutdown(async move {
                        let _ = stop_http.wait_for(|s| *s).await;
                    })
                    .await
            })
        });
        let monitor = tokio::spawn(state::monitor(shared.clone()));
        let drive_config = driver::DriveConfig {
            hang_timeout: config.hang_timeout,
            nnodes: config.nnodes,
            rdzv_timeout: config.rdzv_timeout,
            step_timeout: config.step_timeout,
            max_restarts: config.max_restarts,
            record_ops: config.record_ops,
            security: config.security.clone(),
        };

        let work = async {
            let job = match job {
                Some(j) => j,
                None => {
                    (config.log)("no job given: waiting for a SubmitJob call");
                    loop {
                        let Some(text) = submit_rx.recv().await else {
                            return Err(CoordinatorError::Internal("submission channel closed".into()));
                        };
                        let Some(resolve) = &resolver else {
                            return Err(CoordinatorError::Job(
                                "this coordinator cannot resolve submitted jobs".into(),
                            ));
                        };
                        match resolve(&text) {
                            Ok(j) => break j,
                            Err(e) => (config.log)(&format!("submitted job refused: {e}")),
                        }
                    }
                }
            };
            (config.log)(&format!(
                "job {}: {} ranks ({} × {} ops per step), {} steps, simulated step {:.3} ms",
                job.id,
                job.world(),
                job.program.stages.len(),
                job.program.stages.first().map_or(0, |s| s.ops.len()),
                job.file.steps,
                job.sim_step_time_s * 1e3
            ));
            driver::drive(&shared, &job, &*store, &drive_config).await
        };
        tokio::pin!(stop);
        let mut result = tokio::select! {
            r = work => r,
            () = &mut stop => {
                shared.cancel.send_replace(true);
                Ok(cancelled_outcome(&shared))
            }
        };
        match &result {
            Ok(o) => {
                let msg = o.message.clone();
                let state = o.state;
                shared.publish(|e| {
                    e.state = state;
                    e.message = msg;
                });
            }
            Err(e) => {
                let msg = e.to_string();
                shared.publish(|ev| {
                    ev.state = JobState::Failed;
                    ev.message = msg;
                });
            }
        }
        let reason = match &result {
            Ok(o) => format!("job {}", o.state.name()),
            Err(e) => format!("job failed: {e}"),
        };
        shutdown_workers(&shared, &config.security, &reason).await;
        if config.linger && result.is_ok() {
            (config.log)("job over; still serving status until stopped");
            stop.await;
        }
        // Let watchers read the final event before the server goes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        monitor.abort();
        stop_tx.send_replace(true);
        if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(3), grpc_task).await
            && result.is_ok()
        {
            result = Err(CoordinatorError::Serve { addr: "grpc".into(), reason: rpc::net::error_chain(&e) });
        }
        if let Some(t) = http_task {
            let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
        }
        result
    }
}

fn cancelled_outcome(shared: &state::Shared) -> JobOutcome {
    let e: JobEvent = shared.job.borrow().clone();
    JobOutcome {
        job_id: e.job_id,
        state: JobState::Cancelled,
        message: "interrupted".into(),
        steps_done: e.steps_done,
        steps_total: e.steps_total,
        step_wall_s: vec![],
        time_scale: 1.0,
        sim_step_time_s: e.sim_step_time_s,
        restarts: e.restarts,
        digests: BTreeMap::new(),
        records: vec![],
        checkpoint_dir: std::path::PathBuf::new(),
        checkpoint_step: e.checkpoint_step,
        checkpoints: 0,
        lost_steps: e.lost_steps,
        recoveries: e.recoveries,
    }
}

/// Tells every live worker the job is over, so that it exits.
async fn shutdown_workers(shared: &state::Shared, security: &rpc::net::Security, reason: &str) {
    let mut calls = tokio::task::JoinSet::new();
    for w in shared.worker_infos().into_iter().filter(|w| w.alive) {
        let (security, reason) = (security.clone(), reason.to_string());
        calls.spawn(async move {
            let channel = rpc::net::connect(&w.address, &security, Duration::from_secs(2)).await.ok()?;
            let mut client = rpc::net::worker_client(channel, &security).ok()?;
            client.shutdown(rpc::pb::ShutdownRequest { reason }).await.ok()
        });
    }
    let _ =
        tokio::time::timeout(Duration::from_secs(5), async { while calls.join_next().await.is_some() {} })
            .await;
}

pub mod client;
