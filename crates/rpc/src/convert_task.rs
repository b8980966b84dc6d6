//! Conversions of the task graph between `schedule` types and the wire: layouts, ops, stage task lists.
//!
//! Wire → domain conversions check every enum and index, so a malformed or hostile message becomes a
//! [`WireError`] (answered `INVALID_ARGUMENT`) instead of a panic further in.

use schedule::{CollectiveKind, CommPurpose, GroupKind, Layout, Op, OpKind, OpTag, Pass, RankOrder, Stream};

use crate::pb;
use crate::types::{StageTasks, Task};
use crate::{WireError, enum_value};

/// The most ranks a job may have (a bound against hostile layouts, far above any emulated job).
pub const MAX_RANKS: u32 = 1 << 20;

impl From<Layout> for pb::Layout {
    fn from(l: Layout) -> Self {
        let order = match l.order {
            RankOrder::TpCpDpPp => pb::RankOrder::TpCpDpPp,
            RankOrder::TpCpPpDp => pb::RankOrder::TpCpPpDp,
        };
        pb::Layout { tp: l.tp, cp: l.cp, dp: l.dp, pp: l.pp, ep: l.ep, order: order as i32 }
    }
}

impl TryFrom<pb::Layout> for Layout {
    type Error = WireError;
    fn try_from(l: pb::Layout) -> Result<Self, WireError> {
        let order = match enum_value::<pb::RankOrder>("layout.order", l.order)? {
            pb::RankOrder::TpCpDpPp => RankOrder::TpCpDpPp,
            pb::RankOrder::TpCpPpDp => RankOrder::TpCpPpDp,
            pb::RankOrder::Unspecified => return Err(WireError::unspecified("layout.order")),
        };
        for (field, v) in [("layout.tp", l.tp), ("layout.cp", l.cp), ("layout.dp", l.dp), ("layout.pp", l.pp)]
        {
            if v == 0 || v > MAX_RANKS {
                return Err(WireError::invalid(field, v, "a size from 1 to 2^20"));
            }
        }
        let world = u64::from(l.tp) * u64::from(l.cp) * u64::from(l.dp) * u64::from(l.pp);
        if world > u64::from(MAX_RANKS) {
            return Err(WireError::invalid("layout", world, "at most 2^20 ranks (tp·cp·dp·pp)"));
        }
        let dp_cp = l.dp * l.cp;
        if l.ep == 0 || !dp_cp.is_multiple_of(l.ep) {
            return Err(WireError::invalid("layout.ep", l.ep, "a divisor of dp·cp"));
        }
        Ok(Layout { tp: l.tp, cp: l.cp, dp: l.dp, pp: l.pp, ep: l.ep, order })
    }
}

fn stream_to_wire(s: Stream) -> pb::Stream {
    match s {
        Stream::Compute => pb::Stream::Compute,
        Stream::Cp => pb::Stream::Cp,
        Stream::PpSend => pb::Stream::PpSend,
        Stream::PpRecv => pb::Stream::PpRecv,
        Stream::Dp => pb::Stream::Dp,
    }
}

fn stream_from_wire(v: i32) -> Result<Stream, WireError> {
    Ok(match enum_value::<pb::Stream>("task.stream", v)? {
        pb::Stream::Compute => Stream::Compute,
        pb::Stream::Cp => Stream::Cp,
        pb::Stream::PpSend => Stream::PpSend,
        pb::Stream::PpRecv => Stream::PpRecv,
        pb::Stream::Dp => Stream::Dp,
        pb::Stream::Unspecified => return Err(WireError::unspecified("task.stream")),
    })
}

fn group_to_wire(g: GroupKind) -> pb::GroupKind {
    match g {
        GroupKind::Tp => pb::GroupKind::Tp,
        GroupKind::Cp => pb::GroupKind::Cp,
        GroupKind::Dp => pb::GroupKind::Dp,
        GroupKind::DpCp => pb::GroupKind::DpCp,
        GroupKind::Ep => pb::GroupKind::Ep,
    }
}

