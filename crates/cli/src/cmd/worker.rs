//! `choir worker`: a worker daemon that joins a coordinator and plays its ranks' task lists.
//!
//! Exit codes: 0 when the coordinator ends the job, 2 for bad flags or a refused token, 3 when the coordinator
//! stays unreachable or a fault killed the worker (a supervisor may restart it), 130 on Ctrl-C / SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use crate::cmd::coordinator::{
    INTERRUPTED, RETRYABLE, SecurityArgs, duration_flag, exit_with, stderr_log, stop_signal,
};
use crate::exit::bad_input;

/// Flags of `choir worker`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The coordinator, as a URL or HOST:PORT (torchrun: --rdzv-endpoint).
    #[arg(
        long,
        visible_alias = "rdzv-endpoint",
        env = "CHOIR_COORDINATOR",
        default_value = "127.0.0.1:29400"
    )]
    coordinator: String,
    /// GPUs (ranks) this worker hosts (torchrun: --nproc-per-node).
    #[arg(long, visible_alias = "nproc-per-node", env = "CHOIR_GPUS", default_value_t = 1)]
    gpus: u32,
    /// Execution backend: emulate (cpu and nccl come later).
    #[arg(long, env = "CHOIR_BACKEND", default_value = "emulate")]
    backend: String,
    /// Where this worker's own service (data plane and control) listens. Port 0 picks a free one.
    #[arg(long, env = "CHOIR_WORKER_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The URL peers and the coordinator dial for this worker [default: http://<bound address>].
    #[arg(long, env = "CHOIR_ADVERTISE")]
    advertise: Option<String>,
    /// Name in listings [default: <host>-<pid>].
    #[arg(long, env = "CHOIR_WORKER_NAME")]
    name: Option<String>,
    /// How long to keep trying to reach the coordinator, at start and after losing it.
    #[arg(long, env = "CHOIR_CONNECT_TIMEOUT", default_value = "60s")]
    connect_timeout: String,
    #[command(flatten)]
    security: SecurityArgs,
    /// Exit when stdin closes (used by `choir up` so that children never outlive it).
    #[arg(long, hide = true)]
    exit_on_stdin_eof: bool,
}

/// A coordinator URL from a URL or HOST:PORT.
pub(crate) fn coordinator_url(text: &str, security: &rpc::net::Security) -> String {
    if text.contains("://") { text.to_string() } else { format!("{}://{text}", security.scheme()) }
}

/// Runs `choir worker`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let security = args.security.load(Some(args.listen))?;
    let backend: worker::BackendKind = args.backend.parse().map_err(bad_input)?;
    if args.gpus == 0 {
        return Err(bad_input("--gpus 0: expected at least 1"));
    }
    let name = args.name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "worker".into());
        format!("{host}-{}", std::process::id())
    });
    let config = worker::Config {
        coordinator_url: coordinator_url(&args.coordinator, &security),
        listen: args.listen,
        advertise: args.advertise.clone(),
        gpus: args.gpus,
        backend,
        name: name.clone(),
        security,
        connect_timeout: duration_flag("connect-timeout", &args.connect_timeout)?
            .max(Duration::from_millis(100)),
        log: stderr_log(&name),
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let result = runtime.block_on(worker::run(config, stop_signal(args.exit_on_stdin_eof)));
    // Blocking sleeps of the emulator must not hold the process open.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(worker::Exit::Shutdown(reason)) => {
            eprintln!("[{name}] coordinator ended the job: {reason}");
            Ok(())
        }
        Ok(worker::Exit::Interrupted) => std::process::exit(INTERRUPTED),
        Err(e @ worker::WorkerError::Rejected { .. }) | Err(e @ worker::WorkerError::Config(_)) => {
            Err(bad_input(e))
        }
        Err(e) if e.retryable() => exit_with(&anyhow::Error::new(e), RETRYABLE),
        Err(e) => Err(e.into()),
    }
}
