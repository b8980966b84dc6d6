//! Runs one step of a job on every rank this worker hosts: per rank, one task per stream plays the stream's
//! ops in program order, each op starting once its dependencies are done, exactly as the simulator orders them.
//!
//! Each op's result is a digest of the rank's state at the start of the step, the op index and its
//! dependencies' results (plus what it received), so it does not depend on timing. At the end of the step the
//! results are folded in program order into the rank's running digest: the job's state is a deterministic
//! function of (seed, step).

use std::sync::Arc;
use std::time::Instant;

use rpc::digest::mix;
use rpc::types::{OpTiming, RankStep, StageTasks, StepResult};
use schedule::{OpKind, Stream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::WorkerError;
use crate::backend::{Backend, CollectiveSpec, OpCtx};
use crate::job::Job;

/// Lateness against the planned schedule that counts as timer and wake-up jitter (live seconds): an op
/// starting up to this much after its planned start still ends at its planned end. A later start is a real
/// delay and moves the plan. 2 ms is well above tokio's timer granularity (1 ms) and well below any
/// injected fault or loopback message delay that matters.
pub const JITTER_ABSORBED_S: f64 = 0.002;

/// Runs `step` on every hosted rank and returns the timings and digests.
pub async fn run_step(
    job: Arc<Job>,
    backend: Arc<dyn Backend>,
    step: u32,
) -> Result<StepResult, WorkerError> {
    let t0 = Instant::now();
    let mut ranks = JoinSet::new();
    for &rank in &job.assignment.ranks {
        let (digest, next) =
            job.state.lock().unwrap_or_else(|p| p.into_inner()).get(&rank).copied().unwrap_or((0, 0));
        if next != step {
            return Err(WorkerError::Protocol(format!(
                "rank {rank} is at step {next}, asked to run step {step}"
            )));
        }
        ranks.spawn(run_rank(job.clone(), backend.clone(), step, rank, digest, t0));
    }
    let mut out = Vec::with_capacity(job.assignment.ranks.len());
    while let Some(res) = ranks.join_next().await {
        out.push(res.map_err(|e| WorkerError::Protocol(format!("rank task failed: {e}")))??);
    }
    out.sort_by_key(|r: &RankStep| r.rank);
    let mut state = job.state.lock().unwrap_or_else(|p| p.into_inner());
    for r in &out {
        state.insert(r.rank, (r.digest, step + 1));
    }
    Ok(StepResult { step, ranks: out, wall_s: t0.elapsed().as_secs_f64() })
}

/// One rank's step.
async fn run_rank(
    job: Arc<Job>,
    backend: Arc<dyn Backend>,
    step: u32,
    rank: u32,
    digest: u64,
    t0: Instant,
) -> Result<RankStep, WorkerError> {
    let layout = job.assignment.layout;
    let stage_idx = layout.coord(rank).pp;
    let stage: Arc<StageTasks> = Arc::new(
        job.assignment
            .stage(stage_idx)
            .ok_or_else(|| WorkerError::Protocol(format!("no task list for stage {stage_idx}")))?
            .clone(),
    );
    let n = stage.tasks.len();
    // Each op's result and planned end (seconds from `t0`).
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..n).map(|_| watch::channel(None::<(u64, f64)>)).unzip();
    let receivers = Arc::new(receivers);
    let senders = Arc::new(senders);
    let start = mix(digest, u64::from(step));
    let mut streams = JoinSet::new();
    for stream in Stream::ALL {
        let ops: Vec<u32> = (0..n as u32).filter(|&i| stage.tasks[i as usize].op.stream == stream).collect();
        if ops.is_empty() {
            continue;
        }
        let (job, backend, stage, receivers, senders) =
            (job.clone(), backend.clone(), stage.clone(), receivers.clone(), senders.clone());
        streams.spawn(async move {
            let mut timings = Vec::with_capacity(ops.len());
            let scale = job.assignment.time_scale;
            let mut planned = 0.0f64;
            for op in ops {
                let task = stage.tasks[op as usize].clone();
                let mut input = mix(start, u64::from(op));
                for &d in &task.op.deps {
                    let mut rx = receivers[d as usize].clone();
                    let (value, dep_end) = rx
                        .wait_for(Option::is_some)
                        .await
                        .map_err(|_| WorkerError::Protocol(format!("dependency {d} of op {op} abandoned")))?
                        .unwrap_or_default();
                    input = mix(input, value);
                    planned = planned.max(dep_end);
                }
                let begin = t0.elapsed().as_secs_f64();
                planned = planned.max(begin - JITTER_ABSORBED_S);
                let planned_start = t0 + std::time::Duration::from_secs_f64(planned.max(0.0));
                let ctx =
                    OpCtx { job: job.clone(), step, rank, op, task: task.clone(), input, planned_start };
                let waits_on_peer = matches!(task.op.kind, OpKind::Recv { .. } | OpKind::Collective { .. });
                let in_flight = job.activity.begin(waits_on_peer);
                let result = run_op(&*backend, ctx).await?;
                drop(in_flight);
                job.activity.finish();
                let end = t0.elapsed().as_secs_f64();
                timings.push(OpTiming { op, start_s: begin, end_s: end });
                planned += task.duration_s * scale;
                senders[op as usize].send_replace(Some((result, planned)));
            }
            Ok::<_, WorkerError>(timings)
        });
    }
    let mut ops = Vec::with_capacity(n);
    while let Some(res) = streams.join_next().await {
        ops.extend(res.map_err(|e| WorkerError::Protocol(format!("stream task failed: {e}")))??);
    }
    ops.sort_by(|a, b| a.end_s.total_cmp(&b.end_s).then(a.op.cmp(&b.op)));
    let mut digest = start;
    for rx in receivers.iter() {
        digest = mix(digest, rx.borrow().map_or(0, |(v, _)| v));
    }
    Ok(RankStep { rank, digest, ops })
}

/// Dispatches one op to the backend.
async fn run_op(backend: &dyn Backend, ctx: OpCtx) -> Result<u64, WorkerError> {
    let layout = ctx.job.assignment.layout;
    match ctx.task.op.kind {
        OpKind::Compute { .. } => backend.compute(ctx).await,
        OpKind::Collective { group, op, bytes, .. } => {
            let (_, members) = layout.group_of(ctx.rank, group);
            backend.collective(ctx, CollectiveSpec { group, members, kind: op, bytes }).await
        }
        OpKind::Send { peer, tag, bytes } => {
            let dst = layout.on_stage(ctx.rank, peer);
            backend.send(ctx, dst, tag, bytes).await
        }
        OpKind::Recv { peer, tag, .. } => {
            let src = layout.on_stage(ctx.rank, peer);
            backend.recv(ctx, src, tag).await
        }
    }
}
