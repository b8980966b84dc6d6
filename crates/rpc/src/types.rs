//! Domain types of the live job, as the daemons use them. The wire forms are in [`crate::pb`]; the
//! conversions (`From` domain → wire, `TryFrom` wire → domain) live in `convert_*.rs` and reject every value
//! that does not fit, naming the field.

use schedule::{Layout, Op};

/// One op of a stage's program with the seconds the simulator costs it at.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The op, exactly as `schedule::build` produced it.
    pub op: Op,
    /// Simulated seconds the op takes once it starts (`sim::op_durations`).
    pub duration_s: f64,
}

/// The task list of one pipeline stage; every rank of the stage runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct StageTasks {
    /// Pipeline stage.
    pub stage: u32,
    /// Tasks in program order.
    pub tasks: Vec<Task>,
}

/// What the coordinator tells a worker to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Job identifier.
    pub job_id: String,
    /// Seed of the job's deterministic state.
    pub seed: u64,
    /// Live seconds per simulated second.
    pub time_scale: f64,
    /// Emulated payload bytes = op bytes / `payload_scale`.
    pub payload_scale: u64,
    /// Cap on one message's payload bytes.
    pub max_payload_bytes: u64,
    /// Rank numbering.
    pub layout: Layout,
    /// Global ranks hosted by this worker.
    pub ranks: Vec<u32>,
    /// Task lists of the stages of those ranks.
    pub stages: Vec<StageTasks>,
    /// For every global rank, the address of its worker.
    pub rank_addresses: Vec<String>,
    /// State digests of `ranks` (same order) at the start of `first_step`.
    pub digests: Vec<u64>,
    /// The first step to run.
    pub first_step: u32,
    /// The job's checkpoint directory (a path every worker sees).
    pub checkpoint_dir: String,
    /// Restore the ranks' state from the committed checkpoint of `first_step` (checking that it gives
    /// `digests`) rather than taking `digests` as given.
    pub restore: bool,
    /// Payload bytes of one rank's checkpoint shard.
    pub shard_bytes: u64,
    /// Fingerprint of the job's inputs.
    pub fingerprint: String,
}

impl Assignment {
    /// The task list of a stage, if assigned.
    pub fn stage(&self, stage: u32) -> Option<&StageTasks> {
        self.stages.iter().find(|s| s.stage == stage)
    }
}

/// When one op ran, seconds from the worker's start of the step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpTiming {
    /// Op index in the stage program.
    pub op: u32,
    /// Start, seconds.
    pub start_s: f64,
    /// End, seconds.
    pub end_s: f64,
}

/// One rank's step: ops in the order they finished, and the state digest after the step.
#[derive(Debug, Clone, PartialEq)]
pub struct RankStep {
    /// Global rank.
    pub rank: u32,
    /// Running state digest after the step.
    pub digest: u64,
    /// Ops in completion order.
    pub ops: Vec<OpTiming>,
}

/// A worker's answer to one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    /// The step.
    pub step: u32,
    /// One entry per hosted rank.
    pub ranks: Vec<RankStep>,
    /// The step's wall time on the worker, seconds.
    pub wall_s: f64,
}

/// The kind of exchange a data message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Channel {
    /// A ring step of a collective; the key is the op index.
    Collective,
    /// A pipeline send; the key is the message tag.
    P2p,
}

/// One message of the data plane.
#[derive(Debug, Clone, PartialEq)]
pub struct DataMessage {
    /// Job identifier.
    pub job_id: String,
    /// Step.
    pub step: u32,
    /// Sending rank.
    pub src_rank: u32,
    /// Receiving rank.
    pub dst_rank: u32,
    /// Exchange kind.
    pub channel: Channel,
    /// Op index (collective) or tag (pipeline).
    pub key: u64,
    /// Ring step within the collective.
    pub seq: u32,
    /// The carried state value.
    pub value: u64,
    /// Padding standing in for the tensor.
    pub payload: Vec<u8>,
}

