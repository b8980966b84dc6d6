//! Lowering a collective to stages of point-to-point transfers (see `collectives` for what each algorithm
//! becomes).

use crate::error::CollectiveError;
use crate::flow::collectives::{FlowCollective, InSwitchRates};
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
    /// Cap on the transfer's total rate (summed over the channels it is split into), bytes/s.
    pub(crate) rate_cap_bytes_per_s: f64,
    /// Software latency of one of its steps, seconds; `None` = that of its hop (inside a node or between nodes).
    pub(crate) step_latency_s: Option<f64>,
}

impl Transfer {
    pub(crate) fn new(src: u32, dst: End, bytes: f64, extra_steps: f64) -> Transfer {
        Transfer { src, dst, bytes, extra_steps, rate_cap_bytes_per_s: f64::INFINITY, step_latency_s: None }
    }
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
        (_, Op::SendRecv) => vec![Stage::Once(vec![Transfer::new(c.ranks[0], End::Gpu(c.ranks[1]), s, 0.0)])],
        (_, Op::Broadcast | Op::Reduce) => {
            let chain = order.windows(2).map(|w| Transfer::new(w[0], End::Gpu(w[1]), s, nf - 2.0)).collect();
            vec![Stage::Once(chain)]
        }
        (_, Op::AllToAll) => {
            let mut pairs = Vec::with_capacity(n * (n - 1));
            for &src in &order {
                for &dst in &order {
                    if src != dst {
                        pairs.push(Transfer::new(src, End::Gpu(dst), s / nf, 0.0));
                    }
                }
            }
            vec![Stage::Once(pairs)]
        }
        (Algorithm::Ring | Algorithm::Pat | Algorithm::Direct, op) => {
            let rings = (0..channels).map(|c| rail_aligned_ring(router, &order, c as usize)).collect();
            vec![Stage::Rings { rings, steps: ring_steps(op)?, bytes_per_flow: s / nf / channels as f64 }]
        }
        (Algorithm::Tree, Op::AllReduce) => match split_nodes(router, &order) {
            Some(nodes) => vec![Stage::Once(chain_trees(router, &nodes, s, channels))],
            None => {
                let depth = (usize::BITS - n.leading_zeros()) as f64;
                vec![Stage::Once(double_tree(&order, s / 2.0, 2.0 * depth - 1.0))]
            }
        },
        (Algorithm::Tree, _) => return Err(unsupported("tree runs all-reduce only")),
        (Algorithm::Nvls, op) => {
            let node = router.node_of(order[0]);
            if order.iter().any(|g| router.node_of(*g) != node) {
                return Err(unsupported("in-switch reduction is modelled inside one node only"));
            }
            // Each GPU's share of the buffer through the switch, and NCCL's algorithm bandwidth for the op: a
            // GPU's flows are capped so that the collective's S bytes take no less than S / algbw.
            let rates = c.config.in_switch;
            let (share, algbw) = match op {
                Op::AllReduce => (1.0, rates.nvls_all_reduce_bytes_per_s),
                Op::AllGather => ((nf - 1.0) / nf, rates.nvls_all_gather_bytes_per_s),
                Op::ReduceScatter => ((nf - 1.0) / nf, rates.nvls_reduce_scatter_bytes_per_s),
                _ => return Err(unsupported("nvls runs all-reduce, all-gather and reduce-scatter")),
            };
            let mut flows = Vec::with_capacity(2 * n);
            for &gpu in &order {
                flows.extend(switch_flows(gpu, s * share, algbw * share));
            }
            vec![Stage::Once(flows)]
        }
        (Algorithm::NvlsTree, Op::AllReduce) => {
            nvls_tree(router, &order, s, c.config.in_switch).ok_or_else(|| {
                unsupported("nvls-tree needs the same number (≥ 2) of ranks on each of ≥ 2 nodes")
            })?
        }
        (Algorithm::NvlsTree, _) => return Err(unsupported("nvls-tree runs all-reduce only")),
        (Algorithm::Hierarchical, op) => hierarchical(router, &order, op, s, channels).ok_or_else(|| {
            unsupported("hierarchical needs the same number (≥ 2) of ranks on each of ≥ 2 nodes")
        })?,
    };
    Ok(stages)
}

/// A GPU's two flows through its reducing switch (up: its data into the reduction; down: the result out),
/// `bytes` each, each capped at `rate_cap_bytes_per_s` (summed over the channels it is split into).
fn switch_flows(gpu: u32, bytes: f64, rate_cap_bytes_per_s: f64) -> [Transfer; 2] {
    [End::ReduceUp, End::ReduceDown]
        .map(|dst| Transfer { rate_cap_bytes_per_s, ..Transfer::new(gpu, dst, bytes, 0.0) })
}

