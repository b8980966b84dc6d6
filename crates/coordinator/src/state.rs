//! The coordinator's shared state: the worker registry with its heartbeat bookkeeping, the current job's
//! snapshot (streamed to watchers), and counters for `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc::types::{JobEvent, JobState, Registration, WorkerInfo};
use tokio::sync::{mpsc, watch};

use crate::{CoordinatorError, Log};

/// A registered worker.
#[derive(Debug, Clone)]
pub(crate) struct WorkerEntry {
    pub(crate) reg: Registration,
    pub(crate) joined: u64,
    pub(crate) last_beat: Instant,
    pub(crate) alive: bool,
    pub(crate) generation: u64,
    pub(crate) ranks: Vec<u32>,
    /// Ops finished, as last reported, and when that count last moved.
    pub(crate) progress: u64,
    pub(crate) progressed_at: Instant,
    /// Whether one of its ops was doing its own work (not waiting for a peer) at the last beat.
    pub(crate) busy: bool,
}

/// Registered workers by id.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub(crate) workers: BTreeMap<String, WorkerEntry>,
    next: u64,
    joins: u64,
}

/// Counters exported on `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) heartbeats: AtomicU64,
    pub(crate) registrations: AtomicU64,
    pub(crate) deaths: AtomicU64,
    pub(crate) steps: AtomicU64,
}

/// Heartbeat policy.
#[derive(Debug, Clone, Copy)]
pub struct HeartbeatPolicy {
    /// Interval workers beat at.
    pub interval: Duration,
    /// Missed intervals before a worker is declared dead.
    pub misses: u32,
}

impl HeartbeatPolicy {
    /// Silence after which a worker is dead.
    pub fn deadline(&self) -> Duration {
        self.interval * self.misses
    }
}

/// A fault injected through the coordinator, waiting to be detected.
#[derive(Debug, Clone)]
pub(crate) struct Injected {
    /// Its kind (`kill`, `hang`, ...).
    pub(crate) fault: String,
    /// What it hit.
    pub(crate) target: String,
    /// When it was sent.
    pub(crate) at: Instant,
}

/// A worker asked to leave at the next step boundary (planned maintenance).
#[derive(Debug, Clone)]
pub(crate) struct DrainRequest {
    /// The worker.
    pub(crate) worker_id: String,
    /// It and its ranks, for the record.
    pub(crate) target: String,
    /// When it was asked.
    pub(crate) at: Instant,
}

/// Everything the service, the HTTP endpoint and the driver share.
pub(crate) struct Shared {
    /// Where jobs keep their checkpoints (one subdirectory per job id).
    pub(crate) checkpoint_root: std::path::PathBuf,
    /// Faults injected and not yet matched with a detection, oldest first.
    pub(crate) injected: Mutex<Vec<Injected>>,
    /// Workers asked to drain, oldest first; the driver takes them at the next step boundary.
    pub(crate) drains: Mutex<Vec<DrainRequest>>,
    pub(crate) registry: Mutex<Registry>,
    /// Bumped on every registration and death: wakes the rendezvous and the driver.
    pub(crate) changes: watch::Sender<u64>,
    pub(crate) job: watch::Sender<JobEvent>,
    pub(crate) submissions: mpsc::Sender<String>,
    pub(crate) cancel: watch::Sender<bool>,
    pub(crate) metrics: Metrics,
    pub(crate) heartbeat: HeartbeatPolicy,
    pub(crate) max_workers: usize,
    pub(crate) log: Log,
    pub(crate) started: Instant,
    /// How a drill kills the coordinator (see `Config::self_kill`).
    pub(crate) self_kill: Option<Arc<dyn Fn() + Send + Sync>>,
    /// A drill armed the coordinator to die after the next checkpoint's shards are written, before its
    /// manifest is committed.
    pub(crate) kill_before_commit: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Registers (or re-registers) a worker; returns its id.
    pub(crate) fn register(&self, reg: Registration) -> Result<String, CoordinatorError> {
        let mut r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let id = if !reg.previous_id.is_empty() && r.workers.contains_key(&reg.previous_id) {
            reg.previous_id.clone()
        } else {
            let alive = r.workers.values().filter(|w| w.alive).count();
            if alive >= self.max_workers {
                return Err(CoordinatorError::Full(self.max_workers));
            }
            // Forget dead workers beyond the cap so that churn cannot grow the registry without bound.
            if r.workers.len() >= self.max_workers * 2 {
                r.workers.retain(|_, w| w.alive);
            }
            loop {
                let candidate = format!("w{}", r.next);
                r.next += 1;
                if !r.workers.contains_key(&candidate) {
                    break candidate;
                }
            }
        };
        let joined = r.joins;
        r.joins += 1;
        let generation = r.workers.get(&id).map_or(0, |w| w.generation + 1);
        r.workers.insert(
            id.clone(),
            WorkerEntry {
                reg,
                joined,
                last_beat: now,
                alive: true,
                generation,
                ranks: vec![],
                progress: 0,
                progressed_at: now,
                busy: false,
            },
        );
        drop(r);
        self.metrics.registrations.fetch_add(1, Ordering::Relaxed);
        self.changes.send_modify(|c| *c += 1);
        Ok(id)
    }