/// An injected fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The worker exits at once (or, `during_checkpoint`, half-way through writing its next shard).
    Kill {
        /// Die while writing the next checkpoint shard.
        during_checkpoint: bool,
    },
    /// The worker makes no progress for this many seconds but keeps heartbeating (stuck in a collective).
    Hang {
        /// Seconds.
        duration_s: f64,
    },
    /// The worker stops entirely for this many seconds: no progress, no heartbeats (a frozen machine).
    Freeze {
        /// Seconds.
        duration_s: f64,
    },
    /// Compute runs `factor` times slower for `duration_s`.
    Slow {
        /// Seconds.
        duration_s: f64,
        /// Slow-down factor (≥ 1).
        factor: f64,
    },
    /// For `duration_s` the worker answers no call from, and reaches no one but, the workers in `peers`.
    Partition {
        /// Seconds.
        duration_s: f64,
        /// Addresses of the workers on this worker's side.
        peers: Vec<String>,
    },
    /// Planned maintenance: the coordinator checkpoints at the next step boundary, shuts the worker down and
    /// restarts the job from that checkpoint without it (nothing is lost).
    Drain,
    /// The coordinator corrupts one shard of a committed checkpoint (0: the latest).
    CorruptCheckpoint {
        /// Steps done of the checkpoint.
        step: u32,
    },
}

impl Fault {
    /// The fault's name as the CLI and the event stream spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill",
            Fault::Hang { .. } => "hang",
            Fault::Freeze { .. } => "freeze",
            Fault::Slow { .. } => "slow",
            Fault::Partition { .. } => "partition",
            Fault::CorruptCheckpoint { .. } => "corrupt-checkpoint",
            Fault::Drain => "drain",
        }
    }
}

/// One failure and the recovery from it, as the coordinator measured it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recovery {
    /// What failed (`kill`, `hang`, `slow`, `partition`, `corrupt-checkpoint`; `lost` when not injected), or
    /// `drain` for a planned removal.
    pub fault: String,
    /// What it hit.
    pub target: String,
    /// How the coordinator noticed.
    pub cause: String,
    /// Seconds from injection to detection (negative: the fault's time is unknown).
    pub detect_s: f64,
    /// Seconds from injection (or detection) to the first step finished after the restore (negative: not yet).
    pub recover_s: f64,
    /// The checkpoint restored (steps done).
    pub restored_step: u32,
    /// Steps lost (run, then redone).
    pub lost_steps: u32,
    /// Newer checkpoints passed over, and why.
    pub skipped: Vec<String>,
    /// Unix time of the detection, seconds.
    pub detected_unix_s: f64,
}

/// A worker's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Name for listings.
    pub name: String,
    /// GPUs (ranks) hosted.
    pub gpus: u32,
    /// Execution backend name.
    pub backend: String,
    /// Address of the worker's service (`http://host:port` or `https://…`).
    pub address: String,
    /// choir version.
    pub version: String,
    /// The id of a previous registration to reclaim, or empty.
    pub previous_id: String,
}

/// Job lifecycle states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum JobState {
    /// No job submitted.
    NoJob,
    /// Waiting for workers.
    Rendezvous,
    /// Steps running.
    Running,
    /// All steps done.
    Succeeded,
    /// Failed; the message says why.
    Failed,
    /// Cancelled by a client.
    Cancelled,
}

impl JobState {
    /// A short label.
    pub fn name(self) -> &'static str {
        match self {
            JobState::NoJob => "no-job",
            JobState::Rendezvous => "rendezvous",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job is over.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
}

/// A snapshot of the job, streamed to watchers.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    /// Job identifier (empty without a job).
    pub job_id: String,
    /// State.
    pub state: JobState,
    /// Steps finished.
    pub steps_done: u32,
    /// Steps in all.
    pub steps_total: u32,
    /// Workers registered and alive.
    pub workers: u32,
    /// Workers expected.
    pub nnodes: u32,
    /// Last step's wall time, seconds.
    pub last_step_wall_s: f64,
    /// Last step's wall time divided by the time scale: comparable with the simulated step.
    pub last_step_equiv_s: f64,
    /// Simulated step time, seconds.
    pub sim_step_time_s: f64,
    /// What happened, or why it failed.
    pub message: String,
    /// Restarts used.
    pub restarts: u32,
    /// The newest committed checkpoint (steps done; 0: none).
    pub checkpoint_step: u32,
    /// Steps run and then lost to failures.
    pub lost_steps: u32,
    /// Failures recovered from, oldest first.
    pub recoveries: Vec<Recovery>,
}

/// A registered worker as listed by the coordinator.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerInfo {
    /// Identifier.
    pub worker_id: String,
    /// Name.
    pub name: String,
    /// GPUs.
    pub gpus: u32,
    /// Backend.
    pub backend: String,
    /// Service address.
    pub address: String,
    /// Whether its heartbeats are current.
    pub alive: bool,
    /// Global ranks assigned.
    pub ranks: Vec<u32>,
    /// Seconds since its last heartbeat.
    pub since_last_beat_s: f64,
}
