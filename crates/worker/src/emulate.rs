//! The `emulate` backend: a compute op waits its simulated duration × the job's time scale; collectives and
//! pipeline sends really exchange messages with the peer ranks (ring steps rank to rank, over gRPC between
//! workers), with payloads scaled down, so ordering, deadlocks and slow peers are real. A collective then waits
//! out the rest of its simulated duration, so live step times are comparable with simulated ones.
//!
//! Values are deterministic: a rank contributes chunk values derived from its op input, the ring reduces them
//! with wrapping addition, and every member ends with the same reduced vector.

use std::sync::Arc;
use std::time::Duration;

use rpc::digest::mix;
use rpc::types::{Channel, DataMessage};
use schedule::CollectiveKind;

use crate::WorkerError;
use crate::backend::{Backend, BoxFuture, CollectiveSpec, OpCtx};
use crate::dataplane::DataPlane;
use crate::faults::FaultState;

/// The emulate backend.
#[derive(Debug)]
pub struct Emulate {
    plane: Arc<DataPlane>,
    faults: Arc<FaultState>,
}

impl Emulate {
    /// An emulate backend over a data plane, honouring injected faults.
    pub fn new(plane: Arc<DataPlane>, faults: Arc<FaultState>) -> Emulate {
        Emulate { plane, faults }
    }
}

/// Sleeps `seconds` of wall time accurately: tokio's timer has millisecond granularity, so short waits
/// sleep on a blocking-pool thread (about 0.1 ms precision) instead.
pub async fn sleep_s(seconds: f64) {
    if seconds.is_nan() || seconds <= 0.0 {
        return;
    }
    let d = Duration::from_secs_f64(seconds.min(1e6));
    if seconds > 0.05 {
        tokio::time::sleep(d).await;
    } else {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(d)).await;
    }
}

/// Sleeps until `deadline` (accurately, as [`sleep_s`]).
pub async fn sleep_until(deadline: std::time::Instant) {
    sleep_s(deadline.saturating_duration_since(std::time::Instant::now()).as_secs_f64()).await;
}

impl Emulate {
    /// Waits out any hang; returns when the op's simulated time starts counting: its planned start, or now
    /// after a hang.
    async fn start_of(&self, ctx: &OpCtx) -> std::time::Instant {
        if self.faults.hung_for().is_some() {
            self.faults.wait_while_hung().await;
            return std::time::Instant::now();
        }
        ctx.planned_start
    }
}

impl Backend for Emulate {
    fn name(&self) -> &'static str {
        "emulate"
    }

    fn compute(&self, ctx: OpCtx) -> BoxFuture<'_, Result<u64, WorkerError>> {
        Box::pin(async move {
            let from = self.start_of(&ctx).await;
            let scale = ctx.job.assignment.time_scale * self.faults.slow_factor();
            sleep_until(from + Duration::from_secs_f64(ctx.task.duration_s * scale)).await;
            Ok(mix(ctx.input, 0xC0))
        })
    }

    fn collective(&self, ctx: OpCtx, spec: CollectiveSpec) -> BoxFuture<'_, Result<u64, WorkerError>> {
        Box::pin(async move {
            let from = self.start_of(&ctx).await;
            let value = ring(&self.plane, &ctx, &spec).await?;
            // The simulated time covers the transfer: wait only for what the real exchange did not take.
            sleep_until(from + Duration::from_secs_f64(ctx.task.duration_s * ctx.job.assignment.time_scale))
                .await;
            Ok(value)
        })
    }

    fn send(
        &self,
        ctx: OpCtx,
        dst_rank: u32,
        tag: u64,
        bytes: u64,
    ) -> BoxFuture<'_, Result<u64, WorkerError>> {
        Box::pin(async move {
            let from = self.start_of(&ctx).await;
            // The simulator charges the transfer to the send; the message lands when it is over.
            sleep_until(from + Duration::from_secs_f64(ctx.task.duration_s * ctx.job.assignment.time_scale))
                .await;
            let msg = DataMessage {
                job_id: ctx.job.assignment.job_id.clone(),
                step: ctx.step,
                src_rank: ctx.rank,
                dst_rank,
                channel: Channel::P2p,
                key: tag,
                seq: 0,
                value: ctx.input,
                payload: vec![0; ctx.job.payload_len(bytes)],
            };
            self.plane.send(&ctx.job, msg).await?;
            Ok(ctx.input)
        })
    }

    fn recv(&self, ctx: OpCtx, src_rank: u32, tag: u64) -> BoxFuture<'_, Result<u64, WorkerError>> {
        Box::pin(async move {
            let value = self.plane.mailbox.take((ctx.step, ctx.rank, src_rank, Channel::P2p, tag, 0)).await?;
            Ok(mix(ctx.input, value))
        })
    }
}

