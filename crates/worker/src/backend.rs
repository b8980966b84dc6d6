//! The execution seam: what a backend must do for each kind of op. `emulate` is the one built here; the `cpu`
//! and `nccl` backends of a later issue implement the same trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rpc::types::Task;
use schedule::{CollectiveKind, GroupKind};

use crate::WorkerError;
use crate::job::Job;

/// A boxed, sendable future (what trait methods return so that backends stay object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which backend a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Compute ops wait their simulated duration × time scale; communication really exchanges messages.
    Emulate,
}

impl BackendKind {
    /// The name used on the command line and in registration.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Emulate => "emulate",
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = WorkerError;
    fn from_str(s: &str) -> Result<BackendKind, WorkerError> {
        match s {
            "emulate" => Ok(BackendKind::Emulate),
            "cpu" | "nccl" => Err(WorkerError::Config(format!(
                "--backend {s}: not built yet (a later issue adds it); expected emulate"
            ))),
            other => Err(WorkerError::Config(format!("--backend {other:?}: expected emulate"))),
        }
    }
}

/// Everything a backend needs to run one op of one rank.
#[derive(Debug, Clone)]
pub struct OpCtx {
    /// The job.
    pub job: Arc<Job>,
    /// Step.
    pub step: u32,
    /// Global rank.
    pub rank: u32,
    /// Op index in the stage's program.
    pub op: u32,
    /// The op and its simulated duration.
    pub task: Task,
    /// The op's input state: a digest of the rank's state and its dependencies' results.
    pub input: u64,
    /// When the op should start on the step's schedule: when its stream's previous op and its dependencies
    /// were planned to end, or now if it is later than that by more than the timer jitter absorbed
    /// ([`crate::exec::JITTER_ABSORBED_S`]). A backend that plays simulated durations ends the op at
    /// `planned_start + duration`, so timer and wake-up jitter do not pile up over a step's ops, while real
    /// delays (a late message, a hang, a slow-down) still push everything after them.
    pub planned_start: std::time::Instant,
}

/// A collective as a backend sees it.
#[derive(Debug, Clone)]
pub struct CollectiveSpec {
    /// Group kind.
    pub group: GroupKind,
    /// Members in group order (global ranks).
    pub members: Vec<u32>,
    /// Collective.
    pub kind: CollectiveKind,
    /// Bytes (nccl-tests convention).
    pub bytes: u64,
}

/// An execution backend. Each method runs one op and returns its result value (folded into the rank's state).
/// Results must be deterministic functions of the inputs so that runs can be compared.
pub trait Backend: Send + Sync + 'static {
    /// The backend's name.
    fn name(&self) -> &'static str;
    /// A compute op.
    fn compute(&self, ctx: OpCtx) -> BoxFuture<'_, Result<u64, WorkerError>>;
    /// A collective: every member of `spec.members` calls this with the same op index.
    fn collective(&self, ctx: OpCtx, spec: CollectiveSpec) -> BoxFuture<'_, Result<u64, WorkerError>>;
    /// A pipeline send of `bytes` to `dst_rank`.
    fn send(
        &self,
        ctx: OpCtx,
        dst_rank: u32,
        tag: u64,
        bytes: u64,
    ) -> BoxFuture<'_, Result<u64, WorkerError>>;
    /// A pipeline receive from `src_rank`; done when the message has arrived.
    fn recv(&self, ctx: OpCtx, src_rank: u32, tag: u64) -> BoxFuture<'_, Result<u64, WorkerError>>;
}
