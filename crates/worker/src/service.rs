//! The worker's gRPC service: the data plane (`Deliver`) and the coordinator's control calls.
//! Every request is validated before it touches the job; nothing a peer sends can panic the daemon.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use checkpoint::{ShardMeta, Store};
use rpc::pb;
use rpc::types::{Assignment, DataMessage, Fault};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::backend::Backend;
use crate::dataplane::DataPlane;
use crate::faults::FaultState;
use crate::job::Job;
use crate::{Event, Log};

/// State shared by the service, the session and the executor.
pub(crate) struct Shared {
    pub(crate) plane: Arc<DataPlane>,
    pub(crate) faults: Arc<FaultState>,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) job: Mutex<Option<Arc<Job>>>,
    pub(crate) step_lock: tokio::sync::Mutex<()>,
    /// Ops finished and in flight, reported with every heartbeat.
    pub(crate) activity: Arc<crate::Activity>,
    /// The step being executed, so that a new assignment can abandon it.
    pub(crate) running: Mutex<Option<tokio::task::AbortHandle>>,
    pub(crate) self_address: String,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) log: Log,
}

impl Shared {
    fn current_job(&self) -> Option<Arc<Job>> {
        self.job.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The assigned job, if it is `job_id`.
    fn job_for(&self, job_id: &str) -> Result<Arc<Job>, Status> {
        let job = self.current_job().ok_or_else(|| Status::failed_precondition("no job assigned"))?;
        if job_id != job.assignment.job_id {
            return Err(Status::failed_precondition(format!("job {job_id:?} is not assigned here")));
        }
        Ok(job)
    }

    /// Refuses the coordinator's calls while the worker is on the far side of an injected partition.
    fn reachable(&self) -> Result<(), Status> {
        if self.faults.is_partitioned() {
            return Err(Status::unavailable("network partition (injected)"));
        }
        Ok(())
    }

    /// Abandons the step in progress, if any.
    fn abandon_step(&self) {
        if let Some(h) = self.running.lock().unwrap_or_else(|p| p.into_inner()).take() {
            h.abort();
        }
    }
}

/// Aborts a task when the call that spawned it goes away (the coordinator gave up on the step).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads this worker's ranks' shards of a committed checkpoint, checking them against the manifest and the
/// digests the coordinator expects; returns the digests read.
fn restore_digests(a: &Assignment) -> Result<Vec<u64>, String> {
    let store = Store::open(&a.checkpoint_dir).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(a.ranks.len());
    for (&rank, &expected) in a.ranks.iter().zip(&a.digests) {
        let meta = store.read_shard(a.first_step, rank).map_err(|e| e.to_string())?;
        if meta.fingerprint != a.fingerprint || meta.digest != expected {
            return Err(format!(
                "rank {rank}: the shard of step {} holds digest {:016x} of job {}, expected {expected:016x}",
                a.first_step, meta.digest, meta.job_id
            ));
        }
        out.push(meta.digest);
    }
    Ok(out)
}

/// The tonic service.
pub(crate) struct WorkerService(pub(crate) Arc<Shared>);

#[tonic::async_trait]
impl pb::worker_server::Worker for WorkerService {
    async fn deliver(&self, req: Request<pb::DataMessage>) -> Result<Response<pb::DeliverResponse>, Status> {
        let msg = DataMessage::try_from(req.into_inner())?;
        let job = self.0.current_job().ok_or_else(|| Status::failed_precondition("no job assigned"))?;
        if self.0.faults.is_partitioned()
            && job.address_of(msg.src_rank).is_none_or(|a| self.0.faults.cut_off_from(a))
        {
            return Err(Status::unavailable("network partition (injected)"));
        }
        if msg.job_id != job.assignment.job_id {
            return Err(Status::failed_precondition(format!(
                "message for job {:?}, this worker runs {:?}",
                msg.job_id, job.assignment.job_id
            )));
        }
        if !job.is_local(msg.dst_rank) {
            return Err(Status::invalid_argument(format!("rank {} is not hosted here", msg.dst_rank)));
        }
        if msg.src_rank >= job.assignment.layout.world() {
            return Err(Status::invalid_argument(format!("src_rank {} is not in the job", msg.src_rank)));
        }
        if msg.payload.len() as u64 > job.assignment.max_payload_bytes {
            return Err(Status::invalid_argument(format!(
                "payload of {} bytes: expected at most {}",
                msg.payload.len(),
                job.assignment.max_payload_bytes
            )));
        }
        let key = (msg.step, msg.dst_rank, msg.src_rank, msg.channel, msg.key, msg.seq);
        self.0
            .plane
            .mailbox
            .deliver(key, msg.value)
            .map_err(|e| Status::resource_exhausted(e.to_string()))?;
        Ok(Response::new(pb::DeliverResponse {}))
    }

