//! The event loop: every simulated rank runs its stage's program, stream by stream; collectives meet their
//! group; pipeline messages travel between stages.

use std::collections::BTreeMap;

use des::{Engine, SimTime};
use schedule::{GroupKind, Layout, OpIdx, OpKind, StepProgram, Stream};

use crate::SimError;
use crate::compute::ComputeModel;
use crate::network::{FlowTemplate, Network};
use collective::flow::collectives::{CollectiveDone, FlowCollective, FlowSim};
use collective::placement::ClusterRouter;

const N_STREAMS: usize = Stream::ALL.len();

/// When one op of one rank ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpRecord {
    /// The op (index in its stage's program).
    pub op: OpIdx,
    /// Start.
    pub start: SimTime,
    /// End.
    pub end: SimTime,
}

/// Which ranks are simulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RankMode {
    /// Every rank of the job.
    #[default]
    All,
    /// One rank per pipeline stage (tp = cp = dp = 0): exact when replicas and TP peers are symmetric, which
    /// they are on a homogeneous cluster with the analytical network. A test checks it against `All`.
    Unique,
}

/// Per-stage tables derived once from the program.
struct StageTables {
    stream_ops: [Vec<OpIdx>; N_STREAMS],
    pos: Vec<u32>,
    durations: Vec<SimTime>,
    /// With the flow model: how each inter-node collective is lowered to flows.
    flows: Vec<Option<FlowTemplate>>,
}

/// The flow model shared by every collective that crosses nodes.
pub(crate) type Flows<'c> = FlowSim<ClusterRouter<'c>>;

struct RankState {
    global: u32,
    stage: u32,
    pc: [u32; N_STREAMS],
    done: [u32; N_STREAMS],
    busy: [bool; N_STREAMS],
    mem_bytes: i64,
    peak_mem_bytes: i64,
    record: Option<Vec<OpRecord>>,
    started: Vec<SimTime>,
}

enum Event {
    /// An op of one rank ends.
    Done { rank: u32, op: OpIdx },
    /// A collective ends on every simulated member of the group led by `leader`.
    CollectiveDone { leader: u32, group: GroupKind, op: OpIdx },
}

/// What the engine measured.
pub(crate) struct RunResult {
    pub step_time: SimTime,
    pub events: u64,
    pub simulated_ranks: u32,
    /// Per simulated rank: (global rank, stage, peak dynamic bytes, records if kept).
    pub ranks: Vec<(u32, u32, i64, Option<Vec<OpRecord>>)>,
}

pub(crate) struct RunConfig {
    pub mode: RankMode,
    /// Keep op records for every rank (else only one rank per stage).
    pub record_all: bool,
    pub seed: u64,
}

struct World<'p> {
    program: &'p StepProgram,
    layout: Layout,
    tables: Vec<StageTables>,
    ranks: Vec<RankState>,
    index_of: Vec<u32>,
    /// Per group leader (global rank): collectives some members have reached, with the arrival count. A
    /// leader has at most a few in flight (one per stream), so a short list beats a map.
    rendezvous: Vec<Vec<(GroupKind, OpIdx, u32)>>,
    /// Flow-model collectives in flight, by tag: (leader, group, op).
    flow_tags: Vec<(u32, GroupKind, OpIdx)>,
    inbox: BTreeMap<(u32, u64), SimTime>,
    mode: RankMode,
}

