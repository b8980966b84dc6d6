//! Lowering a collective to stages of point-to-point transfers (see `collectives` for what each algorithm
//! becomes).

use crate::error::CollectiveError;
use crate::flow::collectives::FlowCollective;
use crate::flow::fabric::Router;
use crate::op::{Algorithm, Op};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum End {
    Gpu(u32),
    ReduceUp,
    ReduceDown,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Transfer {
    pub(crate) src: u32,
    pub(crate) dst: End,
    pub(crate) bytes: f64,
    /// Step latencies this flow carries beyond its own step (pipeline fill).
    pub(crate) extra_steps: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stage {
    /// `steps` synchronous steps; in each, every ring's rank i sends `bytes_per_flow` to rank i+1.
    Rings { rings: Vec<Vec<u32>>, steps: u32, bytes_per_flow: f64 },
    /// One phase with these transfers.
    Once(Vec<Transfer>),
}

/// Lowers a collective to stages of flows (see the module docs).
pub(crate) fn lower<R: Router>(router: &R, c: &FlowCollective) -> Result<Vec<Stage>, CollectiveError> {
    let n = c.ranks.len();
    if n < 2 {
        return Err(CollectiveError::BadGroup {
            n_ranks: n,
            reason: "a collective needs at least 2 ranks".into(),
        });
    }
    let mut order = c.ranks.clone();
    order.sort_by_key(|g| (router.node_of(*g), *g));
    if order.windows(2).any(|w| w[0] == w[1]) {
        return Err(CollectiveError::BadGroup {
            n_ranks: n,
            reason: "a GPU appears twice in the group".into(),
        });
    }
    let s = c.bytes as f64;
    let nf = n as f64;
    let channels = c.config.channels.max(1);
    let unsupported = |why: &str| CollectiveError::Unsupported {
        algorithm: c.algorithm.name().into(),
        op: c.op.name().into(),
        reason: why.into(),
    };
    let ring_steps = |op: Op| -> Result<u32, CollectiveError> {
        match op {
            Op::AllReduce => Ok(2 * (n as u32 - 1)),
            Op::AllGather | Op::ReduceScatter => Ok(n as u32 - 1),
            _ => Err(unsupported("the ring lowering covers all-reduce, all-gather and reduce-scatter")),
        }
    };
    let stages = match (c.algorithm, c.op) {
        (_, Op::SendRecv) => vec![Stage::Once(vec![Transfer {
            src: c.ranks[0],
            dst: End::Gpu(c.ranks[1]),
            bytes: s,
            extra_steps: 0.0,
        }])],
        (_, Op::Broadcast | Op::Reduce) => {
            let chain = order
                .windows(2)
                .map(|w| Transfer { src: w[0], dst: End::Gpu(w[1]), bytes: s, extra_steps: nf - 2.0 })
                .collect();
            vec![Stage::Once(chain)]
        }
        (_, Op::AllToAll) => {
            let mut pairs = Vec::with_capacity(n * (n - 1));
            for &src in &order {
                for &dst in &order {
                    if src != dst {
                        pairs.push(Transfer { src, dst: End::Gpu(dst), bytes: s / nf, extra_steps: 0.0 });
                    }
                }
            }
            vec![Stage::Once(pairs)]
        }
        (Algorithm::Ring | Algorithm::Pat | Algorithm::Direct, op) => {
            let rings = (0..channels).map(|c| rail_aligned_ring(router, &order, c as usize)).collect();
            vec![Stage::Rings { rings, steps: ring_steps(op)?, bytes_per_flow: s / nf / channels as f64 }]
        }
        (Algorithm::Tree, Op::AllReduce) => {
            let depth = (usize::BITS - n.leading_zeros()) as f64;
            let mut edges = Vec::new();
            for rotation in [0, 1] {
                let at = |i: usize| order[(i + rotation) % n];
                for i in 1..n {
                    let (child, parent) = (at(i), at((i - 1) / 2));
                    let half = s / 2.0;
                    let extra = 2.0 * depth - 1.0;
                    edges.push(Transfer {
                        src: child,
                        dst: End::Gpu(parent),
                        bytes: half,
                        extra_steps: extra,
                    });
                    edges.push(Transfer {
                        src: parent,
                        dst: End::Gpu(child),
                        bytes: half,
                        extra_steps: extra,
                    });
                }
            }
            vec![Stage::Once(edges)]
        }
        (Algorithm::Tree, _) => return Err(unsupported("tree runs all-reduce only")),
        (Algorithm::Nvls, op) => {
            let node = router.node_of(order[0]);
            if order.iter().any(|g| router.node_of(*g) != node) {
                return Err(unsupported("in-switch reduction is modelled inside one node only"));
            }
            let per_gpu = match op {
                Op::AllReduce => s,
                Op::AllGather | Op::ReduceScatter => s * (nf - 1.0) / nf,
                _ => return Err(unsupported("nvls runs all-reduce, all-gather and reduce-scatter")),
            };
            let mut flows = Vec::with_capacity(2 * n);
            for &gpu in &order {
                flows.push(Transfer { src: gpu, dst: End::ReduceUp, bytes: per_gpu, extra_steps: 0.0 });
                flows.push(Transfer { src: gpu, dst: End::ReduceDown, bytes: per_gpu, extra_steps: 0.0 });
            }
            vec![Stage::Once(flows)]
        }
        (Algorithm::Hierarchical | Algorithm::NvlsTree, op) => hierarchical(router, &order, op, s, channels)
            .ok_or_else(|| {
                unsupported("hierarchical needs the same number (≥ 2) of ranks on each of ≥ 2 nodes")
            })?,
    };
    Ok(stages)
}

/// Intra-node rings (one per node) and rail rings (one per local index) for the hierarchical algorithm.
fn hierarchical<R: Router>(router: &R, order: &[u32], op: Op, s: f64, channels: u32) -> Option<Vec<Stage>> {
    let mut nodes: Vec<Vec<u32>> = Vec::new();
    for &gpu in order {
        match nodes.last_mut() {
            Some(last) if router.node_of(last[0]) == router.node_of(gpu) => last.push(gpu),
            _ => nodes.push(vec![gpu]),
        }
    }
    let ppn = nodes[0].len();
    let n_nodes = nodes.len();
    if n_nodes < 2 || ppn < 2 || nodes.iter().any(|g| g.len() != ppn) {
        return None;
    }
    let rails: Vec<Vec<u32>> = (0..ppn).map(|r| nodes.iter().map(|g| g[r]).collect()).collect();
    let replicate =
        |rings: &[Vec<u32>]| -> Vec<Vec<u32>> { (0..channels).flat_map(|_| rings.iter().cloned()).collect() };
    let (nodes, rails) = (replicate(&nodes), replicate(&rails));
    let (p, nn) = (ppn as f64, n_nodes as f64 * channels as f64);
    let intra = |steps| Stage::Rings { rings: nodes.clone(), steps, bytes_per_flow: s / p / channels as f64 };
    let stages = match op {
        Op::AllReduce => vec![
            intra(ppn as u32 - 1),
            Stage::Rings { rings: rails, steps: 2 * (n_nodes as u32 - 1), bytes_per_flow: s / p / nn },
            intra(ppn as u32 - 1),
        ],
        Op::AllGather => vec![
            Stage::Rings { rings: rails, steps: n_nodes as u32 - 1, bytes_per_flow: s / p / nn },
            intra(ppn as u32 - 1),
        ],
        Op::ReduceScatter => vec![
            intra(ppn as u32 - 1),
            Stage::Rings { rings: rails, steps: n_nodes as u32 - 1, bytes_per_flow: s / p / nn },
        ],
        _ => return None,
    };
    Some(stages)
}

/// The flat ring for one channel, arranged so that every node-to-node hop stays on one rail: node k is entered at
/// local GPU `(c + k) mod ppn` and left from local GPU `(c + k + 1) mod ppn`, the GPU through which the next node
/// is entered (NCCL builds its inter-node rings the same way, one NIC per channel).
fn rail_aligned_ring<R: Router>(router: &R, order: &[u32], channel: usize) -> Vec<u32> {
    let mut nodes: Vec<&[u32]> = Vec::new();
    let mut start = 0;
    for i in 1..=order.len() {
        if i == order.len() || router.node_of(order[i]) != router.node_of(order[start]) {
            nodes.push(&order[start..i]);
            start = i;
        }
    }
    if nodes.len() == 1 {
        return order.to_vec();
    }
    let mut ring = Vec::with_capacity(order.len());
    for (k, gpus) in nodes.iter().enumerate() {
        let ppn = gpus.len();
        let enter = (channel + k) % ppn;
        let leave = (channel + k + 1) % ppn;
        ring.push(gpus[enter]);
        ring.extend(
            (0..ppn).map(|j| gpus[(enter + j) % ppn]).filter(|g| *g != gpus[enter] && *g != gpus[leave]),
        );
        if leave != enter {
            ring.push(gpus[leave]);
        }
    }
    ring
}

pub(crate) fn dst_key(end: End) -> u64 {
    match end {
        End::Gpu(g) => g as u64,
        End::ReduceUp => 1 << 31,
        End::ReduceDown => 1 << 30,
    }
}