    /// Records a heartbeat with the worker's progress; returns the worker's generation, or `None` when it is
    /// unknown or dead.
    pub(crate) fn beat(&self, id: &str, progress: u64, busy: bool) -> Option<u64> {
        let mut r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let w = r.workers.get_mut(id).filter(|w| w.alive)?;
        let now = Instant::now();
        w.last_beat = now;
        if progress != w.progress {
            w.progress = progress;
            w.progressed_at = now;
        }
        w.busy = busy;
        self.metrics.heartbeats.fetch_add(1, Ordering::Relaxed);
        Some(w.generation)
    }

    /// Declares a worker dead (of the given generation, when known); returns whether it was alive.
    pub(crate) fn declare_dead(&self, id: &str, generation: Option<u64>, why: &str) -> bool {
        let mut r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let Some(w) = r.workers.get_mut(id) else { return false };
        if !w.alive || generation.is_some_and(|g| g != w.generation) {
            return false;
        }
        w.alive = false;
        drop(r);
        self.metrics.deaths.fetch_add(1, Ordering::Relaxed);
        (self.log)(&format!("worker {id} is dead: {why}"));
        self.changes.send_modify(|c| *c += 1);
        true
    }

    /// Declares dead every worker silent for longer than the heartbeat deadline.
    pub(crate) fn sweep(&self) {
        let deadline = self.heartbeat.deadline();
        let now = Instant::now();
        let silent: Vec<(String, u64, f64)> = {
            let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
            r.workers
                .iter()
                .filter(|(_, w)| w.alive && now.duration_since(w.last_beat) > deadline)
                .map(|(id, w)| (id.clone(), w.generation, now.duration_since(w.last_beat).as_secs_f64()))
                .collect()
        };
        for (id, generation, silent_s) in silent {
            let why = format!(
                "no heartbeat for {silent_s:.2} s ({} missed intervals of {} ms)",
                self.heartbeat.misses,
                self.heartbeat.interval.as_millis()
            );
            self.declare_dead(&id, Some(generation), &why);
        }
    }

    /// The checkpoint store of a job.
    pub(crate) fn checkpoint_store(
        &self,
        job_id: &str,
    ) -> Result<checkpoint::Store, checkpoint::CheckpointError> {
        checkpoint::Store::open(self.checkpoint_root.join(job_id))
    }

    /// Records an injected fault.
    pub(crate) fn injected(&self, fault: &str, target: String) {
        let entry = Injected { fault: fault.to_string(), target, at: Instant::now() };
        self.injected.lock().unwrap_or_else(|p| p.into_inner()).push(entry);
    }

    /// Asks for a worker to be drained at the next step boundary (once).
    pub(crate) fn request_drain(&self, worker_id: &str, target: String) {
        let mut v = self.drains.lock().unwrap_or_else(|p| p.into_inner());
        if !v.iter().any(|d| d.worker_id == worker_id) {
            v.push(DrainRequest { worker_id: worker_id.to_string(), target, at: Instant::now() });
        }
    }

