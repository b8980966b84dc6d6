//! The worker's side of the coordinator protocol: register (retrying until the coordinator answers), then
//! heartbeat on one stream; when the stream breaks (the coordinator restarted or the network blipped),
//! register again under the previous id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc::net::CoordinatorClient;
use rpc::pb;
use rpc::types::Registration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::WorkerError;
use crate::service::Shared;

/// How the session behaves.
#[derive(Debug, Clone)]
pub(crate) struct SessionConfig {
    pub(crate) coordinator_url: String,
    pub(crate) security: rpc::net::Security,
    pub(crate) registration: Registration,
    /// How long to keep trying to (re)register before giving up.
    pub(crate) connect_timeout: Duration,
}

/// Runs until the coordinator cannot be reached for `connect_timeout`.
pub(crate) async fn run(shared: Arc<Shared>, config: SessionConfig) -> Result<(), WorkerError> {
    let mut registration = config.registration.clone();
    loop {
        let (client, reply) = register(&shared, &config, &registration).await?;
        (shared.log)(&format!(
            "registered with {} as {} (heartbeat every {} ms)",
            config.coordinator_url, reply.worker_id, reply.heartbeat_interval_ms
        ));
        registration.previous_id = reply.worker_id.clone();
        let interval = Duration::from_millis(u64::from(reply.heartbeat_interval_ms.clamp(10, 60_000)));
        let why = heartbeat(&shared, client, &reply.worker_id, interval).await;
        (shared.log)(&format!("lost the coordinator ({why}); registering again"));
    }
}

async fn register(
    shared: &Shared,
    config: &SessionConfig,
    registration: &Registration,
) -> Result<(CoordinatorClient, pb::RegisterResponse), WorkerError> {
    let deadline = Instant::now() + config.connect_timeout;
    let mut backoff = Duration::from_millis(50);
    let mut last_error;
    loop {
        let attempt = async {
            let channel =
                rpc::net::connect(&config.coordinator_url, &config.security, Duration::from_secs(5)).await?;
            let mut client = rpc::net::coordinator_client(channel, &config.security)?;
            let reply = client.register(pb::RegisterRequest::from(registration)).await.map_err(|s| {
                WorkerError::Rejected { code: format!("{:?}", s.code()), message: s.message().to_string() }
            })?;
            Ok::<_, WorkerError>((client, reply.into_inner()))
        };
        match attempt.await {
            Ok(ok) => return Ok(ok),
            // A wrong token or a malformed registration will not fix itself.
            Err(WorkerError::Rejected { code, message })
                if code == "Unauthenticated" || code == "InvalidArgument" =>
            {
                return Err(WorkerError::Rejected { code, message });
            }
            Err(e) => last_error = e.to_string(),
        }
        if Instant::now() + backoff > deadline {
            return Err(WorkerError::CoordinatorLost {
                url: config.coordinator_url.clone(),
                waited_s: config.connect_timeout.as_secs_f64(),
                last_error,
            });
        }
        (shared.log)(&format!(
            "coordinator not ready ({last_error}); retrying in {} ms",
            backoff.as_millis()
        ));
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Beats until the stream breaks; returns why.
async fn heartbeat(
    shared: &Shared,
    mut client: CoordinatorClient,
    worker_id: &str,
    interval: Duration,
) -> String {
    let (tx, rx) = mpsc::channel(4);
    let mut inbound = match client.heartbeat(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(s) => return format!("heartbeat refused: {}", s.message()),
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if shared.faults.silent() {
                    continue;
                }
                seq += 1;
                let beat = pb::HeartbeatRequest {
                    worker_id: worker_id.to_string(),
                    seq,
                    progress: shared.activity.finished(),
                    busy: shared.activity.busy(),
                };
                if tx.send(beat).await.is_err() {
                    return "heartbeat stream closed".into();
                }
            }
            msg = inbound.message() => match msg {
                Ok(Some(_)) => {}
                Ok(None) => return "the coordinator closed the heartbeat stream".into(),
                Err(s) => return format!("heartbeat stream failed: {}", s.message()),
            }
        }
    }
}
