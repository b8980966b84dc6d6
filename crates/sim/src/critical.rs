//! The critical path of a simulated step: walking back from the op that ended last, each op's start is
//! charged to whichever predecessor finished last (the previous op on its stream, a dependency, or, for a
//! receive, the send on the peer stage). Time where an op waited on something the first ranks of the stages
//! do not show (a slower group member) is charged to `wait`.

use std::collections::BTreeMap;

use schedule::{CommPurpose, OpKind, StepProgram};

use crate::engine::OpRecord;

/// What the critical path is made of, seconds by category, and how many ops lie on it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CriticalPath {
    /// Seconds by category: `compute`, `comm_<purpose>`, `wait`.
    pub seconds: BTreeMap<String, f64>,
    /// Ops on the path.
    pub ops: usize,
    /// Pipeline stages the path crosses.
    pub stages_crossed: usize,
}

fn category(program: &StepProgram, stage: u32, op: u32) -> String {
    match program.stages[stage as usize].ops[op as usize].kind {
        OpKind::Compute { .. } => "compute".to_owned(),
        OpKind::Collective { purpose, .. } => format!("comm_{}", purpose.name()),
        OpKind::Send { .. } | OpKind::Recv { .. } => format!("comm_{}", CommPurpose::Pp.name()),
    }
}

/// The critical path through the recorded first rank of every stage (`records[stage]`).
pub(crate) fn critical_path(program: &StepProgram, records: &[&[OpRecord]]) -> CriticalPath {
    // (stage, op) → (start, end) in ns.
    let mut when: Vec<Vec<Option<(u64, u64)>>> =
        program.stages.iter().map(|s| vec![None; s.ops.len()]).collect();
    for (stage, recs) in records.iter().enumerate() {
        for r in recs.iter() {
            when[stage][r.op as usize] = Some((r.start.as_nanos(), r.end.as_nanos()));
        }
    }
    // Sends by (destination stage, tag), and each op's predecessor on its stream.
    let mut sends: BTreeMap<(u32, u64), (u32, u32)> = BTreeMap::new();
    let mut stream_prev: Vec<Vec<Option<u32>>> = Vec::with_capacity(program.stages.len());
    for s in &program.stages {
        let mut last: BTreeMap<usize, u32> = BTreeMap::new();
        let mut prev = vec![None; s.ops.len()];
        for (i, o) in s.ops.iter().enumerate() {
            prev[i] = last.insert(o.stream.index(), i as u32);
            if let OpKind::Send { peer, tag, .. } = o.kind {
                sends.insert((peer, tag), (s.stage, i as u32));
            }
        }
        stream_prev.push(prev);
    }
    let Some((mut stage, mut op)) = when
        .iter()
        .enumerate()
        .flat_map(|(s, ops)| {
            ops.iter().enumerate().filter_map(move |(i, w)| w.map(|(_, e)| (e, s as u32, i as u32)))
        })
        .max()
        .map(|(_, s, i)| (s, i))
    else {
        return CriticalPath { seconds: BTreeMap::new(), ops: 0, stages_crossed: 0 };
    };
    let mut seconds: BTreeMap<String, f64> = BTreeMap::new();
    let mut n_ops = 0;
    let mut stages = std::collections::BTreeSet::new();
    while let Some((start, end)) = when[stage as usize][op as usize] {
        n_ops += 1;
        stages.insert(stage);
        *seconds.entry(category(program, stage, op)).or_default() += (end - start) as f64 * 1e-9;
        let o = &program.stages[stage as usize].ops[op as usize];
        let mut candidates: Vec<(u32, u32)> = o.deps.iter().map(|&d| (stage, d)).collect();
        candidates.extend(stream_prev[stage as usize][op as usize].map(|p| (stage, p)));
        if let OpKind::Recv { tag, .. } = o.kind
            && let Some(&send) = sends.get(&(stage, tag))
        {
            candidates.push(send);
        }
        let best = candidates
            .into_iter()
            .filter_map(|(s, i)| when[s as usize][i as usize].map(|(_, e)| (e, s, i)))
            .max();
        let Some((pred_end, s, i)) = best else { break };
        if start > pred_end {
            *seconds.entry("wait".to_owned()).or_default() += (start - pred_end) as f64 * 1e-9;
        }
        stage = s;
        op = i;
    }
    CriticalPath { seconds, ops: n_ops, stages_crossed: stages.len() }
}
