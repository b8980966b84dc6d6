//! Drives one job: rendezvous (wait for `nnodes` workers), rank assignment, the steps, failure handling and
//! restarts, and the journal after every step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc::net::WorkerClient;
use rpc::pb;
use rpc::types::{Assignment, JobState, RankStep, StageTasks, StepResult, Task};
use tokio::task::JoinSet;

use crate::job::PreparedJob;
use crate::journal::{self, JournalState, JournalStore};
use crate::state::Shared;
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
}

/// Runs the job to the end (or failure), journalling after every step.
pub(crate) async fn drive(
    shared: &Arc<Shared>,
    job: &PreparedJob,
    store: &dyn JournalStore,
    config: &DriveConfig,
) -> Result<JobOutcome, CoordinatorError> {
    let mut journal = load_journal(job, store)?;
    if journal.steps_done > 0 {
        (shared.log)(&format!("resuming job {} at step {} from the journal", job.id, journal.steps_done));
    }
    let mut records = Vec::new();
    let mut cancel = shared.cancel.subscribe();
    shared.publish(|e| {
        e.job_id = job.id.clone();
        e.steps_total = job.file.steps;
        e.steps_done = journal.steps_done;
        e.nnodes = config.nnodes;
        e.sim_step_time_s = job.sim_step_time_s;
        e.restarts = journal.restarts;
    });
    while journal.steps_done < journal.steps_total {
        shared.publish(|e| {
            e.state = JobState::Rendezvous;
            e.message = format!("waiting for {} workers", config.nnodes);
        });
        let members = tokio::select! {
            m = rendezvous(shared, job, &journal, config) => m?,
            _ = cancel.wait_for(|c| *c) => return Ok(outcome(job, &journal, JobState::Cancelled, "cancelled during rendezvous".into(), records)),
        };
        shared.publish(|e| {
            e.state = JobState::Running;
            e.message = format!("{} workers, {} ranks", members.len(), job.world());
        });
        match run_steps(shared, job, &members, &mut journal, store, config, &mut records).await {
            Ok(()) => {}
            Err(Stop::Cancelled) => {
                return Ok(outcome(job, &journal, JobState::Cancelled, "cancelled".into(), records));
            }
            Err(Stop::Fatal(e)) => return Err(e),
            Err(Stop::Retryable(why)) => {
                if journal.restarts >= config.max_restarts {
                    return Err(CoordinatorError::WorkerLost { why, restarts: journal.restarts });
                }
                journal.restarts += 1;
                save(store, &journal)?;
                (shared.log)(&format!(
                    "step {} failed ({why}); restart {}/{} from step {}",
                    journal.steps_done, journal.restarts, config.max_restarts, journal.steps_done
                ));
                shared.publish(|e| {
                    e.restarts = journal.restarts;
                    e.message = why.clone();
                });
            }
        }
    }
    journal.finished = true;
    save(store, &journal)?;
    let msg = format!("{} steps done", journal.steps_done);
    Ok(outcome(job, &journal, JobState::Succeeded, msg, records))
}

fn outcome(
    job: &PreparedJob,
    j: &JournalState,
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
    }
}