pub(crate) fn run(
    program: &StepProgram,
    compute: &ComputeModel,
    network: &mut Network<'_>,
    mut flows: Option<&mut Flows<'_>>,
    cfg: &RunConfig,
) -> Result<RunResult, SimError> {
    let layout = program.layout;
    let mut tables = stage_tables(program, compute, network)?;
    if flows.is_some() {
        for (stage, t) in program.stages.iter().zip(tables.iter_mut()) {
            let rep = layout.rank(schedule::Coord { tp: 0, cp: 0, dp: 0, pp: stage.stage });
            for (i, op) in stage.ops.iter().enumerate() {
                if let OpKind::Collective { group, op: kind, bytes, .. } = op.kind {
                    let (leader, _) = leader_of(&layout, rep, group);
                    t.flows[i] = network.flow_template(group, leader, kind, bytes)?;
                }
            }
        }
    }
    let world_size = layout.world();
    let mut index_of = vec![u32::MAX; world_size as usize];
    let mut ranks = Vec::new();
    for r in 0..world_size {
        let c = layout.coord(r);
        let simulated = cfg.mode == RankMode::All || (c.tp == 0 && c.cp == 0 && c.dp == 0);
        if !simulated {
            continue;
        }
        index_of[r as usize] = ranks.len() as u32;
        let keep = cfg.record_all || (c.tp == 0 && c.cp == 0 && c.dp == 0);
        let n_ops = program.stages[c.pp as usize].ops.len();
        ranks.push(RankState {
            global: r,
            stage: c.pp,
            pc: [0; N_STREAMS],
            done: [0; N_STREAMS],
            busy: [false; N_STREAMS],
            mem_bytes: 0,
            peak_mem_bytes: 0,
            record: keep.then(|| Vec::with_capacity(n_ops)),
            started: if keep { vec![SimTime::ZERO; n_ops] } else { Vec::new() },
        });
    }
    let mut world = World {
        program,
        layout,
        tables,
        ranks,
        index_of,
        rendezvous: vec![Vec::new(); world_size as usize],
        flow_tags: Vec::new(),
        inbox: BTreeMap::new(),
        mode: cfg.mode,
    };
    let mut engine: Engine<Event> = Engine::new(cfg.seed);
    for i in 0..world.ranks.len() as u32 {
        world.advance(&mut engine, i, flows.as_deref_mut())?;
    }
    let mut step_time = SimTime::ZERO;
    let mut finished: Vec<CollectiveDone> = Vec::new();
    loop {
        // The flow model runs in step with the engine: its events come first when they are due first.
        if let Some(f) = flows.as_deref_mut() {
            let t_des = engine.peek_time().map(SimTime::as_secs_f64);
            if let Some(t_flow) = f.next_event_s()
                && t_des.is_none_or(|t| t_flow <= t)
            {
                f.advance_to(t_flow, &mut finished).map_err(SimError::network)?;
                for d in finished.drain(..) {
                    let (leader, group, op) = world.flow_tags[d.tag as usize];
                    engine.schedule_at(
                        SimTime::from_secs_f64(d.end_s),
                        Event::CollectiveDone { leader, group, op },
                    );
                }
                continue;
            }
        }
        let Some((at, ev)) = engine.step() else { break };
        if let Some(f) = flows.as_deref_mut() {
            f.advance_to(at.as_secs_f64(), &mut finished).map_err(SimError::network)?;
        }
        step_time = at;
        match ev {
            Event::Done { rank, op } => {
                let woken = world.finish(rank, op, at);
                world.advance(&mut engine, rank, flows.as_deref_mut())?;
                if let Some(dst) = woken {
                    world.advance(&mut engine, dst, flows.as_deref_mut())?;
                }
            }
            Event::CollectiveDone { leader, group, op } => {
                let layout = world.layout;
                let mut members = Vec::new();
                for_each_member(&layout, leader, group, |m| members.push(m));
                for m in members {
                    let idx = world.index_of[m as usize];
                    if idx != u32::MAX {
                        world.finish(idx, op, at);
                        world.advance(&mut engine, idx, flows.as_deref_mut())?;
                    }
                }
            }
        }
    }
    // Every op of every rank must have run; otherwise the program deadlocked.
    for r in &world.ranks {
        let t = &world.tables[r.stage as usize];
        for s in 0..N_STREAMS {
            if (r.done[s] as usize) < t.stream_ops[s].len() {
                let op = t.stream_ops[s][r.done[s] as usize];
                return Err(SimError::Deadlock(format!(
                    "rank {} (stage {}) is stuck at op {op} on the {} stream: {:?}",
                    r.global,
                    r.stage,
                    Stream::ALL[s].name(),
                    world.program.stages[r.stage as usize].ops[op as usize].kind
                )));
            }
        }
    }
    Ok(RunResult {
        step_time,
        events: engine.events_processed(),
        simulated_ranks: world.ranks.len() as u32,
        ranks: world.ranks.into_iter().map(|r| (r.global, r.stage, r.peak_mem_bytes, r.record)).collect(),
    })
}

