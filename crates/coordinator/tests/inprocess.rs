//! A coordinator and its workers in one process (real gRPC on loopback): a job runs to the end, its state
//! digests are reproducible, and a worker killed mid-job is replaced without changing the final state.

use std::sync::Arc;
use std::time::Duration;

use rpc::types::{Fault, JobState};

fn security() -> rpc::net::Security {
    rpc::net::Security { token: Some("t".into()), tls: None }
}

fn quiet() -> Arc<dyn Fn(&str) + Send + Sync> {
    Arc::new(|_: &str| {})
}

fn job(steps: u32) -> coordinator::PreparedJob {
    let mut file = coordinator::parse(coordinator::DEFAULT_JOB_TOML).unwrap();
    file.steps = steps;
    // Faster than the default job: the test checks behaviour, not timing.
    file.time_scale = 2.0;
    let spec = model::preset(&file.model).unwrap();
    let cluster = topology::try_preset(&file.cluster).unwrap().unwrap();
    coordinator::prepare(&file, &spec, &cluster).unwrap()
}

async fn start_coordinator(
    max_restarts: u32,
    job: coordinator::PreparedJob,
    checkpoints: &std::path::Path,
) -> (String, tokio::task::JoinHandle<Result<coordinator::JobOutcome, coordinator::CoordinatorError>>) {
    let config = coordinator::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: None,
        nnodes: 4,
        rdzv_timeout: Duration::from_secs(30),
        heartbeat: coordinator::HeartbeatPolicy { interval: Duration::from_millis(100), misses: 3 },
        step_timeout: Duration::from_secs(30),
        hang_timeout: None,
        max_restarts,
        record_ops: true,
        checkpoint_dir: checkpoints.to_path_buf(),
        linger: false,
        security: security(),
        log: quiet(),
        self_kill: None,
    };
    let bound = coordinator::bind(config).await.unwrap();
    let url = format!("http://{}", bound.grpc_addr);
    let store = Arc::new(coordinator::MemoryStore::default());
    (url, tokio::spawn(bound.serve(Some(job), None, store, std::future::pending())))
}

fn start_worker(url: &str, name: &str) -> tokio::task::JoinHandle<Result<worker::Exit, worker::WorkerError>> {
    let config = worker::Config {
        coordinator_url: url.to_string(),
        listen: "127.0.0.1:0".parse().unwrap(),
        advertise: None,
        gpus: 1,
        backend: worker::BackendKind::Emulate,
        name: name.to_string(),
        security: security(),
        connect_timeout: Duration::from_secs(10),
        log: quiet(),
    };
    tokio::spawn(worker::run(config, std::future::pending()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_every_op_in_schedule_order_and_reproduces_its_state() {
    let mut digests = vec![];
    for _ in 0..2 {
        let job = job(3);
        let program = job.program.clone();
        let dir = tempfile::tempdir().unwrap();
        let (url, coord) = start_coordinator(0, job, dir.path()).await;
        let workers: Vec<_> = (0..4).map(|i| start_worker(&url, &format!("w{i}"))).collect();
        let outcome = coord.await.unwrap().unwrap();
        assert_eq!(outcome.state, JobState::Succeeded);
        assert_eq!(outcome.steps_done, 3);
        assert_eq!(outcome.records.len(), 3);
        for rec in &outcome.records {
            assert_eq!(rec.ranks.len(), 4);
            for r in &rec.ranks {
                let stage = &program.stages[program.layout.coord(r.rank).pp as usize];
                coordinator::check_rank_order(stage, r).unwrap();
            }
        }
        for w in workers {
            assert!(matches!(w.await.unwrap(), Ok(worker::Exit::Shutdown(_))));
        }
        digests.push(outcome.digests);
    }
    assert_eq!(digests[0], digests[1]);
    // DP replicas of the same stage start from different seeds per rank, so the digests differ by rank.
    assert_eq!(digests[0].len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_replaced_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (url, coord) = start_coordinator(0, job(5), &dir.path().join("clean")).await;
    let _clean: Vec<_> = (0..4).map(|i| start_worker(&url, &format!("c{i}"))).collect();
    let clean = coord.await.unwrap().unwrap();
    assert_eq!(clean.state, JobState::Succeeded);

    let (url, coord) = start_coordinator(1, job(5), &dir.path().join("faulty")).await;
    let workers: Vec<_> = (0..4).map(|i| start_worker(&url, &format!("f{i}"))).collect();
    // Wait for step 2, then kill the first worker and bring a replacement.
    let last = loop {
        let (ev, infos) = coordinator::client::status(&url, &security()).await.unwrap();
        if ev.steps_done >= 2 {
            break infos;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let victim = last.iter().find(|w| w.alive && w.ranks.contains(&0)).unwrap().worker_id.clone();
    let target = coordinator::client::Target::Worker(victim);
    coordinator::client::inject_fault(&url, &security(), target, Fault::Kill { during_checkpoint: false })
        .await
        .unwrap();
    let replacement = start_worker(&url, "spare");
    let outcome = coord.await.unwrap().unwrap();
    assert_eq!(outcome.state, JobState::Succeeded, "{}", outcome.message);
    assert_eq!(outcome.restarts, 1);
    assert_eq!(outcome.steps_done, 5);
    assert_eq!(outcome.digests, clean.digests, "the state after recovery differs from the fault-free run");
    // The default job checkpoints every 5 steps: the kill after step 2 lost the steps since the start.
    assert_eq!(outcome.recoveries.len(), 1, "{:#?}", outcome.recoveries);
    let r = &outcome.recoveries[0];
    assert_eq!(r.fault, "kill");
    assert!(r.detect_s >= 0.0 && r.recover_s >= r.detect_s, "{r:?}");
    assert_eq!(outcome.lost_steps, r.lost_steps);
    assert_eq!(outcome.checkpoint_step, 5);
    let mut killed = 0;
    for w in workers {
        if matches!(w.await.unwrap(), Err(worker::WorkerError::Killed)) {
            killed += 1;
        }
    }
    assert_eq!(killed, 1);
    assert!(replacement.await.unwrap().is_ok());
}