/// One collective as ring steps between the members; returns the rank's result value.
async fn ring(plane: &DataPlane, ctx: &OpCtx, spec: &CollectiveSpec) -> Result<u64, WorkerError> {
    let n = spec.members.len();
    let p = spec.members.iter().position(|&m| m == ctx.rank).ok_or_else(|| {
        WorkerError::DataPlane(format!("rank {} is not in its own group {:?}", ctx.rank, spec.members))
    })?;
    let mut chunks: Vec<u64> = (0..n as u64).map(|c| mix(ctx.input, c)).collect();
    if n == 1 {
        return Ok(fold(&chunks));
    }
    let next = spec.members[(p + 1) % n];
    let prev = spec.members[(p + n - 1) % n];
    let payload = ctx.job.payload_len(spec.bytes / n as u64);
    let at = |i: usize, back: usize| (i + n * 2 - back) % n;
    let mut seq = 0u32;
    match spec.kind {
        CollectiveKind::AllReduce | CollectiveKind::ReduceScatter => {
            // Reduce-scatter: after n−1 steps rank p holds the full sum of chunk p+1.
            for s in 0..n - 1 {
                let got = exchange(plane, ctx, next, prev, seq, chunks[at(p, s)], payload).await?;
                let c = at(p, s + 1);
                chunks[c] = chunks[c].wrapping_add(got);
                seq += 1;
            }
            if spec.kind == CollectiveKind::ReduceScatter {
                return Ok(chunks[(p + 1) % n]);
            }
            // All-gather of the reduced chunks.
            for s in 0..n - 1 {
                let got = exchange(plane, ctx, next, prev, seq, chunks[at(p + 1, s)], payload).await?;
                chunks[at(p, s)] = got;
                seq += 1;
            }
        }
        CollectiveKind::AllGather => {
            let own = chunks[p];
            chunks = vec![0; n];
            chunks[p] = own;
            for s in 0..n - 1 {
                let got = exchange(plane, ctx, next, prev, seq, chunks[at(p, s)], payload).await?;
                chunks[at(p, s + 1)] = got;
                seq += 1;
            }
        }
        CollectiveKind::AllToAll => {
            // Pairwise exchange: in round s, send to p+s and receive from p−s.
            let mut received = vec![chunks[p]; n];
            for s in 1..n {
                let to = spec.members[(p + s) % n];
                let from = spec.members[(p + n - s) % n];
                let got = exchange(plane, ctx, to, from, seq, chunks[(p + s) % n], payload).await?;
                received[(p + n - s) % n] = got;
                seq += 1;
            }
            chunks = received;
        }
    }
    Ok(fold(&chunks))
}

/// Sends `value` to `to` and receives ring step `seq` from `from`, concurrently.
async fn exchange(
    plane: &DataPlane,
    ctx: &OpCtx,
    to: u32,
    from: u32,
    seq: u32,
    value: u64,
    payload: usize,
) -> Result<u64, WorkerError> {
    let msg = DataMessage {
        job_id: ctx.job.assignment.job_id.clone(),
        step: ctx.step,
        src_rank: ctx.rank,
        dst_rank: to,
        channel: Channel::Collective,
        key: u64::from(ctx.op),
        seq,
        value,
        payload: vec![0; payload],
    };
    let key = (ctx.step, ctx.rank, from, Channel::Collective, u64::from(ctx.op), seq);
    let (sent, got) = tokio::join!(plane.send(&ctx.job, msg), plane.mailbox.take(key));
    sent?;
    got
}

/// The digest of a vector of chunk values.
fn fold(chunks: &[u64]) -> u64 {
    chunks.iter().fold(0x5eed, |d, &c| mix(d, c))
}