/// Per-stage stream tables and op durations (every rank of a stage runs the same program at the same costs).
fn stage_tables(
    program: &StepProgram,
    compute: &ComputeModel,
    network: &mut Network<'_>,
) -> Result<Vec<StageTables>, SimError> {
    let layout = program.layout;
    let fp8 = program.plan.precision == model::Precision::Fp8;
    let mut tables = Vec::with_capacity(program.stages.len());
    for stage in &program.stages {
        let mut stream_ops: [Vec<OpIdx>; N_STREAMS] = Default::default();
        let mut pos = vec![0u32; stage.ops.len()];
        for (i, op) in stage.ops.iter().enumerate() {
            let s = op.stream.index();
            pos[i] = stream_ops[s].len() as u32;
            stream_ops[s].push(i as OpIdx);
        }
        let work_s: Vec<f64> = stage.works.iter().map(|w| compute.work_time_s(w, fp8)).collect();
        let rep = layout.rank(schedule::Coord { tp: 0, cp: 0, dp: 0, pp: stage.stage });
        let mut durations = Vec::with_capacity(stage.ops.len());
        for op in &stage.ops {
            let s = match op.kind {
                OpKind::Compute { work } => work_s[work as usize],
                OpKind::Collective { group, op: kind, bytes, .. } => {
                    let (leader, _) = leader_of(&layout, rep, group);
                    network.collective_s(group, leader, kind, bytes)?
                }
                OpKind::Send { peer, bytes, .. } => network.p2p_s(rep, layout.on_stage(rep, peer), bytes)?,
                OpKind::Recv { .. } => 0.0,
            };
            durations.push(SimTime::from_secs_f64(s));
        }
        let flows = vec![None; stage.ops.len()];
        tables.push(StageTables { stream_ops, pos, durations, flows });
    }
    Ok(tables)
}

/// Seconds each op of each stage's program takes once it starts, as the simulator costs it (a collective's
/// time counts from the last member's arrival; a receive costs nothing, its message's send carries the
/// transfer). The live emulator plays these.
pub(crate) fn op_durations(
    program: &StepProgram,
    compute: &ComputeModel,
    network: &mut Network<'_>,
) -> Result<Vec<Vec<f64>>, SimError> {
    Ok(stage_tables(program, compute, network)?
        .into_iter()
        .map(|t| t.durations.iter().map(|d| d.as_secs_f64()).collect())
        .collect())
}

/// Calls `f` on every member of the group of kind `kind` led by `leader`, in group order, without allocating.
fn for_each_member(layout: &Layout, leader: u32, kind: GroupKind, mut f: impl FnMut(u32)) {
    let c = layout.coord(leader);
    let at = |c: schedule::Coord| layout.rank(c);
    match kind {
        GroupKind::Tp => (0..layout.tp).for_each(|tp| f(at(schedule::Coord { tp, ..c }))),
        GroupKind::Cp => (0..layout.cp).for_each(|cp| f(at(schedule::Coord { cp, ..c }))),
        GroupKind::Dp => (0..layout.dp).for_each(|dp| f(at(schedule::Coord { dp, ..c }))),
        GroupKind::DpCp => {
            for dp in 0..layout.dp {
                for cp in 0..layout.cp {
                    f(at(schedule::Coord { dp, cp, ..c }));
                }
            }
        }
        GroupKind::Ep => {
            let start = c.dp * layout.cp + c.cp;
            for p in start..start + layout.ep {
                f(at(schedule::Coord { dp: p / layout.cp, cp: p % layout.cp, ..c }));
            }
        }
    }
}

/// The group's leader (its first member) and its size.
fn leader_of(layout: &Layout, rank: u32, kind: GroupKind) -> (u32, u32) {
    let c = layout.coord(rank);
    let at = |c: schedule::Coord| layout.rank(c);
    match kind {
        GroupKind::Tp => (at(schedule::Coord { tp: 0, ..c }), layout.tp),
        GroupKind::Cp => (at(schedule::Coord { cp: 0, ..c }), layout.cp),
        GroupKind::Dp => (at(schedule::Coord { dp: 0, ..c }), layout.dp),
        GroupKind::DpCp => (at(schedule::Coord { dp: 0, cp: 0, ..c }), layout.dp * layout.cp),
        GroupKind::Ep => {
            let p = c.dp * layout.cp + c.cp;
            let start = p / layout.ep * layout.ep;
            (at(schedule::Coord { dp: start / layout.cp, cp: start % layout.cp, ..c }), layout.ep)
        }
    }
}

