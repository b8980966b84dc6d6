//! The choir worker daemon.
//!
//! A worker binds its own gRPC service (the data plane to its peers and the coordinator's control calls),
//! registers with the coordinator reporting its GPUs and backend, heartbeats on one stream, and runs the
//! steps the coordinator asks for on the ranks it was assigned:
//!
//! ```text
//! coordinator ──Assign(ranks, stage task lists, peers)──> worker ──RunStep(s)──> exec: per rank, per stream
//!      ^                                                     │                   ops in program order,
//!      └──────────── per-op timings + state digests ─────────┘                   deps honoured
//!                                                  collectives / sends ──Deliver──> peer workers
//! ```
//!
//! Execution goes through the [`Backend`] trait; [`emulate::Emulate`] waits simulated durations and really
//! exchanges every collective ring step and pipeline message. Each rank's state is a running digest that is
//! a deterministic function of (seed, step), so a run can be compared with a fault-free one.

mod activity;
mod backend;
mod dataplane;
pub mod emulate;
mod exec;
mod faults;
mod job;
mod service;
mod session;

pub use activity::{Activity, InFlight};
pub use backend::{Backend, BackendKind, BoxFuture, CollectiveSpec, OpCtx};
pub use dataplane::{DataPlane, MAILBOX_LIMIT, MailKey, Mailbox};
pub use exec::{JITTER_ABSORBED_S, run_step};
pub use faults::FaultState;
pub use job::Job;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rpc::types::Registration;
use tokio::sync::mpsc;

/// A log sink: the daemon reports what it does through this (the CLI prints it).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// How a worker runs.
#[derive(Clone)]
pub struct Config {
    /// The coordinator's URL (`http://host:port`, or `https://` with TLS).
    pub coordinator_url: String,
    /// Where the worker's own service listens.
    pub listen: SocketAddr,
    /// The URL peers and the coordinator dial to reach this worker [default: the bound address].
    pub advertise: Option<String>,
    /// GPUs (ranks) this worker hosts.
    pub gpus: u32,
    /// Execution backend.
    pub backend: BackendKind,
    /// Name in listings.
    pub name: String,
    /// Token and TLS.
    pub security: rpc::net::Security,
    /// How long to keep trying to reach the coordinator (at start and after losing it).
    pub connect_timeout: Duration,
    /// Where progress lines go.
    pub log: Log,
}

/// Why a worker stopped without error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The coordinator said the job is over.
    Shutdown(String),
    /// The caller's stop signal fired (Ctrl-C, SIGTERM).
    Interrupted,
}

/// What can go wrong in a worker.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkerError {
    /// A configuration value that cannot be used.
    #[error("{0}")]
    Config(String),
    /// The listening socket could not be bound or served.
    #[error("serving on {addr}: {reason}")]
    Serve {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The coordinator could not be reached for the whole connect timeout.
    #[error("coordinator {url} unreachable for {waited_s:.0} s (last error: {last_error})")]
    CoordinatorLost {
        /// URL.
        url: String,
        /// Seconds waited.
        waited_s: f64,
        /// The last failure.
        last_error: String,
    },
    /// The coordinator refused the worker.
    #[error("the coordinator refused this worker ({code}): {message}")]
    Rejected {
        /// gRPC status code.
        code: String,
        /// Its message.
        message: String,
    },
    /// A fault injection killed the worker.
    #[error("killed by an injected fault")]
    Killed,
    /// The coordinator's instructions do not fit this worker's state.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A data-plane exchange failed.
    #[error("data plane: {0}")]
    DataPlane(String),
    /// A transport problem.
    #[error(transparent)]
    Net(#[from] rpc::net::NetError),
}

impl WorkerError {
    /// Whether restarting the worker may help (the coordinator was away, a fault killed it) rather than the
    /// configuration being wrong.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            WorkerError::CoordinatorLost { .. }
                | WorkerError::Killed
                | WorkerError::DataPlane(_)
                | WorkerError::Net(_)
        )
    }
}

/// Events that end a worker.
#[derive(Debug)]
pub(crate) enum Event {
    Shutdown(String),
    Killed,
}

/// Runs a worker until the coordinator shuts it down, `stop` fires, or it fails.
pub async fn run(config: Config, stop: impl Future<Output = ()> + Send) -> Result<Exit, WorkerError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| WorkerError::Serve { addr: config.listen.to_string(), reason: e.to_string() })?;
    let local = listener
        .local_addr()
        .map_err(|e| WorkerError::Serve { addr: config.listen.to_string(), reason: e.to_string() })?;
    let address =
        config.advertise.clone().unwrap_or_else(|| format!("{}://{local}", config.security.scheme()));
    let faults = Arc::new(FaultState::default());
    let plane = Arc::new(DataPlane::new(config.security.clone(), faults.clone()));
    let backend: Arc<dyn Backend> = match config.backend {
        BackendKind::Emulate => Arc::new(emulate::Emulate::new(plane.clone(), faults.clone())),
    };
    let (events, mut event_rx) = mpsc::channel(4);
    let shared = Arc::new(service::Shared {
        plane,
        faults,
        backend,
        job: std::sync::Mutex::new(None),
        step_lock: tokio::sync::Mutex::new(()),
        running: std::sync::Mutex::new(None),
        activity: Default::default(),
        self_address: address.clone(),
        events,
        log: config.log.clone(),
    });

    let auth = rpc::net::AuthCheck::new(config.security.token.as_deref());
    let (_health_reporter, health) = rpc::net::health_service().await;
    let reflection = rpc::net::reflection_service(auth.clone())?;
    let svc = rpc::pb::worker_server::WorkerServer::new(service::WorkerService(shared.clone()))
        .max_decoding_message_size(rpc::net::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(rpc::net::MAX_MESSAGE_BYTES);
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let router = rpc::net::server_builder(&config.security)?
        .add_service(health)
        .add_service(reflection)
        .add_service(tonic::service::interceptor::InterceptedService::new(svc, auth));
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
        let _ = server_stopped.await;
    }));
    (config.log)(&format!("worker listening on {local}, advertised as {address}"));

    let session_config = session::SessionConfig {
        coordinator_url: config.coordinator_url.clone(),
        security: config.security.clone(),
        registration: Registration {
            name: config.name.clone(),
            gpus: config.gpus,
            backend: config.backend.name().to_string(),
            address,
            version: env!("CARGO_PKG_VERSION").to_string(),
            previous_id: String::new(),
        },
        connect_timeout: config.connect_timeout,
    };
    let mut session = tokio::spawn(session::run(shared.clone(), session_config));
    let result = tokio::select! {
        ev = event_rx.recv() => match ev {
            Some(Event::Shutdown(reason)) => Ok(Exit::Shutdown(reason)),
            Some(Event::Killed) => Err(WorkerError::Killed),
            None => Ok(Exit::Interrupted),
        },
        res = &mut session => match res {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Ok(Exit::Interrupted),
            Err(e) => Err(WorkerError::Protocol(format!("session task failed: {e}"))),
        },
        () = stop => Ok(Exit::Interrupted),
    };
    session.abort();
    let _ = stop_server.send(());
    if matches!(result, Err(WorkerError::Killed)) {
        // A killed worker drops every connection at once, as a dead process would.
        server.abort();
    } else {
        // Give in-flight answers (the Shutdown reply) a moment to leave.
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    }
    result
}
