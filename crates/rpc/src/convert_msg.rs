//! Conversions of the control and data-plane messages: assignments, step results, data messages, faults,
//! registrations, job events and worker listings.

use crate::convert_task::MAX_RANKS;
use crate::pb;
use crate::types::{
    Assignment, Channel, DataMessage, Fault, JobEvent, JobState, OpTiming, RankStep, Recovery, Registration,
    StageTasks, StepResult, WorkerInfo,
};
use crate::{WireError, enum_value};

/// Longest string field accepted in a control message (names, ids, addresses).
pub const MAX_NAME_BYTES: usize = 512;

/// Largest emulated checkpoint shard payload a worker accepts to write.
pub const MAX_SHARD_BYTES: u64 = 1 << 30;

fn path_field(field: &'static str, s: String) -> Result<String, WireError> {
    if s.len() > 4096 || s.contains('\0') {
        return Err(WireError::invalid(field, format!("{} bytes", s.len()), "a path of at most 4096 bytes"));
    }
    Ok(s)
}

fn name_field(field: &'static str, s: String) -> Result<String, WireError> {
    if s.len() > MAX_NAME_BYTES {
        return Err(WireError::invalid(field, format!("{} bytes", s.len()), "at most 512 bytes"));
    }
    Ok(s)
}

impl From<&Assignment> for pb::AssignRequest {
    fn from(a: &Assignment) -> Self {
        pb::AssignRequest {
            job_id: a.job_id.clone(),
            seed: a.seed,
            time_scale: a.time_scale,
            payload_scale: a.payload_scale,
            max_payload_bytes: a.max_payload_bytes,
            layout: Some(a.layout.into()),
            ranks: a.ranks.clone(),
            stages: a.stages.iter().map(pb::StageTasks::from).collect(),
            rank_addresses: a.rank_addresses.clone(),
            digests: a.digests.clone(),
            first_step: a.first_step,
            checkpoint_dir: a.checkpoint_dir.clone(),
            restore: a.restore,
            shard_bytes: a.shard_bytes,
            fingerprint: a.fingerprint.clone(),
        }
    }
}

impl TryFrom<pb::AssignRequest> for Assignment {
    type Error = WireError;
    fn try_from(a: pb::AssignRequest) -> Result<Self, WireError> {
        let layout: schedule::Layout = a
            .layout
            .ok_or(WireError::Missing { field: "assign.layout", expected: "the job's layout" })?
            .try_into()?;
        let world = layout.world();
        if !(a.time_scale.is_finite() && a.time_scale > 0.0 && a.time_scale <= 1e6) {
            return Err(WireError::invalid("assign.time_scale", a.time_scale, "a positive number up to 1e6"));
        }
        if a.payload_scale == 0 {
            return Err(WireError::invalid("assign.payload_scale", 0, "at least 1"));
        }
        if a.rank_addresses.len() != world as usize {
            return Err(WireError::invalid(
                "assign.rank_addresses",
                format!("{} entries", a.rank_addresses.len()),
                "one address per rank of the layout",
            ));
        }
        if let Some(&r) = a.ranks.iter().find(|&&r| r >= world) {
            return Err(WireError::invalid("assign.ranks", r, "a rank below tp·cp·dp·pp"));
        }
        if a.digests.len() != a.ranks.len() {
            return Err(WireError::invalid(
                "assign.digests",
                format!("{} entries", a.digests.len()),
                "one digest per assigned rank",
            ));
        }
        let stages = a
            .stages
            .into_iter()
            .map(|s| StageTasks::from_wire(s, layout.pp))
            .collect::<Result<Vec<_>, _>>()?;
        let assignment = Assignment {
            job_id: name_field("assign.job_id", a.job_id)?,
            seed: a.seed,
            time_scale: a.time_scale,
            payload_scale: a.payload_scale,
            max_payload_bytes: a.max_payload_bytes,
            layout,
            ranks: a.ranks,
            stages,
            rank_addresses: a
                .rank_addresses
                .into_iter()
                .map(|s| name_field("assign.rank_addresses", s))
                .collect::<Result<_, _>>()?,
            digests: a.digests,
            first_step: a.first_step,
            checkpoint_dir: path_field("assign.checkpoint_dir", a.checkpoint_dir)?,
            restore: a.restore,
            shard_bytes: a.shard_bytes,
            fingerprint: name_field("assign.fingerprint", a.fingerprint)?,
        };
        if assignment.restore && assignment.checkpoint_dir.is_empty() {
            return Err(WireError::invalid("assign.checkpoint_dir", "\"\"", "a directory to restore from"));
        }
        if assignment.shard_bytes > MAX_SHARD_BYTES {
            return Err(WireError::invalid(
                "assign.shard_bytes",
                assignment.shard_bytes,
                "at most 1 GiB of emulated shard payload",
            ));
        }
        for &r in &assignment.ranks {
            let stage = layout.coord(r).pp;
            if assignment.stage(stage).is_none() {
                return Err(WireError::invalid(
                    "assign.stages",
                    stage,
                    "the task list of every assigned rank's stage",
                ));
            }
        }
        Ok(assignment)
    }
}

