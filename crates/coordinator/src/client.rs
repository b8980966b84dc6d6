//! Client helpers for the CLI and tests: watch a job, read the status, cancel, inject a fault. They speak
//! domain types; the protobuf stays in `rpc`.

use std::time::Duration;

use rpc::pb;
use rpc::types::{Fault, JobEvent, WorkerInfo};

use crate::CoordinatorError;

async fn client(
    url: &str,
    security: &rpc::net::Security,
) -> Result<rpc::net::CoordinatorClient, CoordinatorError> {
    let channel = rpc::net::connect(url, security, Duration::from_secs(5)).await?;
    Ok(rpc::net::coordinator_client(channel, security)?)
}

fn status_error(url: &str) -> impl Fn(tonic::Status) -> CoordinatorError + '_ {
    move |s| CoordinatorError::Worker {
        worker: format!("coordinator {url}"),
        message: format!("{:?}: {}", s.code(), s.message()),
    }
}

/// Streams the job's events to `on_event` until the job reaches a final state; returns that last event.
pub async fn watch(
    url: &str,
    security: &rpc::net::Security,
    mut on_event: impl FnMut(&JobEvent),
) -> Result<JobEvent, CoordinatorError> {
    let mut c = client(url, security).await?;
    let mut stream = c.watch_job(pb::WatchJobRequest {}).await.map_err(status_error(url))?.into_inner();
    let mut last = None;
    while let Some(ev) = stream.message().await.map_err(status_error(url))? {
        let ev = JobEvent::try_from(ev).map_err(|e| CoordinatorError::Internal(e.to_string()))?;
        on_event(&ev);
        let done = ev.state.is_final();
        last = Some(ev);
        if done {
            break;
        }
    }
    last.ok_or_else(|| CoordinatorError::Internal(format!("coordinator {url} sent no job event")))
}

/// The job snapshot and the workers.
pub async fn status(
    url: &str,
    security: &rpc::net::Security,
) -> Result<(JobEvent, Vec<WorkerInfo>), CoordinatorError> {
    let mut c = client(url, security).await?;
    let s = c.get_status(pb::GetStatusRequest {}).await.map_err(status_error(url))?.into_inner();
    let job = s.job.ok_or_else(|| CoordinatorError::Internal("status without a job".into()))?;
    let job = JobEvent::try_from(job).map_err(|e| CoordinatorError::Internal(e.to_string()))?;
    Ok((job, s.workers.into_iter().map(WorkerInfo::from).collect()))
}

/// Cancels the running job.
pub async fn cancel(url: &str, security: &rpc::net::Security) -> Result<(), CoordinatorError> {
    let mut c = client(url, security).await?;
    c.cancel_job(pb::CancelJobRequest { job_id: String::new() }).await.map_err(status_error(url))?;
    Ok(())
}

/// What an injected fault hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A worker, by id.
    Worker(String),
    /// The worker(s) hosting these ranks (a partition cuts them all off together).
    Ranks(Vec<u32>),
    /// Nothing in particular (corrupting a checkpoint).
    Job,
    /// The coordinator itself (kill drills).
    Coordinator,
}

/// Injects a fault through the coordinator; returns what the coordinator did.
pub async fn inject_fault(
    url: &str,
    security: &rpc::net::Security,
    target: Target,
    fault: Fault,
) -> Result<String, CoordinatorError> {
    let mut c = client(url, security).await?;
    let (worker_id, ranks) = match target {
        Target::Worker(id) => (id, vec![]),
        Target::Ranks(r) => (String::new(), r),
        Target::Job => (String::new(), vec![]),
        Target::Coordinator => ("coordinator".to_string(), vec![]),
    };
    let reply = c
        .inject_fault(pb::InjectFaultRequest { worker_id, fault: Some(fault.into()), ranks })
        .await
        .map_err(status_error(url))?;
    Ok(reply.into_inner().detail)
}