fn load_journal(job: &PreparedJob, store: &dyn JournalStore) -> Result<JournalState, CoordinatorError> {
    let fresh = JournalState {
        job_id: job.id.clone(),
        fingerprint: job.fingerprint.clone(),
        steps_total: job.file.steps,
        steps_done: 0,
        digests: (0..job.world()).map(|r| (r, rpc::digest::initial(job.file.seed, r))).collect(),
        step_wall_s: vec![],
        restarts: 0,
        finished: false,
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

/// Waits for `nnodes` live workers, assigns ranks in join order and sends every worker its task lists.
async fn rendezvous(
    shared: &Arc<Shared>,
    job: &PreparedJob,
    journal: &JournalState,
    config: &DriveConfig,
) -> Result<Vec<Member>, CoordinatorError> {
    let deadline = Instant::now() + config.rdzv_timeout;
    let mut changes = shared.changes.subscribe();
    let workers = loop {
        let alive = shared.alive_workers();
        shared.publish(|_| {});
        if alive.len() >= config.nnodes as usize {
            break alive.into_iter().take(config.nnodes as usize).collect::<Vec<_>>();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tokio::time::timeout(left, changes.changed()).await.is_err() {
            return Err(CoordinatorError::RendezvousTimeout {
                joined: alive.len() as u32,
                expected: config.nnodes,
                timeout_s: config.rdzv_timeout.as_secs_f64(),
            });
        }
    };
    let gpus: u32 = workers.iter().map(|(_, r)| r.gpus).sum();
    if gpus != job.world() {
        return Err(CoordinatorError::Job(format!(
            "{} workers bring {gpus} GPUs but the plan needs {} ranks (tp·cp·dp·pp): expected the workers' --gpus to add up to {}",
            workers.len(),
            job.world(),
            job.world()
        )));
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
        let ranks = ranks_of[&id].clone();
        let mut stages: Vec<u32> = ranks.iter().map(|&r| layout.coord(r).pp).collect();
        stages.sort_unstable();
        stages.dedup();
        let assignment = Assignment {
            job_id: job.id.clone(),
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
        };
        let security = config.security.clone();
        calls.spawn(async move {
            let channel = rpc::net::connect(&reg.address, &security, Duration::from_secs(10)).await?;
            let mut client = rpc::net::worker_client(channel, &security)?;
            client.assign(pb::AssignRequest::from(&assignment)).await.map_err(|s| {
                CoordinatorError::Worker { worker: id.clone(), message: s.message().to_string() }
            })?;
            Ok::<_, CoordinatorError>(Member { id, client })
        });
    }
    let mut members = Vec::new();
    while let Some(res) = calls.join_next().await {
        members.push(res.map_err(|e| CoordinatorError::Internal(e.to_string()))??);
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

/// Runs steps until the job is done or a step fails.
async fn run_steps(
    shared: &Arc<Shared>,
    job: &PreparedJob,
    members: &[Member],
    journal: &mut JournalState,
    store: &dyn JournalStore,
    config: &DriveConfig,
    records: &mut Vec<StepRecord>,
) -> Result<(), Stop> {
    let mut changes = shared.changes.subscribe();
    let mut cancel = shared.cancel.subscribe();
    while journal.steps_done < journal.steps_total {
        let step = journal.steps_done;
        let t0 = Instant::now();
        let mut calls = JoinSet::new();
        for m in members {
            let mut client = m.client.clone();
            let (id, job_id) = (m.id.clone(), job.id.clone());
            calls.spawn(async move { (id, client.run_step(pb::RunStepRequest { job_id, step }).await) });
        }
        let mut results = Vec::with_capacity(members.len());
        let deadline = tokio::time::sleep(config.step_timeout);
        tokio::pin!(deadline);
        while !calls.is_empty() {
            tokio::select! {
                Some(joined) = calls.join_next() => {
                    let (id, res) = joined.map_err(|e| Stop::Fatal(CoordinatorError::Internal(e.to_string())))?;
                    let reply = res.map_err(|s| Stop::Retryable(format!("worker {id} failed step {step}: {}", s.message())))?;
                    let result = StepResult::try_from(reply.into_inner())
                        .map_err(|e| Stop::Fatal(CoordinatorError::Worker { worker: id.clone(), message: e.to_string() }))?;
                    results.push(result);
                }
                _ = changes.changed() => {
                    if let Some(dead) = members.iter().find(|m| !shared.is_alive(&m.id)) {
                        return Err(Stop::Retryable(format!("worker {} died during step {step}", dead.id)));
                    }
                }
                _ = cancel.wait_for(|c| *c) => return Err(Stop::Cancelled),
                () = &mut deadline => {
                    return Err(Stop::Retryable(format!("step {step} exceeded the step timeout of {:.0} s", config.step_timeout.as_secs_f64())));
                }
            }
        }
        let wall_s = t0.elapsed().as_secs_f64();
        let ranks = check_step(job, step, results).map_err(Stop::Fatal)?;
        for r in &ranks {
            journal.digests.insert(r.rank, r.digest);
        }
        journal.steps_done += 1;
        journal.step_wall_s.push(wall_s);
        save(store, journal).map_err(Stop::Fatal)?;
        shared.metrics.steps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if config.record_ops {
            records.push(StepRecord { step, wall_s, ranks });
        }
        let equiv = wall_s / job.file.time_scale;
        shared.publish(|e| {
            e.steps_done = journal.steps_done;
            e.last_step_wall_s = wall_s;
            e.last_step_equiv_s = equiv;
        });
    }
    Ok(())
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
