//! Drives one job: rendezvous (wait for `nnodes` workers), restore from the newest checkpoint that verifies,
//! rank assignment, the steps, checkpoints, failure detection and restarts, with the journal written after
//! every step and every checkpoint.
//!
//! Recovery is always from a committed checkpoint: a lost worker takes its ranks' state with it, and after a
//! coordinator restart nobody's in-memory state is trusted. Steps run since that checkpoint are lost and run
//! again; the job's state being a function of (seed, step), they give the same digests the second time.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc::net::WorkerClient;
use rpc::pb;
use rpc::types::{Assignment, JobState, RankStep, Recovery, Registration, StageTasks, StepResult, Task};
use tokio::task::JoinSet;

use crate::job::PreparedJob;
use crate::journal::{self, JournalState, JournalStore};
use crate::state::{DrainRequest, Shared};
use crate::{CoordinatorError, JobOutcome, StepRecord};

/// How the driver behaves.
#[derive(Debug, Clone)]
pub(crate) struct DriveConfig {
    pub(crate) nnodes: u32,
    pub(crate) rdzv_timeout: Duration,
    pub(crate) step_timeout: Duration,
    pub(crate) max_restarts: u32,
    pub(crate) record_ops: bool,
    pub(crate) security: rpc::net::Security,
    /// No progress on any worker of a running step for this long is a hang (`None`: twice the step's planned
    /// live length, at least 1 s).
    pub(crate) hang_timeout: Option<Duration>,
}

/// A worker taking part in the job.
struct Member {
    id: String,
    client: WorkerClient,
}

/// Why a step attempt stopped.
enum Stop {
    /// A worker died or a call failed in a way a restart may fix.
    Retryable(String),
    /// Cancelled by a client.
    Cancelled,
    /// Something a restart will not fix.
    Fatal(CoordinatorError),
    /// Workers left as asked (planned maintenance), after a checkpoint of every step done.
    Drained(Vec<DrainRequest>),
}

/// A rank whose compute, measured against the simulator's durations, is more than this many times slower
/// than the (lower) median rank's is a straggler. Relative to the other ranks, so that a loaded machine,
/// which slows everyone, raises no alarm.
const STRAGGLER_RATIO: f64 = 2.0;