fn group_from_wire(v: i32) -> Result<GroupKind, WireError> {
    Ok(match enum_value::<pb::GroupKind>("collective.group", v)? {
        pb::GroupKind::Tp => GroupKind::Tp,
        pb::GroupKind::Cp => GroupKind::Cp,
        pb::GroupKind::Dp => GroupKind::Dp,
        pb::GroupKind::DpCp => GroupKind::DpCp,
        pb::GroupKind::Ep => GroupKind::Ep,
        pb::GroupKind::Unspecified => return Err(WireError::unspecified("collective.group")),
    })
}

fn collective_to_wire(c: CollectiveKind) -> pb::CollectiveKind {
    match c {
        CollectiveKind::AllReduce => pb::CollectiveKind::AllReduce,
        CollectiveKind::AllGather => pb::CollectiveKind::AllGather,
        CollectiveKind::ReduceScatter => pb::CollectiveKind::ReduceScatter,
        CollectiveKind::AllToAll => pb::CollectiveKind::AllToAll,
    }
}

fn collective_from_wire(v: i32) -> Result<CollectiveKind, WireError> {
    Ok(match enum_value::<pb::CollectiveKind>("collective.op", v)? {
        pb::CollectiveKind::AllReduce => CollectiveKind::AllReduce,
        pb::CollectiveKind::AllGather => CollectiveKind::AllGather,
        pb::CollectiveKind::ReduceScatter => CollectiveKind::ReduceScatter,
        pb::CollectiveKind::AllToAll => CollectiveKind::AllToAll,
        pb::CollectiveKind::Unspecified => return Err(WireError::unspecified("collective.op")),
    })
}

fn purpose_to_wire(p: CommPurpose) -> pb::CommPurpose {
    match p {
        CommPurpose::Tp => pb::CommPurpose::Tp,
        CommPurpose::Cp => pb::CommPurpose::Cp,
        CommPurpose::Ep => pb::CommPurpose::Ep,
        CommPurpose::Pp => pb::CommPurpose::Pp,
        CommPurpose::Dp => pb::CommPurpose::Dp,
        CommPurpose::Fsdp => pb::CommPurpose::Fsdp,
    }
}

fn purpose_from_wire(v: i32) -> Result<CommPurpose, WireError> {
    Ok(match enum_value::<pb::CommPurpose>("collective.purpose", v)? {
        pb::CommPurpose::Tp => CommPurpose::Tp,
        pb::CommPurpose::Cp => CommPurpose::Cp,
        pb::CommPurpose::Ep => CommPurpose::Ep,
        pb::CommPurpose::Pp => CommPurpose::Pp,
        pb::CommPurpose::Dp => CommPurpose::Dp,
        pb::CommPurpose::Fsdp => CommPurpose::Fsdp,
        pb::CommPurpose::Unspecified => return Err(WireError::unspecified("collective.purpose")),
    })
}

fn pass_to_wire(p: Option<Pass>) -> pb::Pass {
    match p {
        None => pb::Pass::None,
        Some(Pass::Forward) => pb::Pass::Forward,
        Some(Pass::Backward) => pb::Pass::Backward,
        Some(Pass::BackwardInput) => pb::Pass::BackwardInput,
        Some(Pass::BackwardWeight) => pb::Pass::BackwardWeight,
    }
}

fn pass_from_wire(v: i32) -> Result<Option<Pass>, WireError> {
    Ok(match enum_value::<pb::Pass>("task.pass", v)? {
        pb::Pass::None => None,
        pb::Pass::Forward => Some(Pass::Forward),
        pb::Pass::Backward => Some(Pass::Backward),
        pb::Pass::BackwardInput => Some(Pass::BackwardInput),
        pb::Pass::BackwardWeight => Some(Pass::BackwardWeight),
        pb::Pass::Unspecified => return Err(WireError::unspecified("task.pass")),
    })
}

