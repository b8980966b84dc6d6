//! Conversions of the control and data-plane messages: assignments, step results, data messages, faults,
//! registrations, job events and worker listings.

use crate::convert_task::MAX_RANKS;
use crate::pb;
use crate::types::{
    Assignment, Channel, DataMessage, Fault, JobEvent, JobState, OpTiming, RankStep, Registration,
    StageTasks, StepResult, WorkerInfo,
};
use crate::{WireError, enum_value};

/// Longest string field accepted in a control message (names, ids, addresses).
pub const MAX_NAME_BYTES: usize = 512;

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
        };
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
        match f {
            Fault::Kill => pb::Fault { kind: pb::FaultKind::Kill as i32, duration_s: 0.0, factor: 1.0 },
            Fault::Hang { duration_s } => {
                pb::Fault { kind: pb::FaultKind::Hang as i32, duration_s, factor: 1.0 }
            }
            Fault::Slow { duration_s, factor } => {
                pb::Fault { kind: pb::FaultKind::Slow as i32, duration_s, factor }
            }
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
            pb::FaultKind::Kill => Fault::Kill,
            pb::FaultKind::Hang => Fault::Hang { duration_s: seconds(f.duration_s)? },
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
            pb::FaultKind::Unspecified => return Err(WireError::unspecified("fault.kind")),
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