impl From<&StepResult> for pb::RunStepResponse {
    fn from(r: &StepResult) -> Self {
        pb::RunStepResponse {
            step: r.step,
            wall_s: r.wall_s,
            ranks: r
                .ranks
                .iter()
                .map(|k| pb::RankStep {
                    rank: k.rank,
                    digest: k.digest,
                    ops: k
                        .ops
                        .iter()
                        .map(|o| pb::OpTiming { op: o.op, start_s: o.start_s, end_s: o.end_s })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl TryFrom<pb::RunStepResponse> for StepResult {
    type Error = WireError;
    fn try_from(r: pb::RunStepResponse) -> Result<Self, WireError> {
        let mut ranks = Vec::with_capacity(r.ranks.len());
        for k in r.ranks {
            if k.rank >= MAX_RANKS {
                return Err(WireError::invalid("rank_step.rank", k.rank, "a rank below 2^20"));
            }
            let mut ops = Vec::with_capacity(k.ops.len());
            for o in k.ops {
                if !(o.start_s.is_finite() && o.end_s.is_finite() && o.start_s >= 0.0 && o.end_s >= o.start_s)
                {
                    return Err(WireError::invalid(
                        "op_timing",
                        format!("[{}, {}]", o.start_s, o.end_s),
                        "finite seconds with 0 <= start <= end",
                    ));
                }
                ops.push(OpTiming { op: o.op, start_s: o.start_s, end_s: o.end_s });
            }
            ranks.push(RankStep { rank: k.rank, digest: k.digest, ops });
        }
        Ok(StepResult { step: r.step, ranks, wall_s: r.wall_s })
    }
}

impl From<DataMessage> for pb::DataMessage {
    fn from(m: DataMessage) -> Self {
        let channel = match m.channel {
            Channel::Collective => pb::Channel::Collective,
            Channel::P2p => pb::Channel::P2p,
        };
        pb::DataMessage {
            job_id: m.job_id,
            step: m.step,
            src_rank: m.src_rank,
            dst_rank: m.dst_rank,
            channel: channel as i32,
            key: m.key,
            seq: m.seq,
            value: m.value,
            payload: m.payload,
        }
    }
}

impl TryFrom<pb::DataMessage> for DataMessage {
    type Error = WireError;
    fn try_from(m: pb::DataMessage) -> Result<Self, WireError> {
        let channel = match enum_value::<pb::Channel>("data.channel", m.channel)? {
            pb::Channel::Collective => Channel::Collective,
            pb::Channel::P2p => Channel::P2p,
            pb::Channel::Unspecified => return Err(WireError::unspecified("data.channel")),
        };
        Ok(DataMessage {
            job_id: name_field("data.job_id", m.job_id)?,
            step: m.step,
            src_rank: m.src_rank,
            dst_rank: m.dst_rank,
            channel,
            key: m.key,
            seq: m.seq,
            value: m.value,
            payload: m.payload,
        })
    }
}

impl From<Fault> for pb::Fault {
    fn from(f: Fault) -> Self {
        let base = |kind: pb::FaultKind| pb::Fault { kind: kind as i32, factor: 1.0, ..Default::default() };
        match f {
            Fault::Kill { during_checkpoint } => pb::Fault { during_checkpoint, ..base(pb::FaultKind::Kill) },
            Fault::Hang { duration_s } => pb::Fault { duration_s, ..base(pb::FaultKind::Hang) },
            Fault::Freeze { duration_s } => pb::Fault { duration_s, ..base(pb::FaultKind::Freeze) },
            Fault::Slow { duration_s, factor } => {
                pb::Fault { duration_s, factor, ..base(pb::FaultKind::Slow) }
            }
            Fault::Partition { duration_s, peers } => {
                pb::Fault { duration_s, peers, ..base(pb::FaultKind::Partition) }
            }
            Fault::CorruptCheckpoint { step } => pb::Fault { step, ..base(pb::FaultKind::CorruptCheckpoint) },
            Fault::Drain => base(pb::FaultKind::Drain),
        }
    }
}

impl TryFrom<pb::Fault> for Fault {
    type Error = WireError;
    fn try_from(f: pb::Fault) -> Result<Self, WireError> {
        let seconds = |v: f64| {
            if v.is_finite() && (0.0..=86_400.0).contains(&v) {
                Ok(v)
            } else {
                Err(WireError::invalid("fault.duration_s", v, "seconds in [0, 86400]"))
            }
        };
        Ok(match enum_value::<pb::FaultKind>("fault.kind", f.kind)? {
            pb::FaultKind::Kill => Fault::Kill { during_checkpoint: f.during_checkpoint },
            pb::FaultKind::Hang => Fault::Hang { duration_s: seconds(f.duration_s)? },
            pb::FaultKind::Freeze => Fault::Freeze { duration_s: seconds(f.duration_s)? },
            pb::FaultKind::Slow => {
                if !(f.factor.is_finite() && (1.0..=1000.0).contains(&f.factor)) {
                    return Err(WireError::invalid(
                        "fault.factor",
                        f.factor,
                        "a slow-down factor in [1, 1000]",
                    ));
                }
                Fault::Slow { duration_s: seconds(f.duration_s)?, factor: f.factor }
            }
            pb::FaultKind::Partition => {
                if f.peers.len() > MAX_RANKS as usize {
                    return Err(WireError::invalid(
                        "fault.peers",
                        f.peers.len(),
                        "at most one address per rank",
                    ));
                }
                Fault::Partition {
                    duration_s: seconds(f.duration_s)?,
                    peers: f
                        .peers
                        .into_iter()
                        .map(|p| name_field("fault.peers", p))
                        .collect::<Result<_, _>>()?,
                }
            }
            pb::FaultKind::CorruptCheckpoint => Fault::CorruptCheckpoint { step: f.step },
            pb::FaultKind::Drain => Fault::Drain,
            pb::FaultKind::Unspecified => return Err(WireError::unspecified("fault.kind")),
        })
    }
}

impl From<&Recovery> for pb::Recovery {
    fn from(r: &Recovery) -> Self {
        pb::Recovery {
            fault: r.fault.clone(),
            target: r.target.clone(),
            cause: r.cause.clone(),
            detect_s: r.detect_s,
            recover_s: r.recover_s,
            restored_step: r.restored_step,
            lost_steps: r.lost_steps,
            skipped: r.skipped.clone(),
            detected_unix_s: r.detected_unix_s,
        }
    }
}

impl From<pb::Recovery> for Recovery {
    fn from(r: pb::Recovery) -> Self {
        Recovery {
            fault: r.fault,
            target: r.target,
            cause: r.cause,
            detect_s: r.detect_s,
            recover_s: r.recover_s,
            restored_step: r.restored_step,
            lost_steps: r.lost_steps,
            skipped: r.skipped,
            detected_unix_s: r.detected_unix_s,
        }
    }
}

impl From<&checkpoint::ShardRecord> for pb::ShardRecord {
    fn from(r: &checkpoint::ShardRecord) -> Self {
        pb::ShardRecord {
            rank: r.rank,
            file: r.file.clone(),
            bytes: r.bytes,
            sha256: r.sha256.clone(),
            digest: r.digest,
        }
    }
}

impl TryFrom<pb::ShardRecord> for checkpoint::ShardRecord {
    type Error = WireError;
    fn try_from(r: pb::ShardRecord) -> Result<Self, WireError> {
        if r.sha256.len() != 64 || !r.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(WireError::invalid("shard.sha256", &r.sha256, "64 hex digits"));
        }
        if r.file != checkpoint::shard_file_name(r.rank) {
            return Err(WireError::invalid("shard.file", &r.file, "rank-NNNNN.shard of its rank"));
        }
        Ok(checkpoint::ShardRecord {
            rank: r.rank,
            file: r.file,
            bytes: r.bytes,
            sha256: r.sha256,
            digest: r.digest,
        })
    }
}

impl From<&Registration> for pb::RegisterRequest {
    fn from(r: &Registration) -> Self {
        pb::RegisterRequest {
            name: r.name.clone(),
            gpus: r.gpus,
            backend: r.backend.clone(),
            address: r.address.clone(),
            version: r.version.clone(),
            previous_id: r.previous_id.clone(),
        }
    }
}

impl TryFrom<pb::RegisterRequest> for Registration {
    type Error = WireError;
    fn try_from(r: pb::RegisterRequest) -> Result<Self, WireError> {
        if r.gpus == 0 || r.gpus > 1024 {
            return Err(WireError::invalid("register.gpus", r.gpus, "1 to 1024 GPUs per worker"));
        }
        if !(r.address.starts_with("http://") || r.address.starts_with("https://")) {
            return Err(WireError::invalid("register.address", &r.address, "an http:// or https:// URL"));
        }
        Ok(Registration {
            name: name_field("register.name", r.name)?,
            gpus: r.gpus,
            backend: name_field("register.backend", r.backend)?,
            address: name_field("register.address", r.address)?,
            version: name_field("register.version", r.version)?,
            previous_id: name_field("register.previous_id", r.previous_id)?,
        })
    }
}

fn state_to_wire(s: JobState) -> pb::JobState {
    match s {
        JobState::NoJob => pb::JobState::NoJob,
        JobState::Rendezvous => pb::JobState::Rendezvous,
        JobState::Running => pb::JobState::Running,
        JobState::Succeeded => pb::JobState::Succeeded,
        JobState::Failed => pb::JobState::Failed,
        JobState::Cancelled => pb::JobState::Cancelled,
    }
}

impl From<&JobEvent> for pb::JobEvent {
    fn from(e: &JobEvent) -> Self {
        pb::JobEvent {
            job_id: e.job_id.clone(),
            state: state_to_wire(e.state) as i32,
            steps_done: e.steps_done,
            steps_total: e.steps_total,
            workers: e.workers,
            nnodes: e.nnodes,
            last_step_wall_s: e.last_step_wall_s,
            last_step_equiv_s: e.last_step_equiv_s,
            sim_step_time_s: e.sim_step_time_s,
            message: e.message.clone(),
            restarts: e.restarts,
            checkpoint_step: e.checkpoint_step,
            lost_steps: e.lost_steps,
            recoveries: e.recoveries.iter().map(pb::Recovery::from).collect(),
        }
    }
}

impl TryFrom<pb::JobEvent> for JobEvent {
    type Error = WireError;
    fn try_from(e: pb::JobEvent) -> Result<Self, WireError> {
        let state = match enum_value::<pb::JobState>("job_event.state", e.state)? {
            pb::JobState::NoJob => JobState::NoJob,
            pb::JobState::Rendezvous => JobState::Rendezvous,
            pb::JobState::Running => JobState::Running,
            pb::JobState::Succeeded => JobState::Succeeded,
            pb::JobState::Failed => JobState::Failed,
            pb::JobState::Cancelled => JobState::Cancelled,
            pb::JobState::Unspecified => return Err(WireError::unspecified("job_event.state")),
        };
        Ok(JobEvent {
            job_id: e.job_id,
            state,
            steps_done: e.steps_done,
            steps_total: e.steps_total,
            workers: e.workers,
            nnodes: e.nnodes,
            last_step_wall_s: e.last_step_wall_s,
            last_step_equiv_s: e.last_step_equiv_s,
            sim_step_time_s: e.sim_step_time_s,
            message: e.message,
            restarts: e.restarts,
            checkpoint_step: e.checkpoint_step,
            lost_steps: e.lost_steps,
            recoveries: e.recoveries.into_iter().map(Recovery::from).collect(),
        })
    }
}

impl From<&WorkerInfo> for pb::WorkerInfo {
    fn from(w: &WorkerInfo) -> Self {
        pb::WorkerInfo {
            worker_id: w.worker_id.clone(),
            name: w.name.clone(),
            gpus: w.gpus,
            backend: w.backend.clone(),
            address: w.address.clone(),
            alive: w.alive,
            ranks: w.ranks.clone(),
            since_last_beat_s: w.since_last_beat_s,
        }
    }
}

impl From<pb::WorkerInfo> for WorkerInfo {
    fn from(w: pb::WorkerInfo) -> Self {
        WorkerInfo {
            worker_id: w.worker_id,
            name: w.name,
            gpus: w.gpus,
            backend: w.backend,
            address: w.address,
            alive: w.alive,
            ranks: w.ranks,
            since_last_beat_s: w.since_last_beat_s,
        }
    }
}