    async fn assign(&self, req: Request<pb::AssignRequest>) -> Result<Response<pb::AssignResponse>, Status> {
        self.0.reachable()?;
        let mut assignment = Assignment::try_from(req.into_inner())?;
        for &r in &assignment.ranks {
            if assignment.rank_addresses[r as usize] != self.0.self_address {
                return Err(Status::invalid_argument(format!(
                    "rank {r} is assigned to {}, not to this worker ({})",
                    assignment.rank_addresses[r as usize], self.0.self_address
                )));
            }
        }
        self.0.abandon_step();
        let _running = self.0.step_lock.lock().await;
        // A slow-down lasts its duration or until the job restarts, whichever comes first.
        self.0.faults.clear_slow();
        if assignment.restore {
            let a = assignment.clone();
            assignment.digests = tokio::task::spawn_blocking(move || restore_digests(&a))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| {
                    Status::data_loss(format!("restoring from {}: {e}", assignment.checkpoint_dir))
                })?;
        }
        (self.0.log)(&format!(
            "assigned job {} ranks {:?} from step {}{}",
            assignment.job_id,
            assignment.ranks,
            assignment.first_step,
            if assignment.restore { " (restored from its checkpoint)" } else { "" }
        ));
        self.0.plane.mailbox.clear();
        *self.0.job.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Arc::new(Job::new(assignment, self.0.self_address.clone(), self.0.activity.clone())));
        Ok(Response::new(pb::AssignResponse {}))
    }

    async fn run_step(
        &self,
        req: Request<pb::RunStepRequest>,
    ) -> Result<Response<pb::RunStepResponse>, Status> {
        self.0.reachable()?;
        let req = req.into_inner();
        let job = self.0.job_for(&req.job_id)?;
        let _running = self
            .0
            .step_lock
            .try_lock()
            .map_err(|_| Status::failed_precondition("a step is already running"))?;
        self.0.plane.mailbox.drop_before(req.step);
        let task = tokio::spawn(crate::exec::run_step(job, self.0.backend.clone(), req.step));
        let _abort = AbortOnDrop(task.abort_handle());
        *self.0.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
        let result = task
            .await
            .map_err(|_| Status::aborted(format!("step {} abandoned for a new assignment", req.step)))?
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::RunStepResponse::from(&result)))
    }

    async fn checkpoint(
        &self,
        req: Request<pb::CheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        self.0.reachable()?;
        let req = req.into_inner();
        let job = self.0.job_for(&req.job_id)?;
        if job.assignment.checkpoint_dir.is_empty() {
            return Err(Status::failed_precondition("the job has no checkpoint directory"));
        }
        let _running =
            self.0.step_lock.try_lock().map_err(|_| Status::failed_precondition("a step is running"))?;
        let states: Vec<(u32, u64)> = {
            let state = job.state.lock().unwrap_or_else(|p| p.into_inner());
            let mut v = Vec::with_capacity(state.len());
            for (&rank, &(digest, next)) in state.iter() {
                if next != req.step {
                    return Err(Status::failed_precondition(format!(
                        "rank {rank} has done {next} steps, asked to checkpoint after {}",
                        req.step
                    )));
                }
                v.push((rank, digest));
            }
            v
        };
        let torn = self.0.faults.take_kill_on_checkpoint();
        let a = &job.assignment;
        let (dir, job_id, fingerprint, bytes, step) =
            (a.checkpoint_dir.clone(), a.job_id.clone(), a.fingerprint.clone(), a.shard_bytes, req.step);
        let t0 = Instant::now();
        let written = tokio::task::spawn_blocking(move || {
            let store = Store::open(&dir)?;
            let mut out = Vec::with_capacity(states.len());
            for (rank, digest) in states {
                let meta = ShardMeta {
                    job_id: job_id.clone(),
                    fingerprint: fingerprint.clone(),
                    rank,
                    step,
                    digest,
                };
                if torn {
                    store.write_torn_shard(&meta, bytes)?;
                    return Ok(None);
                }
                out.push(store.write_shard(&meta, bytes)?);
            }
            Ok::<_, checkpoint::CheckpointError>(Some(out))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(e.to_string()))?;
        let Some(shards) = written else {
            (self.0.log)("killed half-way through writing a checkpoint shard (injected)");
            let _ = self.0.events.send(Event::Killed).await;
            return Err(Status::unavailable("killed while writing its checkpoint shard"));
        };
        Ok(Response::new(pb::CheckpointResponse {
            shards: shards.iter().map(pb::ShardRecord::from).collect(),
            wall_s: t0.elapsed().as_secs_f64(),
        }))
    }

    async fn inject_fault(&self, req: Request<pb::Fault>) -> Result<Response<pb::InjectFaultAck>, Status> {
        self.0.reachable()?;
        let fault = Fault::try_from(req.into_inner())?;
        (self.0.log)(&format!("injected fault: {fault:?}"));
        match fault {
            Fault::Kill { during_checkpoint: true } => self.0.faults.arm_kill_on_checkpoint(),
            Fault::Kill { during_checkpoint: false } => {
                let events = self.0.events.clone();
                tokio::spawn(async move {
                    // Answer first, then die.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    let _ = events.send(Event::Killed).await;
                });
            }
            Fault::Hang { duration_s } => self.0.faults.hang(duration_s),
            Fault::Freeze { duration_s } => self.0.faults.freeze(duration_s),
            Fault::Slow { duration_s, factor } => self.0.faults.slow(duration_s, factor),
            Fault::Partition { duration_s, peers } => {
                let mut side = peers;
                side.push(self.0.self_address.clone());
                self.0.faults.partition(duration_s, side);
            }
            Fault::CorruptCheckpoint { .. } | Fault::Drain => {
                return Err(Status::invalid_argument(
                    "corrupting a checkpoint and draining a worker are the coordinator's to do",
                ));
            }
        }
        Ok(Response::new(pb::InjectFaultAck {}))
    }

    async fn shutdown(
        &self,
        req: Request<pb::ShutdownRequest>,
    ) -> Result<Response<pb::ShutdownResponse>, Status> {
        let reason = req.into_inner().reason;
        let reason =
            if reason.len() > 512 { reason[..reason.floor_char_boundary(512)].to_string() } else { reason };
        let _ = self.0.events.send(Event::Shutdown(reason)).await;
        Ok(Response::new(pb::ShutdownResponse {}))
    }
}
