//! The worker's gRPC service: the data plane (`Deliver`) and the coordinator's control calls.
//! Every request is validated before it touches the job; nothing a peer sends can panic the daemon.

use std::sync::{Arc, Mutex};

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
    pub(crate) self_address: String,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) log: Log,
}

impl Shared {
    fn current_job(&self) -> Option<Arc<Job>> {
        self.job.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The tonic service.
pub(crate) struct WorkerService(pub(crate) Arc<Shared>);

#[tonic::async_trait]
impl pb::worker_server::Worker for WorkerService {
    async fn deliver(&self, req: Request<pb::DataMessage>) -> Result<Response<pb::DeliverResponse>, Status> {
        let msg = DataMessage::try_from(req.into_inner())?;
        let job = self.0.current_job().ok_or_else(|| Status::failed_precondition("no job assigned"))?;
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
        let assignment = Assignment::try_from(req.into_inner())?;
        for &r in &assignment.ranks {
            if assignment.rank_addresses[r as usize] != self.0.self_address {
                return Err(Status::invalid_argument(format!(
                    "rank {r} is assigned to {}, not to this worker ({})",
                    assignment.rank_addresses[r as usize], self.0.self_address
                )));
            }
        }
        let _running = self.0.step_lock.lock().await;
        (self.0.log)(&format!(
            "assigned job {} ranks {:?} from step {}",
            assignment.job_id, assignment.ranks, assignment.first_step
        ));
        self.0.plane.mailbox.clear();
        *self.0.job.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Arc::new(Job::new(assignment, self.0.self_address.clone())));
        Ok(Response::new(pb::AssignResponse {}))
    }

    async fn run_step(
        &self,
        req: Request<pb::RunStepRequest>,
    ) -> Result<Response<pb::RunStepResponse>, Status> {
        let req = req.into_inner();
        let job = self.0.current_job().ok_or_else(|| Status::failed_precondition("no job assigned"))?;
        if req.job_id != job.assignment.job_id {
            return Err(Status::failed_precondition(format!("job {:?} is not assigned here", req.job_id)));
        }
        let _running = self
            .0
            .step_lock
            .try_lock()
            .map_err(|_| Status::failed_precondition("a step is already running"))?;
        self.0.plane.mailbox.drop_before(req.step);
        let result = crate::exec::run_step(job, self.0.backend.clone(), req.step)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::RunStepResponse::from(&result)))
    }

    async fn inject_fault(&self, req: Request<pb::Fault>) -> Result<Response<pb::InjectFaultAck>, Status> {
        let fault = Fault::try_from(req.into_inner())?;
        (self.0.log)(&format!("injected fault: {fault:?}"));
        match fault {
            Fault::Kill => {
                let events = self.0.events.clone();
                tokio::spawn(async move {
                    // Answer first, then die.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    let _ = events.send(Event::Killed).await;
                });
            }
            Fault::Hang { duration_s } => self.0.faults.hang(duration_s),
            Fault::Slow { duration_s, factor } => self.0.faults.slow(duration_s, factor),
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