/// NCCL's double binary tree over `ranks` in the pipelined steady state: two trees, each carrying `bytes` up
/// and `bytes` down on every edge at once; every flow carries `extra_steps` step latencies of pipeline fill.
/// The trees are NCCL's (`ncclGetDtree`, src/graph/trees.cc): the first is the binary tree whose leaves are the
/// odd positions, the second its mirror (even count) or its shift by one (odd count), so that every rank is
/// interior in at most one of them and every rank's links carry about the same load.
pub(crate) fn double_tree(ranks: &[u32], bytes: f64, extra_steps: f64) -> Vec<Transfer> {
    let n = ranks.len();
    let mut edges = Vec::with_capacity(4 * n);
    for second in [false, true] {
        for child in 0..n {
            let parent = if !second {
                btree_parent(n, child)
            } else if n.is_multiple_of(2) {
                btree_parent(n, n - 1 - child).map(|p| n - 1 - p)
            } else {
                btree_parent(n, (child + n - 1) % n).map(|p| (p + 1) % n)
            };
            if let Some(parent) = parent {
                edges.push(Transfer::new(ranks[child], End::Gpu(ranks[parent]), bytes, extra_steps));
                edges.push(Transfer::new(ranks[parent], End::Gpu(ranks[child]), bytes, extra_steps));
            }
        }
    }
    edges
}

/// NCCL's tree all-reduce across nodes (`ncclTopoPreset` and `connectTrees`, src/graph/connect.cc), in its
/// pipelined steady state: on each channel the node's GPUs form a chain, and the chains' heads are joined by a
/// binary tree over the nodes; even channels use NCCL's first tree over the nodes and odd ones its second
/// (`ncclGetDtree`), so each tree carries half the buffer. Channel k's chain starts at local GPU k mod ppn (its
/// NIC joins the node to the tree; a child node's head meets its parent's head on the same rail), so the channels
/// spread over the node's NICs. Every chain and tree edge carries the channel's share up (reduce) and down
/// (broadcast) at once; the flows carry the pipeline's fill of chain length plus tree depth, up and back.
fn chain_trees<R: Router>(router: &R, nodes: &[Vec<u32>], s: f64, channels: u32) -> Vec<Transfer> {
    let (ppn, n_nodes) = (nodes[0].len(), nodes.len());
    let channels = channels.max(2) as usize;
    let bytes = s / channels as f64;
    let depth = (usize::BITS - n_nodes.leading_zeros()) as f64;
    let extra_steps = 2.0 * ((ppn - 1) as f64 + depth) - 1.0;
    let node_ids: Vec<u32> = (0..n_nodes as u32).collect();
    let mut flows = Vec::new();
    for k in 0..channels {
        // The head is where the node meets the tree: rail k mod ppn, or the k-th shared NIC's first GPU.
        let head_index = |gpus: &[u32]| match nic_groups(router, gpus) {
            Some(groups) => {
                let first = groups[k % groups.len()][0];
                gpus.iter().position(|g| *g == first).unwrap_or(0)
            }
            None => k % ppn,
        };
        for gpus in nodes {
            let h = head_index(gpus);
            let chain: Vec<u32> = (0..ppn).map(|j| gpus[(h + j) % ppn]).collect();
            for w in chain.windows(2) {
                flows.push(Transfer::new(w[0], End::Gpu(w[1]), bytes, extra_steps));
                flows.push(Transfer::new(w[1], End::Gpu(w[0]), bytes, extra_steps));
            }
        }
        // One of NCCL's two trees over the nodes, between the nodes' heads.
        let tree = double_tree(&node_ids, bytes, extra_steps);
        let half = tree.len() / 2;
        let edges = if k % 2 == 0 { &tree[..half] } else { &tree[half..] };
        for e in edges {
            let (End::Gpu(dst), src) = (e.dst, e.src) else { continue };
            let (a, b) = (&nodes[src as usize], &nodes[dst as usize]);
            flows.push(Transfer::new(a[head_index(a)], End::Gpu(b[head_index(b)]), bytes, extra_steps));
        }
    }
    flows
}

/// Parent of position `rank` in NCCL's binary tree over `n` positions rooted at 0 (`ncclGetBtree`): clear the
/// lowest set bit and set the next one up, or just clear it when that falls outside the tree. Odd positions are
/// the leaves.
pub(crate) fn btree_parent(n: usize, rank: usize) -> Option<usize> {
    if rank == 0 || rank >= n {
        return None;
    }
    let bit = 1usize << rank.trailing_zeros();
    let up = (rank ^ bit) | (bit << 1);
    Some(if up >= n { rank ^ bit } else { up })
}

