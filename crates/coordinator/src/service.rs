//! The coordinator's gRPC service: registration, heartbeat streams, job control, listings, fault forwarding.

use std::pin::Pin;
use std::sync::Arc;

use rpc::pb;
use rpc::types::{Fault, JobState, Registration};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::state::Shared;

/// The tonic service.
pub(crate) struct CoordinatorService {
    pub(crate) shared: Arc<Shared>,
    pub(crate) security: rpc::net::Security,
}

fn join(ranks: &[u32]) -> String {
    ranks.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// The target name that means the coordinator itself.
pub(crate) const COORDINATOR: &str = "coordinator";

impl CoordinatorService {
    /// A drill killing the coordinator: at once, or after the next checkpoint's shards and before its commit.
    fn kill_self(&self, fault: Fault) -> Result<Response<pb::InjectFaultResponse>, Status> {
        let Some(die) = self.shared.self_kill.clone() else {
            return Err(Status::failed_precondition("this coordinator does not take kill drills"));
        };
        let detail = match fault {
            Fault::Kill { during_checkpoint: true } => {
                self.shared.kill_before_commit.store(true, std::sync::atomic::Ordering::SeqCst);
                "the coordinator will die between the next checkpoint's shards and its manifest".to_string()
            }
            Fault::Kill { during_checkpoint: false } => {
                tokio::spawn(async move {
                    // Answer first, then die.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    die();
                });
                "the coordinator is being killed".to_string()
            }
            f => {
                return Err(Status::invalid_argument(format!(
                    "{} does not apply to the coordinator",
                    f.name()
                )));
            }
        };
        (self.shared.log)(&detail);
        Ok(Response::new(pb::InjectFaultResponse { detail }))
    }

    /// Flips a byte in one shard of a committed checkpoint of the current job (0: the latest).
    async fn corrupt_checkpoint(&self, step: u32) -> Result<Response<pb::InjectFaultResponse>, Status> {
        let job_id = self.shared.job.borrow().job_id.clone();
        if job_id.is_empty() {
            return Err(Status::failed_precondition("no job yet: nothing to corrupt"));
        }
        let store = self.shared.checkpoint_store(&job_id).map_err(|e| Status::internal(e.to_string()))?;
        let step = if step == 0 {
            store.latest().ok_or_else(|| Status::failed_precondition("no checkpoint committed yet"))?
        } else {
            step
        };
        let s2 = store.clone();
        let file = tokio::task::spawn_blocking(move || s2.corrupt(step))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::not_found(e.to_string()))?;
        let target = format!("checkpoint of step {step} ({})", file.display());
        self.shared.injected("corrupt-checkpoint", target.clone());
        (self.shared.log)(&format!("corrupted {target}"));
        Ok(Response::new(pb::InjectFaultResponse { detail: format!("corrupted one byte of {target}") }))
    }

    /// Planned maintenance. A worker hosting ranks leaves at the next step boundary, after a checkpoint of
    /// the steps done (the driver's part); a spare, which holds no state, is shut down at once.
    async fn drain(
        &self,
        targets: &[(String, String, Vec<u32>)],
    ) -> Result<Response<pb::InjectFaultResponse>, Status> {
        let mut done = Vec::new();
        for (id, address, ranks) in targets {
            if ranks.is_empty() {
                let channel = rpc::net::connect(address, &self.security, std::time::Duration::from_secs(5))
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                let mut client = rpc::net::worker_client(channel, &self.security)
                    .map_err(|e| Status::internal(e.to_string()))?;
                client.shutdown(pb::ShutdownRequest { reason: "drained (a spare)".into() }).await?;
                self.shared.retire(id, "drained (a spare, no state to save)");
                done.push(format!("spare worker {id} shut down"));
            } else {
                let target = format!("worker {id} (ranks {})", join(ranks));
                self.shared.request_drain(id, target.clone());
                (self.shared.log)(&format!("drain requested for {target}"));
                done.push(format!(
                    "{target} leaves after a checkpoint at the next step boundary; the job goes on from it \
                     without that worker"
                ));
            }
        }
        Ok(Response::new(pb::InjectFaultResponse { detail: done.join("; ") }))
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl pb::coordinator_server::Coordinator for CoordinatorService {
    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let reg = Registration::try_from(req.into_inner())?;
        let (name, gpus, address) = (reg.name.clone(), reg.gpus, reg.address.clone());
        let id = self.shared.register(reg).map_err(|e| Status::resource_exhausted(e.to_string()))?;
        (self.shared.log)(&format!("worker {id} ({name}, {gpus} GPU) registered from {address}"));
        Ok(Response::new(pb::RegisterResponse {
            worker_id: id,
            heartbeat_interval_ms: self.shared.heartbeat.interval.as_millis() as u32,
            heartbeat_misses: self.shared.heartbeat.misses,
        }))
    }

    type HeartbeatStream = BoxStream<pb::HeartbeatResponse>;

    async fn heartbeat(
        &self,
        req: Request<Streaming<pb::HeartbeatRequest>>,
    ) -> Result<Response<Self::HeartbeatStream>, Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(8);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut current: Option<(String, u64)> = None;
            let why = loop {
                match inbound.message().await {
                    Ok(Some(beat)) => {
                        if beat.worker_id.len() > rpc::MAX_NAME_BYTES {
                            break "oversized worker id".to_string();
                        }
                        if let Some((id, _)) = &current
                            && *id != beat.worker_id
                        {
                            break format!("stream switched worker id from {id} to {}", beat.worker_id);
                        }
                        let Some(generation) = shared.beat(&beat.worker_id, beat.progress, beat.busy) else {
                            let _ = tx
                                .send(Err(Status::not_found(format!(
                                    "worker {:?} is not registered or dead",
                                    beat.worker_id
                                ))))
                                .await;
                            break "unknown worker".to_string();
                        };
                        current = Some((beat.worker_id, generation));
                        if tx.send(Ok(pb::HeartbeatResponse { seq: beat.seq })).await.is_err() {
                            break "the worker stopped reading".to_string();
                        }
                    }
                    Ok(None) => break "heartbeat stream closed".to_string(),
                    Err(s) => break format!("heartbeat stream broke: {}", s.message()),
                }
            };
            if let Some((id, generation)) = current {
                shared.declare_dead(&id, Some(generation), &why);
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn submit_job(
        &self,
        req: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        let text = req.into_inner().job_toml;
        let file = crate::job::parse(&text).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let state = self.shared.job.borrow().state;
        if !matches!(state, JobState::NoJob) {
            return Err(Status::failed_precondition(format!(
                "the coordinator already has a job ({})",
                state.name()
            )));
        }
        self.shared
            .submissions
            .try_send(text)
            .map_err(|_| Status::failed_precondition("a job submission is already pending"))?;
        Ok(Response::new(pb::SubmitJobResponse { job_id: file.name }))
    }

    async fn cancel_job(
        &self,
        req: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::CancelJobResponse>, Status> {
        let id = req.into_inner().job_id;
        let current = self.shared.job.borrow().job_id.clone();
        if !id.is_empty() && id != current {
            return Err(Status::not_found(format!("job {id:?} is not running (current: {current:?})")));
        }
        self.shared.cancel.send_replace(true);
        Ok(Response::new(pb::CancelJobResponse {}))
    }

    type WatchJobStream = BoxStream<pb::JobEvent>;

    async fn watch_job(
        &self,
        _req: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let mut rx = self.shared.job.subscribe();
        let (tx, out) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let event = pb::JobEvent::from(&*rx.borrow_and_update());
                let last =
                    rpc::types::JobEvent::try_from(event.clone()).map(|e| e.state.is_final()).unwrap_or(true);
                if tx.send(Ok(event)).await.is_err() || last {
                    break;
                }
                if rx.changed().await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    async fn list_workers(
        &self,
        _req: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        let workers = self.shared.worker_infos().iter().map(pb::WorkerInfo::from).collect();
        Ok(Response::new(pb::ListWorkersResponse { workers }))
    }

    async fn inject_fault(
        &self,
        req: Request<pb::InjectFaultRequest>,
    ) -> Result<Response<pb::InjectFaultResponse>, Status> {
        let req = req.into_inner();
        let fault = Fault::try_from(req.fault.ok_or_else(|| Status::invalid_argument("fault is missing"))?)?;
        if let Fault::CorruptCheckpoint { step } = fault {
            return self.corrupt_checkpoint(step).await;
        }
        if req.worker_id == COORDINATOR {
            return self.kill_self(fault);
        }
        // The workers to hit: by id, or those hosting the ranks.
        let targets: Vec<(String, String, Vec<u32>)> = if !req.worker_id.is_empty() {
            let w = self
                .shared
                .worker_infos()
                .into_iter()
                .find(|w| w.worker_id == req.worker_id && w.alive)
                .ok_or_else(|| Status::not_found(format!("no live worker {:?}", req.worker_id)))?;
            vec![(w.worker_id, w.address, w.ranks)]
        } else if !req.ranks.is_empty() {
            let hosts = self.shared.hosts_of(&req.ranks);
            if hosts.is_empty() {
                return Err(Status::not_found(format!(
                    "no live worker hosts rank(s) {:?} (ranks are assigned once the job runs)",
                    req.ranks
                )));
            }
            hosts
        } else {
            return Err(Status::invalid_argument("name a worker_id or ranks to inject into"));
        };
        let target = targets
            .iter()
            .map(|(id, _, ranks)| format!("worker {id} (ranks {})", join(ranks)))
            .collect::<Vec<_>>()
            .join(", ");
        if fault == Fault::Drain {
            return self.drain(&targets).await;
        }
        // A partition cuts the targets off from everyone else; they still reach each other.
        let side: Vec<String> = targets.iter().map(|(_, a, _)| a.clone()).collect();
        // Recorded before sending: the fault may be detected before the call returns.
        let name = fault.name();
        self.shared.injected(name, target.clone());
        for (id, address, _) in &targets {
            let fault = match &fault {
                Fault::Partition { duration_s, .. } => {
                    Fault::Partition { duration_s: *duration_s, peers: side.clone() }
                }
                f => f.clone(),
            };
            let channel = rpc::net::connect(address, &self.security, std::time::Duration::from_secs(5))
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            let mut client = rpc::net::worker_client(channel, &self.security)
                .map_err(|e| Status::internal(e.to_string()))?;
            client.inject_fault(pb::Fault::from(fault)).await?;
            (self.shared.log)(&format!("injected {name} into worker {id}"));
        }
        let detail = match fault {
            Fault::Kill { during_checkpoint: true } => {
                format!("kill armed for the next checkpoint write of {target}")
            }
            _ => format!("{name} sent to {target}"),
        };
        Ok(Response::new(pb::InjectFaultResponse { detail }))
    }

    async fn get_status(
        &self,
        _req: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let job = pb::JobEvent::from(&*self.shared.job.borrow());
        let workers = self.shared.worker_infos().iter().map(pb::WorkerInfo::from).collect();
        Ok(Response::new(pb::StatusResponse { job: Some(job), workers }))
    }
}