/// Failures being recovered from: indices into `journal.recoveries`, and when each began.
#[derive(Default)]
struct Open {
    failures: Vec<(usize, Instant)>,
    straggler: Option<(usize, Instant)>,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Runs the job to the end (or failure), journalling after every step.
pub(crate) async fn drive(
    shared: &Arc<Shared>,
    job: &PreparedJob,
    store: &dyn JournalStore,
    config: &DriveConfig,
) -> Result<JobOutcome, CoordinatorError> {
    let ckpt = shared
        .checkpoint_store(&job.id)
        .map_err(|e| CoordinatorError::Job(format!("checkpoint directory: {e}")))?;
    let mut journal = load_journal(job, store)?;
    if journal.steps_done > 0 {
        (shared.log)(&format!(
            "resuming job {}: the journal has {} steps done; restoring from the newest checkpoint",
            job.id, journal.steps_done
        ));
    }
    let mut records = Vec::new();
    let mut open = Open::default();
    let mut cancel = shared.cancel.subscribe();
    shared.publish(|e| {
        e.job_id = job.id.clone();
        e.steps_total = job.file.steps;
        e.steps_done = journal.steps_done;
        e.nnodes = config.nnodes;
        e.sim_step_time_s = job.sim_step_time_s;
        e.restarts = journal.restarts;
        e.checkpoint_step = journal.checkpoint_step;
        e.lost_steps = journal.lost_steps;
        e.recoveries = journal.recoveries.clone();
    });
    // Also on a fresh start: a job restarted from scratch picks up its own newest checkpoint.
    let mut restore_needed = true;
    while journal.steps_done < journal.steps_total {
        shared.publish(|e| {
            e.state = JobState::Rendezvous;
            e.message = format!("waiting for {} workers", config.nnodes);
        });
        let workers = tokio::select! {
            m = wait_for_workers(shared, config) => m?,
            _ = cancel.wait_for(|c| *c) => return Ok(outcome(job, &journal, &ckpt, JobState::Cancelled, "cancelled during rendezvous".into(), records)),
        };
        if restore_needed {
            restore(shared, job, &ckpt, &mut journal, &mut open).await?;
            save(store, &journal)?;
            restore_needed = false;
        }
        journal.rounds += 1;
        save(store, &journal)?;
        let run_id = format!("{}.r{}", job.id, journal.rounds);
        let result = match assign(shared, job, &run_id, &ckpt, &journal, workers, config).await {
            Ok(members) => {
                shared.publish(|e| {
                    e.state = JobState::Running;
                    e.message = format!("{} workers, {} ranks", members.len(), job.world());
                });
                run_steps(
                    shared,
                    job,
                    &run_id,
                    &ckpt,
                    &members,
                    &mut journal,
                    &mut open,
                    store,
                    config,
                    &mut records,
                )
                .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {}
            Err(Stop::Cancelled) => {
                return Ok(outcome(job, &journal, &ckpt, JobState::Cancelled, "cancelled".into(), records));
            }
            Err(Stop::Fatal(e)) => return Err(e),
            Err(Stop::Drained(drained)) => {
                // Not a failure: no restart is spent, and the checkpoint just committed holds every step done.
                let now = Instant::now();
                for d in drained {
                    journal.recoveries.push(Recovery {
                        fault: "drain".into(),
                        target: d.target,
                        cause: "planned drain: checkpoint at the step boundary, then shut down".into(),
                        detect_s: now.duration_since(d.at).as_secs_f64(),
                        recover_s: -1.0,
                        restored_step: journal.steps_done,
                        lost_steps: 0,
                        skipped: vec![],
                        detected_unix_s: unix_now(),
                    });
                    open.failures.push((journal.recoveries.len() - 1, d.at));
                }
                restore_needed = true;
                save(store, &journal)?;
                shared.publish(|e| {
                    e.message =
                        "drained; restarting from the checkpoint without the drained worker(s)".into();
                    e.recoveries = journal.recoveries.clone();
                });
            }
            Err(Stop::Retryable(why)) => {
                record_failure(shared, &mut journal, &mut open, &why);
                if journal.restarts >= config.max_restarts {
                    save(store, &journal)?;
                    return Err(CoordinatorError::WorkerLost { why, restarts: journal.restarts });
                }
                journal.restarts += 1;
                restore_needed = true;
                save(store, &journal)?;
                (shared.log)(&format!(
                    "step {} failed ({why}); restart {}/{} from the newest checkpoint",
                    journal.steps_done + 1,
                    journal.restarts,
                    config.max_restarts
                ));
                shared.publish(|e| {
                    e.restarts = journal.restarts;
                    e.message = why.clone();
                    e.recoveries = journal.recoveries.clone();
                });
            }
        }
    }
    journal.finished = true;
    save(store, &journal)?;
    let msg = format!("{} steps done", journal.steps_done);
    Ok(outcome(job, &journal, &ckpt, JobState::Succeeded, msg, records))
}

fn outcome(
    job: &PreparedJob,
    j: &JournalState,
    ckpt: &checkpoint::Store,
    state: JobState,
    message: String,
    records: Vec<StepRecord>,
) -> JobOutcome {
    JobOutcome {
        job_id: job.id.clone(),
        state,
        message,
        steps_done: j.steps_done,
        steps_total: j.steps_total,
        step_wall_s: j.step_wall_s.clone(),
        time_scale: job.file.time_scale,
        sim_step_time_s: job.sim_step_time_s,
        restarts: j.restarts,
        digests: j.digests.clone(),
        records,
        checkpoint_dir: ckpt.root().to_path_buf(),
        checkpoint_step: j.checkpoint_step,
        checkpoints: j.checkpoints,
        lost_steps: j.lost_steps,
        recoveries: j.recoveries.clone(),
    }
}

fn initial_digests(job: &PreparedJob) -> BTreeMap<u32, u64> {
    (0..job.world()).map(|r| (r, rpc::digest::initial(job.file.seed, r))).collect()
}

fn load_journal(job: &PreparedJob, store: &dyn JournalStore) -> Result<JournalState, CoordinatorError> {
    let fresh = JournalState {
        job_id: job.id.clone(),
        fingerprint: job.fingerprint.clone(),
        steps_total: job.file.steps,
        steps_done: 0,
        digests: initial_digests(job),
        step_wall_s: vec![],
        restarts: 0,
        finished: false,
        checkpoint_step: 0,
        checkpoints: 0,
        lost_steps: 0,
        rounds: 0,
        recoveries: vec![],
    };
    let Some(bytes) = store.load().map_err(CoordinatorError::Journal)? else { return Ok(fresh) };
    let state = journal::decode(&bytes)?;
    if state.fingerprint != job.fingerprint {
        return Err(CoordinatorError::Journal(format!(
            "the journal is for job {} (fingerprint {}…), not {}: remove it to start over",
            state.job_id,
            &state.fingerprint[..state.fingerprint.len().min(8)],
            job.id
        )));
    }
    Ok(state)
}

fn save(store: &dyn JournalStore, j: &JournalState) -> Result<(), CoordinatorError> {
    store.save(&journal::encode(j)).map_err(CoordinatorError::Journal)
}

/// Records a detected failure, matched with the fault injected through the coordinator that caused it.
fn record_failure(shared: &Shared, journal: &mut JournalState, open: &mut Open, why: &str) {
    let now = Instant::now();
    let injected = shared.take_injected(&["kill", "hang", "freeze", "partition"]);
    // A failure while still recovering from another one (the next rendezvous picked a worker that had just
    // died, say) belongs to that recovery.
    if injected.is_none()
        && let Some(&(i, _)) = open.failures.last()
    {
        let r = &mut journal.recoveries[i];
        r.cause = format!("{}; then {why}", r.cause);
        return;
    }
    let (fault, target, detect_s, began) = match injected {
        Some(f) => (f.fault, f.target, now.duration_since(f.at).as_secs_f64(), f.at),
        None => ("lost".to_string(), String::new(), -1.0, now),
    };
    journal.recoveries.push(Recovery {
        fault,
        target,
        cause: why.to_string(),
        detect_s,
        recover_s: -1.0,
        restored_step: 0,
        lost_steps: 0,
        skipped: vec![],
        detected_unix_s: unix_now(),
    });
    open.failures.push((journal.recoveries.len() - 1, began));
}

/// Rolls the job back to the newest checkpoint that verifies (or to the start), removing newer step
/// directories (torn or corrupt ones, and those past the restore point).
async fn restore(
    shared: &Shared,
    job: &PreparedJob,
    ckpt: &checkpoint::Store,
    journal: &mut JournalState,
    open: &mut Open,
) -> Result<(), CoordinatorError> {
    let (store, fingerprint, world) = (ckpt.clone(), job.fingerprint.clone(), job.world());
    let (found, removed) = tokio::task::spawn_blocking(move || {
        let found = store.find_restorable(&fingerprint, world);
        let removed = store.discard_after(found.manifest.as_ref().map(|m| m.step));
        (found, removed)
    })
    .await
    .map_err(|e| CoordinatorError::Internal(e.to_string()))?;
    let removed = removed.map_err(|e| CoordinatorError::Job(format!("checkpoint directory: {e}")))?;
    let (step, digests) = match &found.manifest {
        Some(m) => (m.step, m.shards.iter().map(|s| (s.rank, s.digest)).collect()),
        None => (0, initial_digests(job)),
    };
    let lost = journal.steps_done.saturating_sub(step);
    if journal.steps_done > 0 || step > 0 {
        (shared.log)(&format!(
            "restoring from {}; {lost} step(s) to redo{}",
            if step > 0 {
                format!("the checkpoint of step {step}")
            } else {
                "the start (no checkpoint yet)".into()
            },
            if removed.is_empty() {
                String::new()
            } else {
                format!("; removed newer step directories {removed:?}")
            }
        ));
    }
    let skipped: Vec<String> = found.skipped.iter().map(|(s, why)| format!("step {s}: {why}")).collect();
    for why in &skipped {
        (shared.log)(&format!("checkpoint passed over: {why}"));
    }
    journal.lost_steps += lost;
    journal.steps_done = step;
    journal.step_wall_s.truncate(step as usize);
    journal.digests = digests;
    journal.checkpoint_step = step;
    for &(i, _) in &open.failures {
        let r = &mut journal.recoveries[i];
        r.restored_step = step;
        r.lost_steps = lost;
        r.skipped.clone_from(&skipped);
    }
    if let Some((newest_bad, why)) = found.skipped.first()
        && let Some(f) = shared.take_injected(&["corrupt-checkpoint"])
    {
        let now = Instant::now();
        journal.recoveries.push(Recovery {
            fault: f.fault,
            target: f.target,
            cause: why.clone(),
            detect_s: now.duration_since(f.at).as_secs_f64(),
            recover_s: -1.0,
            restored_step: step,
            lost_steps: newest_bad.saturating_sub(step),
            skipped: skipped.clone(),
            detected_unix_s: unix_now(),
        });
        open.failures.push((journal.recoveries.len() - 1, now));
    }
    shared.publish(|e| {
        e.steps_done = step;
        e.checkpoint_step = step;
        e.lost_steps = journal.lost_steps;
        e.recoveries = journal.recoveries.clone();
    });
    Ok(())
}

/// Waits for `nnodes` live workers; the first to have joined are taken, later ones stay as spares.
async fn wait_for_workers(
    shared: &Arc<Shared>,
    config: &DriveConfig,
) -> Result<Vec<(String, Registration)>, CoordinatorError> {
    let deadline = Instant::now() + config.rdzv_timeout;
    let mut changes = shared.changes.subscribe();
    loop {
        let alive = shared.alive_workers();
        shared.publish(|_| {});
        if alive.len() >= config.nnodes as usize {
            return Ok(alive.into_iter().take(config.nnodes as usize).collect());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tokio::time::timeout(left, changes.changed()).await.is_err() {
            return Err(CoordinatorError::RendezvousTimeout {
                joined: alive.len() as u32,
                expected: config.nnodes,
                timeout_s: config.rdzv_timeout.as_secs_f64(),
            });
        }
    }
}

/// Assigns ranks in join order and sends every worker its task lists (and, past step 0, the checkpoint to
/// restore from).
async fn assign(
    shared: &Arc<Shared>,
    job: &PreparedJob,
    run_id: &str,
    ckpt: &checkpoint::Store,
    journal: &JournalState,
    workers: Vec<(String, Registration)>,
    config: &DriveConfig,
) -> Result<Vec<Member>, Stop> {
    let gpus: u32 = workers.iter().map(|(_, r)| r.gpus).sum();
    if gpus != job.world() {
        return Err(Stop::Fatal(CoordinatorError::Job(format!(
            "{} workers bring {gpus} GPUs but the plan needs {} ranks (tp·cp·dp·pp): expected the workers' --gpus to add up to {}",
            workers.len(),
            job.world(),
            job.world()
        ))));
    }
    let mut rank_addresses = Vec::with_capacity(gpus as usize);
    let mut ranks_of = BTreeMap::new();
    for (id, reg) in &workers {
        let first = rank_addresses.len() as u32;
        rank_addresses.extend(std::iter::repeat_n(reg.address.clone(), reg.gpus as usize));
        ranks_of.insert(id.clone(), (first..first + reg.gpus).collect::<Vec<u32>>());
    }
    shared.set_ranks(&ranks_of);
    let layout = job.program.layout;
    let mut calls = JoinSet::new();
    for (id, reg) in workers {
        let shared = shared.clone();
        let ranks = ranks_of[&id].clone();
        let mut stages: Vec<u32> = ranks.iter().map(|&r| layout.coord(r).pp).collect();
        stages.sort_unstable();
        stages.dedup();
        let assignment = Assignment {
            job_id: run_id.to_string(),
            seed: job.file.seed,
            time_scale: job.file.time_scale,
            payload_scale: job.file.payload_scale,
            max_payload_bytes: job.file.max_payload_bytes,
            layout,
            digests: ranks.iter().map(|r| journal.digests.get(r).copied().unwrap_or_default()).collect(),
            ranks,
            stages: stages.iter().map(|&s| stage_tasks(job, s)).collect(),
            rank_addresses: rank_addresses.clone(),
            first_step: journal.steps_done,
            checkpoint_dir: ckpt.root().to_string_lossy().into_owned(),
            restore: journal.steps_done > 0,
            shard_bytes: job.shard_bytes,
            fingerprint: job.fingerprint.clone(),
        };
        let security = config.security.clone();
        calls.spawn(async move {
            let fail = |message: String| Stop::Retryable(format!("assigning worker {id}: {message}"));
            let channel = match rpc::net::connect(&reg.address, &security, Duration::from_secs(10)).await {
                Ok(c) => c,
                Err(e) => {
                    let why = format!("assigning worker {id}: {e}");
                    shared.declare_dead(&id, None, &why);
                    return Err(Stop::Retryable(why));
                }
            };
            let mut client = rpc::net::worker_client(channel, &security).map_err(|e| fail(e.to_string()))?;
            if let Err(s) = client.assign(pb::AssignRequest::from(&assignment)).await {
                let why = format!("assigning worker {id}: {}", s.message());
                blame(&shared, &id, &s, &why);
                return Err(Stop::Retryable(why));
            }
            Ok::<_, Stop>(Member { id, client })
        });
    }
    let mut members = Vec::new();
    while let Some(res) = calls.join_next().await {
        members.push(res.map_err(|e| Stop::Fatal(CoordinatorError::Internal(e.to_string())))??);
    }
    members.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(members)
}

/// The task list of a stage: the simulator's program with its durations.
fn stage_tasks(job: &PreparedJob, stage: u32) -> StageTasks {
    let program = &job.program.stages[stage as usize];
    let durations = &job.durations_s[stage as usize];
    StageTasks {
        stage,
        tasks: program
            .ops
            .iter()
            .zip(durations)
            .map(|(op, &d)| Task { op: op.clone(), duration_s: d })
            .collect(),
    }
}

/// A worker that cannot be reached (its process is gone, or it is cut off) is taken out of the registry
/// until it registers again, so that the next rendezvous does not pick it. Errors a reachable worker
/// reports (a peer it could not reach, say) blame no one.
fn blame(shared: &Shared, id: &str, status: &tonic::Status, why: &str) {
    if status.code() == tonic::Code::Unavailable {
        shared.declare_dead(id, None, why);
    }
}

/// Calls every member at once and waits for all answers, giving up (retryably) when a member dies, a call
/// fails or `timeout` passes.
async fn call_all<T, F, Fut>(
    shared: &Shared,
    members: &[Member],
    what: &str,
    timeout: Duration,
    hang_timeout: Option<Duration>,
    call: F,
) -> Result<Vec<T>, Stop>
where
    T: Send + 'static,
    F: Fn(WorkerClient) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send + 'static,
{
    let mut changes = shared.changes.subscribe();
    let mut cancel = shared.cancel.subscribe();
    let mut calls = JoinSet::new();
    for m in members {
        let (id, fut) = (m.id.clone(), call(m.client.clone()));
        calls.spawn(async move { (id, fut.await) });
    }
    let mut out = Vec::with_capacity(members.len());
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    let mut watchdog = tokio::time::interval(Duration::from_millis(50));
    let started = Instant::now();
    while !calls.is_empty() {
        tokio::select! {
            Some(joined) = calls.join_next() => {
                let (id, res) = joined.map_err(|e| Stop::Fatal(CoordinatorError::Internal(e.to_string())))?;
                let reply = res.map_err(|s| {
                    let why = format!("worker {id} failed {what}: {}", s.message());
                    blame(shared, &id, &s, &why);
                    Stop::Retryable(why)
                })?;
                out.push(reply.into_inner());
            }
            _ = changes.changed() => {
                if let Some(dead) = members.iter().find(|m| !shared.is_alive(&m.id)) {
                    return Err(Stop::Retryable(format!("worker {} died during {what}", dead.id)));
                }
            }
            _ = cancel.wait_for(|c| *c) => return Err(Stop::Cancelled),
            _ = watchdog.tick(), if hang_timeout.is_some() => {
                if let Some((quiet, stuck)) = hang_timeout.and_then(|t| shared.stalled(&ids, started, t)) {
                    let why = if stuck.is_empty() {
                        format!("no progress for {quiet:.2} s in {what}; every worker waits for a peer")
                    } else {
                        format!(
                            "no progress for {quiet:.2} s in {what}; stuck in its own work or silent: {}",
                            stuck.join(", ")
                        )
                    };
                    for id in &stuck {
                        shared.declare_dead(id, None, &format!("hung ({why})"));
                    }
                    return Err(Stop::Retryable(why));
                }
            }
            () = &mut deadline => {
                return Err(Stop::Retryable(format!("{what} exceeded the step timeout of {:.0} s", timeout.as_secs_f64())));
            }
        }
    }
    Ok(out)
}

/// Runs steps until the job is done or a step fails, checkpointing every `checkpoint.every` steps.
#[allow(clippy::too_many_arguments)]
async fn run_steps(
    shared: &Arc<Shared>,
    job: &PreparedJob,
    run_id: &str,
    ckpt: &checkpoint::Store,
    members: &[Member],
    journal: &mut JournalState,
    open: &mut Open,
    store: &dyn JournalStore,
    config: &DriveConfig,
    records: &mut Vec<StepRecord>,
) -> Result<(), Stop> {
    while journal.steps_done < journal.steps_total {
        let step = journal.steps_done;
        let t0 = Instant::now();
        let hang_timeout = config.hang_timeout.unwrap_or_else(|| {
            Duration::from_secs_f64((2.0 * job.sim_step_time_s * job.file.time_scale).max(1.0))
        });
        let replies = call_all(
            shared,
            members,
            &format!("step {step}"),
            config.step_timeout,
            Some(hang_timeout),
            |mut c| {
                let job_id = run_id.to_string();
                async move { c.run_step(pb::RunStepRequest { job_id, step }).await }
            },
        )
        .await?;
        let results = replies
            .into_iter()
            .map(StepResult::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Stop::Fatal(CoordinatorError::Schedule(e.to_string())))?;
        let wall_s = t0.elapsed().as_secs_f64();
        let ranks = check_step(job, step, results).map_err(Stop::Fatal)?;
        for r in &ranks {
            journal.digests.insert(r.rank, r.digest);
        }
        journal.steps_done += 1;
        journal.step_wall_s.push(wall_s);
        for (i, began) in open.failures.drain(..) {
            journal.recoveries[i].recover_s = began.elapsed().as_secs_f64();
        }
        watch_stragglers(shared, job, &ranks, journal, open);
        save(store, journal).map_err(Stop::Fatal)?;
        shared.metrics.steps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let equiv = wall_s / job.file.time_scale;
        shared.publish(|e| {
            e.steps_done = journal.steps_done;
            e.last_step_wall_s = wall_s;
            e.last_step_equiv_s = equiv;
            e.recoveries = journal.recoveries.clone();
        });
        if config.record_ops {
            records.push(StepRecord { step, wall_s, ranks });
        }
        let done = journal.steps_done;
        if done.is_multiple_of(job.file.checkpoint.every) || done == journal.steps_total {
            checkpoint(shared, job, run_id, ckpt, members, journal, store, config).await?;
        }
        // Drain requests for workers no longer in the job are dropped.
        let drains: Vec<DrainRequest> = shared
            .take_drains()
            .into_iter()
            .filter(|d| members.iter().any(|m| m.id == d.worker_id))
            .collect();
        if !drains.is_empty() && done < journal.steps_total {
            drain(shared, job, run_id, ckpt, members, journal, store, config, &drains).await?;
            return Err(Stop::Drained(drains));
        }
    }
    Ok(())
}

/// Lets the requested members leave: commits a checkpoint of every step done (unless the last one is it),
/// then shuts them down and takes them out of the registry.
#[allow(clippy::too_many_arguments)]
async fn drain(
    shared: &Shared,
    job: &PreparedJob,
    run_id: &str,
    ckpt: &checkpoint::Store,
    members: &[Member],
    journal: &mut JournalState,
    store: &dyn JournalStore,
    config: &DriveConfig,
    drains: &[DrainRequest],
) -> Result<(), Stop> {
    if journal.checkpoint_step != journal.steps_done {
        checkpoint(shared, job, run_id, ckpt, members, journal, store, config).await?;
    }
    for d in drains {
        if let Some(m) = members.iter().find(|m| m.id == d.worker_id) {
            let reason = format!("drained after the checkpoint of step {}", journal.steps_done);
            if let Err(e) = m.client.clone().shutdown(pb::ShutdownRequest { reason }).await {
                (shared.log)(&format!(
                    "worker {} did not take its shutdown ({e}); it is left out anyway",
                    m.id
                ));
            }
        }
        shared.retire(&d.worker_id, "drained");
    }
    Ok(())
}

/// Has every member write its shards of the state after `journal.steps_done` steps, then commits the
/// checkpoint (manifest by rename, then `latest`) and prunes old ones.
#[allow(clippy::too_many_arguments)]
async fn checkpoint(
    shared: &Shared,
    job: &PreparedJob,
    run_id: &str,
    ckpt: &checkpoint::Store,
    members: &[Member],
    journal: &mut JournalState,
    store: &dyn JournalStore,
    config: &DriveConfig,
) -> Result<(), Stop> {
    let step = journal.steps_done;
    let t0 = Instant::now();
    let replies = call_all(
        shared,
        members,
        &format!("the checkpoint of step {step}"),
        config.step_timeout,
        None,
        |mut c| {
            let job_id = run_id.to_string();
            async move { c.checkpoint(pb::CheckpointRequest { job_id, step }).await }
        },
    )
    .await?;
    let mut shards = Vec::with_capacity(job.world() as usize);
    for reply in replies {
        for s in reply.shards {
            shards.push(
                checkpoint::ShardRecord::try_from(s)
                    .map_err(|e| Stop::Retryable(format!("a shard record of step {step}: {e}")))?,
            );
        }
    }
    shards.sort_by_key(|s| s.rank);
    if shared.kill_before_commit.swap(false, std::sync::atomic::Ordering::SeqCst)
        && let Some(die) = &shared.self_kill
    {
        (shared.log)(&format!("killed (drill) with the shards of step {step} written and no manifest"));
        die();
    }
    let manifest = checkpoint::Manifest {
        format: checkpoint::MANIFEST_FORMAT.to_string(),
        job_id: job.id.clone(),
        fingerprint: job.fingerprint.clone(),
        step,
        world: job.world(),
        shards,
    };
    let (store_c, keep) = (ckpt.clone(), job.file.checkpoint.keep as usize);
    let bytes = manifest.bytes();
    tokio::task::spawn_blocking(move || {
        store_c.commit(&manifest)?;
        store_c.prune(keep)
    })
    .await
    .map_err(|e| Stop::Fatal(CoordinatorError::Internal(e.to_string())))?
    .map_err(|e| Stop::Retryable(format!("committing the checkpoint of step {step}: {e}")))?;
    journal.checkpoint_step = step;
    journal.checkpoints += 1;
    save(store, journal).map_err(Stop::Fatal)?;
    (shared.log)(&format!(
        "checkpoint of step {step} committed: {} shards, {bytes} bytes in {:.1} ms",
        job.world(),
        t0.elapsed().as_secs_f64() * 1e3
    ));
    shared.publish(|e| e.checkpoint_step = step);
    Ok(())
}

/// Marks a rank whose compute took more than [`STRAGGLER_RATIO`] × the simulator's durations as a straggler
/// (a slow fault), and the straggling as over once no rank is that slow.
fn watch_stragglers(
    shared: &Shared,
    job: &PreparedJob,
    ranks: &[RankStep],
    journal: &mut JournalState,
    open: &mut Open,
) {
    let layout = job.program.layout;
    let mut ratios: Vec<(u32, f64)> = Vec::with_capacity(ranks.len());
    for r in ranks {
        let stage = layout.coord(r.rank).pp as usize;
        let ops = &job.program.stages[stage].ops;
        let (mut live, mut sim) = (0.0, 0.0);
        for t in &r.ops {
            // Compute kernels only: with blocking pipeline exchanges a receive on the compute stream waits for
            // a peer, which says nothing about this rank's speed.
            if matches!(ops[t.op as usize].kind, schedule::OpKind::Compute { .. }) {
                live += t.end_s - t.start_s;
                sim += job.durations_s[stage][t.op as usize];
            }
        }
        if sim > 0.0 {
            ratios.push((r.rank, live / (sim * job.file.time_scale)));
        }
    }
    if ratios.len() < 2 {
        return;
    }
    let mut sorted: Vec<f64> = ratios.iter().map(|&(_, x)| x).collect();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[(sorted.len() - 1) / 2];
    let Some(&(rank, worst)) = ratios.iter().max_by(|a, b| a.1.total_cmp(&b.1)) else { return };
    let ratio = if median > 0.0 { worst / median } else { 0.0 };
    match open.straggler {
        None if ratio > STRAGGLER_RATIO => {
            let now = Instant::now();
            let injected = shared.take_injected(&["slow"]);
            let began = injected.as_ref().map_or(now, |f| f.at);
            journal.recoveries.push(Recovery {
                fault: injected.as_ref().map_or("slow".to_string(), |f| f.fault.clone()),
                target: injected.map_or(format!("rank {rank}"), |f| f.target),
                cause: format!(
                    "rank {rank} computed {ratio:.2}× slower than the median rank (against simulated durations) in step {}",
                    journal.steps_done - 1
                ),
                detect_s: if began == now { -1.0 } else { now.duration_since(began).as_secs_f64() },
                recover_s: -1.0,
                // Nothing is restored: the job carries on at the straggler's pace.
                restored_step: journal.steps_done,
                lost_steps: 0,
                skipped: vec![],
                detected_unix_s: unix_now(),
            });
            (shared.log)(&format!("straggler: rank {rank} computes {ratio:.2}× slower than the median rank"));
            open.straggler = Some((journal.recoveries.len() - 1, began));
        }
        Some((i, began)) if ratio <= STRAGGLER_RATIO => {
            journal.recoveries[i].recover_s = began.elapsed().as_secs_f64();
            (shared.log)("straggling over: every rank computes at its simulated speed again");
            open.straggler = None;
        }
        _ => {}
    }
}

/// Checks that every rank reported exactly once and ran exactly its stage's ops, each stream in program order,
/// each op after its dependencies.
pub(crate) fn check_step(
    job: &PreparedJob,
    step: u32,
    results: Vec<StepResult>,
) -> Result<Vec<RankStep>, CoordinatorError> {
    let layout = job.program.layout;
    let mut by_rank: BTreeMap<u32, RankStep> = BTreeMap::new();
    for res in results {
        if res.step != step {
            return Err(CoordinatorError::Schedule(format!(
                "a worker answered step {} for step {step}",
                res.step
            )));
        }
        for r in res.ranks {
            let rank = r.rank;
            if by_rank.insert(rank, r).is_some() {
                return Err(CoordinatorError::Schedule(format!("rank {rank} reported twice in step {step}")));
            }
        }
    }
    if by_rank.len() != job.world() as usize || by_rank.keys().next_back().is_some_and(|&r| r >= job.world())
    {
        return Err(CoordinatorError::Schedule(format!(
            "{} ranks reported step {step}: expected {}",
            by_rank.len(),
            job.world()
        )));
    }
    for r in by_rank.values() {
        let stage = &job.program.stages[layout.coord(r.rank).pp as usize];
        check_rank_order(stage, r)
            .map_err(|e| CoordinatorError::Schedule(format!("rank {} step {step}: {e}", r.rank)))?;
    }
    Ok(by_rank.into_values().collect())
}

/// The schedule check for one rank.
pub fn check_rank_order(stage: &schedule::StageProgram, r: &RankStep) -> Result<(), String> {
    let n = stage.ops.len();
    if r.ops.len() != n {
        return Err(format!("ran {} ops, its stage has {n}", r.ops.len()));
    }
    let mut end_of = vec![f64::NAN; n];
    let mut last_on_stream: BTreeMap<schedule::Stream, (u32, f64)> = BTreeMap::new();
    let mut by_start: Vec<_> = r.ops.clone();
    by_start.sort_by(|a, b| a.start_s.total_cmp(&b.start_s).then(a.op.cmp(&b.op)));
    for t in &by_start {
        let i = t.op as usize;
        if i >= n || !end_of[i].is_nan() {
            return Err(format!("op {} is not in its stage or ran twice", t.op));
        }
        end_of[i] = t.end_s;
        let stream = stage.ops[i].stream;
        if let Some(&(prev, prev_end)) = last_on_stream.get(&stream)
            && (prev > t.op || prev_end > t.start_s)
        {
            return Err(format!(
                "on stream {} op {} ran after op {prev}: not program order",
                stream.name(),
                t.op
            ));
        }
        last_on_stream.insert(stream, (t.op, t.end_s));
    }
    for t in &r.ops {
        for &d in &stage.ops[t.op as usize].deps {
            if end_of[d as usize] > t.start_s {
                return Err(format!("op {} started before its dependency {d} ended", t.op));
            }
        }
    }
    Ok(())
}