impl World<'_> {
    fn deps_met(&self, r: &RankState, op: OpIdx) -> bool {
        let stage = &self.program.stages[r.stage as usize];
        let t = &self.tables[r.stage as usize];
        stage.ops[op as usize].deps.iter().all(|&d| {
            let s = stage.ops[d as usize].stream.index();
            r.done[s] > t.pos[d as usize]
        })
    }

    /// Starts every op that can start on rank `idx` now.
    fn advance(
        &mut self,
        engine: &mut Engine<Event>,
        idx: u32,
        mut flows: Option<&mut Flows<'_>>,
    ) -> Result<(), SimError> {
        let now = engine.now();
        for s in 0..N_STREAMS {
            let r = &self.ranks[idx as usize];
            if r.busy[s] {
                continue;
            }
            let t = &self.tables[r.stage as usize];
            let Some(&op) = t.stream_ops[s].get(r.pc[s] as usize) else { continue };
            if !self.deps_met(r, op) {
                continue;
            }
            let stage = r.stage as usize;
            let kind = self.program.stages[stage].ops[op as usize].kind;
            let duration = self.tables[stage].durations[op as usize];
            match kind {
                OpKind::Compute { .. } | OpKind::Send { .. } => {
                    self.start(idx, s, op, now);
                    engine.schedule_at(now + duration, Event::Done { rank: idx, op });
                }
                OpKind::Recv { tag, .. } => {
                    if self.inbox.remove(&(idx, tag)).is_some() {
                        self.start(idx, s, op, now);
                        engine.schedule_at(now, Event::Done { rank: idx, op });
                    }
                }
                OpKind::Collective { group, .. } => {
                    self.start(idx, s, op, now);
                    let global = self.ranks[idx as usize].global;
                    let (leader, size) = leader_of(&self.layout, global, group);
                    let expected = if self.mode == RankMode::All { size } else { 1 };
                    let waiting = &mut self.rendezvous[leader as usize];
                    let slot = match waiting.iter().position(|&(g, o, _)| g == group && o == op) {
                        Some(i) => i,
                        None => {
                            waiting.push((group, op, 0));
                            waiting.len() - 1
                        }
                    };
                    waiting[slot].2 += 1;
                    if waiting[slot].2 == expected {
                        waiting.swap_remove(slot);
                        // The collective starts when the last member arrives (now); members that arrived
                        // earlier waited, which shows as the op's longer span.
                        let template = self.tables[stage].flows[op as usize];
                        match (flows.as_deref_mut(), template) {
                            (Some(f), Some(t)) => {
                                let mut ranks = Vec::new();
                                for_each_member(&self.layout, leader, group, |m| ranks.push(m));
                                let tag = self.flow_tags.len() as u64;
                                self.flow_tags.push((leader, group, op));
                                let c = FlowCollective {
                                    ranks,
                                    op: t.op,
                                    bytes: t.bytes,
                                    algorithm: t.algorithm,
                                    config: t.config,
                                    tag,
                                };
                                f.submit(&c).map_err(SimError::network)?;
                            }
                            _ => {
                                engine
                                    .schedule_at(now + duration, Event::CollectiveDone { leader, group, op });
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn start(&mut self, idx: u32, s: usize, op: OpIdx, now: SimTime) {
        let alloc = self.program.stages[self.ranks[idx as usize].stage as usize].ops[op as usize].alloc_bytes;
        let r = &mut self.ranks[idx as usize];
        r.busy[s] = true;
        r.pc[s] += 1;
        r.mem_bytes += alloc as i64;
        r.peak_mem_bytes = r.peak_mem_bytes.max(r.mem_bytes);
        if r.record.is_some() {
            r.started[op as usize] = now;
        }
    }

    /// Ends an op; returns the rank a finished send delivered to, which may now proceed.
    fn finish(&mut self, idx: u32, op: OpIdx, at: SimTime) -> Option<u32> {
        let stage = self.ranks[idx as usize].stage as usize;
        let o = &self.program.stages[stage].ops[op as usize];
        let s = o.stream.index();
        let r = &mut self.ranks[idx as usize];
        r.busy[s] = false;
        r.done[s] += 1;
        r.mem_bytes -= o.free_bytes as i64;
        if let Some(rec) = r.record.as_mut() {
            rec.push(OpRecord { op, start: r.started[op as usize], end: at });
        }
        if let OpKind::Send { peer, tag, .. } = o.kind {
            let dst = self.layout.on_stage(r.global, peer);
            let dst_idx = self.index_of[dst as usize];
            if dst_idx != u32::MAX {
                self.inbox.insert((dst_idx, tag), at);
                return Some(dst_idx);
            }
        }
        None
    }
}