    /// Takes every pending drain request.
    pub(crate) fn take_drains(&self) -> Vec<DrainRequest> {
        std::mem::take(&mut *self.drains.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Takes a drained worker out of the registry without counting it as a death.
    pub(crate) fn retire(&self, id: &str, why: &str) {
        let mut r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let Some(w) = r.workers.get_mut(id) else { return };
        if !w.alive {
            return;
        }
        w.alive = false;
        drop(r);
        (self.log)(&format!("worker {id} leaves: {why}"));
        self.changes.send_modify(|c| *c += 1);
    }

    /// Takes the oldest injected fault of one of `kinds`, if any.
    pub(crate) fn take_injected(&self, kinds: &[&str]) -> Option<Injected> {
        let mut v = self.injected.lock().unwrap_or_else(|p| p.into_inner());
        let i = v.iter().position(|f| kinds.contains(&f.fault.as_str()))?;
        Some(v.remove(i))
    }

    /// The ranks each live worker hosts, and its address.
    pub(crate) fn hosts_of(&self, ranks: &[u32]) -> Vec<(String, String, Vec<u32>)> {
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        r.workers
            .iter()
            .filter(|(_, w)| w.alive && w.ranks.iter().any(|x| ranks.contains(x)))
            .map(|(id, w)| (id.clone(), w.reg.address.clone(), w.ranks.clone()))
            .collect()
    }

    /// When none of `ids` has made progress for longer than `timeout`: how long, and the stuck ones (busy with
    /// their own work, or silent; the others wait for them).
    /// Quiet time counts from `since` at the earliest (the call's start: nothing progresses between steps).
    pub(crate) fn stalled(
        &self,
        ids: &[String],
        since: Instant,
        timeout: Duration,
    ) -> Option<(f64, Vec<String>)> {
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let members: Vec<&WorkerEntry> = ids.iter().filter_map(|id| r.workers.get(id)).collect();
        let last = members.iter().map(|w| w.progressed_at).max()?.max(since);
        let quiet = last.elapsed();
        if quiet <= timeout {
            return None;
        }
        // The stuck: those busy with their own work, and those whose heartbeats stopped (more than 1.5 intervals
        // without one: a frozen machine, whose last report still says "waiting" and whose deadline is not up).
        let silent_after = self.heartbeat.interval.mul_f64(1.5);
        let stuck = ids
            .iter()
            .filter(|id| r.workers.get(*id).is_some_and(|w| w.busy || w.last_beat.elapsed() > silent_after))
            .cloned()
            .collect();
        Some((quiet.as_secs_f64(), stuck))
    }

    /// Alive workers in the order they joined.
    pub(crate) fn alive_workers(&self) -> Vec<(String, Registration)> {
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = r
            .workers
            .iter()
            .filter(|(_, w)| w.alive)
            .map(|(id, w)| (w.joined, id.clone(), w.reg.clone()))
            .collect();
        v.sort_by_key(|(j, _, _)| *j);
        v.into_iter().map(|(_, id, reg)| (id, reg)).collect()
    }

    /// Whether a worker is alive.
    pub(crate) fn is_alive(&self, id: &str) -> bool {
        self.registry.lock().unwrap_or_else(|p| p.into_inner()).workers.get(id).is_some_and(|w| w.alive)
    }

    /// Records the ranks assigned to workers (clearing everyone else's).
    pub(crate) fn set_ranks(&self, ranks: &BTreeMap<String, Vec<u32>>) {
        let mut r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        for (id, w) in r.workers.iter_mut() {
            w.ranks = ranks.get(id).cloned().unwrap_or_default();
        }
    }

    /// The registry as listed to clients.
    pub(crate) fn worker_infos(&self) -> Vec<WorkerInfo> {
        let now = Instant::now();
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        r.workers
            .iter()
            .map(|(id, w)| WorkerInfo {
                worker_id: id.clone(),
                name: w.reg.name.clone(),
                gpus: w.reg.gpus,
                backend: w.reg.backend.clone(),
                address: w.reg.address.clone(),
                alive: w.alive,
                ranks: w.ranks.clone(),
                since_last_beat_s: now.duration_since(w.last_beat).as_secs_f64(),
            })
            .collect()
    }

    /// Updates the job snapshot (and the alive-worker count in it).
    pub(crate) fn publish(&self, f: impl FnOnce(&mut JobEvent)) {
        let alive = self.alive_workers().len() as u32;
        self.job.send_modify(|e| {
            f(e);
            e.workers = alive;
        });
    }
}

/// The snapshot before any job.
pub(crate) fn no_job(nnodes: u32) -> JobEvent {
    JobEvent {
        job_id: String::new(),
        state: JobState::NoJob,
        steps_done: 0,
        steps_total: 0,
        workers: 0,
        nnodes,
        last_step_wall_s: 0.0,
        last_step_equiv_s: 0.0,
        sim_step_time_s: 0.0,
        message: String::new(),
        restarts: 0,
        checkpoint_step: 0,
        lost_steps: 0,
        recoveries: vec![],
    }
}

/// Periodically declares silent workers dead.
pub(crate) async fn monitor(shared: Arc<Shared>) {
    let period = (shared.heartbeat.interval / 4).max(Duration::from_millis(5));
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        shared.sweep();
    }
}