/// The ranks of `order` (sorted by node) split into nodes; `None` unless there are ≥ 2 nodes with the same
/// number (≥ 2) of ranks each.
fn split_nodes<R: Router>(router: &R, order: &[u32]) -> Option<Vec<Vec<u32>>> {
    let mut nodes: Vec<Vec<u32>> = Vec::new();
    for &gpu in order {
        match nodes.last_mut() {
            Some(last) if router.node_of(last[0]) == router.node_of(gpu) => last.push(gpu),
            _ => nodes.push(vec![gpu]),
        }
    }
    let ppn = nodes[0].len();
    (nodes.len() >= 2 && ppn >= 2 && nodes.iter().all(|g| g.len() == ppn)).then_some(nodes)
}

/// NCCL's NVLS-tree all-reduce (`runNvlsTree`, src/device/all_reduce.h): warps reduce inside the node through
/// the NVSwitch, exchange each GPU's 1/ppn share with the other nodes over a double binary tree on that GPU's
/// rail, and multicast the result back, all at once on successive chunks. Lowered to its pipelined steady
/// state, one phase: every GPU's switch flows (S up, S down, at NCCL's NVLS-tree rate) and, on every rail, the
/// double binary tree over the nodes carrying S/(2·ppn) per tree on each edge, both ways.
fn nvls_tree<R: Router>(router: &R, order: &[u32], s: f64, rates: InSwitchRates) -> Option<Vec<Stage>> {
    let nodes = split_nodes(router, order)?;
    let ppn = nodes[0].len();
    let depth = (usize::BITS - nodes.len().leading_zeros()) as f64;
    let mut flows = Vec::with_capacity(2 * order.len() + 4 * nodes.len() * ppn);
    for &gpu in order {
        flows.extend(switch_flows(gpu, s, rates.nvls_tree_all_reduce_bytes_per_s));
    }
    for rail in 0..ppn {
        let ranks: Vec<u32> = nodes.iter().map(|g| g[rail]).collect();
        flows.extend(double_tree(&ranks, s / (2.0 * ppn as f64), 2.0 * depth - 1.0));
    }
    Some(vec![Stage::Once(flows)])
}

/// Intra-node rings (one per node) and rail rings (one per local index) for the hierarchical algorithm.
fn hierarchical<R: Router>(router: &R, order: &[u32], op: Op, s: f64, channels: u32) -> Option<Vec<Stage>> {
    let nodes = split_nodes(router, order)?;
    let (ppn, n_nodes) = (nodes[0].len(), nodes.len());
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

/// The flat ring for one channel, arranged so that every node-to-node hop stays on one rail.
///
/// With a NIC per GPU, node k is entered at local GPU `(c + k) mod ppn` and left from local GPU
/// `(c + k + 1) mod ppn`, the GPU through which the next node is entered. Where GPUs share a NIC, channel c
/// enters and leaves every node through the same NIC, `c mod nics` (in at its first GPU, out at its last):
/// NCCL's rings cross a node boundary through one NIC per channel, so that the channels spread over the
/// node's NICs, one channel's send and receive on each.
pub(crate) fn rail_aligned_ring<R: Router>(router: &R, order: &[u32], channel: usize) -> Vec<u32> {
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
        let (enter, leave) = match nic_groups(router, gpus) {
            Some(groups) => {
                let group = &groups[channel % groups.len()];
                (group[0], group[group.len() - 1])
            }
            None => {
                let ppn = gpus.len();
                (gpus[(channel + k) % ppn], gpus[(channel + k + 1) % ppn])
            }
        };
        let start = gpus.iter().position(|g| *g == enter).unwrap_or(0);
        ring.push(enter);
        ring.extend(
            (0..gpus.len()).map(|j| gpus[(start + j) % gpus.len()]).filter(|g| *g != enter && *g != leave),
        );
        if leave != enter {
            ring.push(leave);
        }
    }
    ring
}

/// The GPUs of one node grouped by the NIC they share, in NIC order, when at least two share one; `None` when
/// each has its own NIC (or the router does not say).
fn nic_groups<R: Router>(router: &R, gpus: &[u32]) -> Option<Vec<Vec<u32>>> {
    let mut groups: Vec<(u32, Vec<u32>)> = Vec::new();
    for &gpu in gpus {
        let nic = router.nic_of(gpu)?;
        match groups.iter_mut().find(|(n, _)| *n == nic) {
            Some((_, members)) => members.push(gpu),
            None => groups.push((nic, vec![gpu])),
        }
    }
    if groups.len() == gpus.len() {
        return None;
    }
    groups.sort_by_key(|(nic, _)| *nic);
    Some(groups.into_iter().map(|(_, members)| members).collect())
}

pub(crate) fn dst_key(end: End) -> u64 {
    match end {
        End::Gpu(g) => g as u64,
        End::ReduceUp => 1 << 31,
        End::ReduceDown => 1 << 30,
    }
}