impl From<&Task> for pb::Task {
    fn from(t: &Task) -> Self {
        let op = &t.op;
        let kind = match op.kind {
            OpKind::Compute { work } => pb::task::Kind::Compute(pb::ComputeTask { work }),
            OpKind::Collective { group, op, bytes, purpose } => {
                pb::task::Kind::Collective(pb::CollectiveTask {
                    group: group_to_wire(group) as i32,
                    op: collective_to_wire(op) as i32,
                    bytes,
                    purpose: purpose_to_wire(purpose) as i32,
                })
            }
            OpKind::Send { peer, bytes, tag } => pb::task::Kind::Send(pb::PeerTask { peer, bytes, tag }),
            OpKind::Recv { peer, bytes, tag } => pb::task::Kind::Recv(pb::PeerTask { peer, bytes, tag }),
        };
        pb::Task {
            stream: stream_to_wire(op.stream) as i32,
            kind: Some(kind),
            deps: op.deps.clone(),
            duration_s: t.duration_s,
            pass: pass_to_wire(op.tag.pass) as i32,
            micro_batch: op.tag.micro_batch,
            chunk: op.tag.chunk,
            layer: op.tag.layer,
            alloc_bytes: op.alloc_bytes,
            free_bytes: op.free_bytes,
        }
    }
}

impl TryFrom<pb::Task> for Task {
    type Error = WireError;
    fn try_from(t: pb::Task) -> Result<Self, WireError> {
        let kind = match t.kind.ok_or(WireError::Missing {
            field: "task.kind",
            expected: "one of compute, collective, send, recv",
        })? {
            pb::task::Kind::Compute(c) => OpKind::Compute { work: c.work },
            pb::task::Kind::Collective(c) => OpKind::Collective {
                group: group_from_wire(c.group)?,
                op: collective_from_wire(c.op)?,
                bytes: c.bytes,
                purpose: purpose_from_wire(c.purpose)?,
            },
            pb::task::Kind::Send(p) => OpKind::Send { peer: p.peer, bytes: p.bytes, tag: p.tag },
            pb::task::Kind::Recv(p) => OpKind::Recv { peer: p.peer, bytes: p.bytes, tag: p.tag },
        };
        if !t.duration_s.is_finite() || t.duration_s < 0.0 || t.duration_s > 1e6 {
            return Err(WireError::invalid(
                "task.duration_s",
                t.duration_s,
                "a finite number of seconds in [0, 1e6]",
            ));
        }
        let op = Op {
            stream: stream_from_wire(t.stream)?,
            kind,
            deps: t.deps,
            tag: OpTag {
                pass: pass_from_wire(t.pass)?,
                micro_batch: t.micro_batch,
                chunk: t.chunk,
                layer: t.layer,
            },
            alloc_bytes: t.alloc_bytes,
            free_bytes: t.free_bytes,
        };
        Ok(Task { op, duration_s: t.duration_s })
    }
}

impl From<&StageTasks> for pb::StageTasks {
    fn from(s: &StageTasks) -> Self {
        pb::StageTasks { stage: s.stage, tasks: s.tasks.iter().map(pb::Task::from).collect() }
    }
}

impl StageTasks {
    /// Converts a wire task list, checking that every dependency and peer stage exists (`n_stages` stages).
    pub fn from_wire(s: pb::StageTasks, n_stages: u32) -> Result<StageTasks, WireError> {
        if s.stage >= n_stages {
            return Err(WireError::invalid("stage_tasks.stage", s.stage, "a stage below layout.pp"));
        }
        let n = s.tasks.len();
        let tasks = s.tasks.into_iter().map(Task::try_from).collect::<Result<Vec<_>, _>>()?;
        for (i, t) in tasks.iter().enumerate() {
            if let Some(&d) = t.op.deps.iter().find(|&&d| d as usize >= n || d as usize == i) {
                return Err(WireError::invalid(
                    "task.deps",
                    d,
                    "the index of another task of the same stage",
                ));
            }
            if let OpKind::Send { peer, .. } | OpKind::Recv { peer, .. } = t.op.kind
                && (peer >= n_stages || peer == s.stage)
            {
                return Err(WireError::invalid("peer_task.peer", peer, "another stage below layout.pp"));
            }
        }
        Ok(StageTasks { stage: s.stage, tasks })
    }
}
