//! A port of NCCL's tuning model (`ncclTopoTuneModel` and `ncclTopoGetAlgoTime`, NVIDIA/nccl v2.30.7
//! `src/graph/tuning.cc`; /work/shared/reference/simulation.md §1.3-1.5) over a [`CommShape`].
//!
//! NCCL seeds the model with the outputs of its topology search (`nChannels`, `bwIntra`, `bwInter` per graph).
//! choir does not rerun that search; it uses the proxy of simulation.md §1.8, spelled out in [`graphs`]:
//! - ring/tree: one channel per NVLink link (2 over PCIe); the channels together carry NCCL's effective
//!   NVLink figure (`SM90_NVLINK_BW` 20.6 GB/s × links); across nodes, each channel also crosses a NIC whose
//!   speed is the highest entry of NCCL's inter-node speed array that fits the NIC's line rate;
//! - NVLS: one channel per local GPU; the per-channel speed is the highest intra speed-array entry such that the
//!   NVSwitch ports carry (ppn + 1) channels' worth, as `ncclTopoSearchTryNvls` loads them.

use crate::nccl::constants::{self as k, Hw};
use crate::op::{Algorithm, Op, Protocol};
use crate::shape::{CommShape, IntraKind};

/// One (algorithm, protocol) cell of the table: NCCL's latency and algorithm bandwidth.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Cell {
    /// Latency, µs (NCCL's unit).
    pub(crate) lat_us: f64,
    /// Bandwidth NCCL divides `nBytes` by, GB/s; 0 = disabled.
    pub(crate) bw_gbs: f64,
}

/// NCCL's `bandwidths`/`latencies` tables for one communicator, indexed [op][algorithm][protocol].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tables {
    pub(crate) cells: [[[Cell; 3]; 7]; 7],
    /// Ring channels (NCCL's `comm->nChannels`, used by the ring plateau rule).
    pub(crate) n_channels: f64,
    pub(crate) n_ranks: usize,
    pub(crate) n_nodes: usize,
    pub(crate) pre_ampere: bool,
}

/// The search outputs NCCL's model consumes, per graph.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Graph {
    pub(crate) n_channels: f64,
    pub(crate) bw_intra_gbs: f64,
    pub(crate) bw_inter_gbs: f64,
}

/// Proxies for NCCL's ring (also tree and PAT) graph and its NVLS graph.
pub(crate) fn graphs(shape: &CommShape) -> (Graph, Graph) {
    let generation = shape.generation;
    let ppn = shape.ranks_per_node();
    let (intra_total_gbs, intra_channels) = match shape.intra_kind {
        IntraKind::NvSwitch => {
            let links = (shape.intra_bytes_per_s / shape.nvlink_link_bytes_per_s).round().max(1.0);
            (links * k::nvlink_link_gbs(generation), links)
        }
        IntraKind::Pcie => (shape.intra_bytes_per_s / 1e9 * k::PCI_EFFICIENCY, 2.0),
    };
    let ring = if shape.n_nodes == 1 {
        let bw = intra_total_gbs / intra_channels;
        Graph { n_channels: intra_channels, bw_intra_gbs: bw, bw_inter_gbs: bw }
    } else {
        let nic_gbs = k::pick_speed(k::speed_array_inter(generation), shape.nic_bytes_per_s / 1e9);
        let nics_used = (shape.nics_per_node as f64).min(ppn.ceil()).max(1.0);
        let n_channels = nics_used.max(2.0);
        let total = if ppn > 1.0 { intra_total_gbs.min(nic_gbs * nics_used) } else { nic_gbs * nics_used };
        Graph { n_channels, bw_intra_gbs: total / n_channels, bw_inter_gbs: total / n_channels }
    };
    let nvls_channels = ppn.floor().clamp(1.0, k::MAX_NVLS_ARITY as f64);
    let nvls_bw = k::pick_speed(k::speed_array_intra(generation), intra_total_gbs / (ppn + 1.0));
    let nvls_inter =
        if shape.n_nodes > 1 { ring.bw_inter_gbs * ring.n_channels / nvls_channels } else { f64::MAX };
    let nvls = Graph { n_channels: nvls_channels, bw_intra_gbs: nvls_bw, bw_inter_gbs: nvls_inter };
    (ring, nvls)
}

fn log2i(n: usize) -> f64 {
    (usize::BITS - 1 - n.max(1).leading_zeros()) as f64
}

/// Whether NCCL runs `algorithm` for `op` at all on this shape (before protocol rules).
fn algorithm_applies(shape: &CommShape, op: Op, algorithm: Algorithm, enable_nvls: bool) -> bool {
    let ppn = shape.ranks_per_node();
    match algorithm {
        Algorithm::Ring => {
            matches!(op, Op::AllReduce | Op::AllGather | Op::ReduceScatter | Op::Broadcast | Op::Reduce)
        }
        Algorithm::Tree => op == Op::AllReduce,
        // Multi-node NVLS needs CollNet (SHARP), which is not modelled; NVLS needs >= 2 channels.
        Algorithm::Nvls => {
            enable_nvls
                && shape.nvls_capable
                && shape.n_nodes == 1
                && ppn >= 2.0
                && matches!(op, Op::AllReduce | Op::AllGather | Op::ReduceScatter)
        }
        Algorithm::NvlsTree => {
            enable_nvls && shape.nvls_capable && shape.n_nodes > 1 && ppn >= 2.0 && op == Op::AllReduce
        }
        Algorithm::Pat => shape.n_nodes == shape.n_ranks && matches!(op, Op::AllGather | Op::ReduceScatter),
        Algorithm::Hierarchical | Algorithm::Direct => false,
    }
}

/// Builds NCCL's tables for every op NCCL's tuner covers (all-reduce, all-gather, reduce-scatter, broadcast,
/// reduce); other cells stay disabled.
pub(crate) fn build(shape: &CommShape, enable_nvls: bool, net_overhead_us: f64) -> Tables {
    let (ring, nvls) = graphs(shape);
    let generation = shape.generation.index();
    let n_ranks = shape.n_ranks;
    let n_nodes = shape.n_nodes;
    let ppn = shape.ranks_per_node();
    let index2 = if n_nodes <= 2 { n_nodes - 1 } else { 2 };
    // Single node: the GPU generation's row; multi-node: the CPU vendor's row (Intel assumed).
    let ll_max_bw = k::LL_MAX_BWS[if n_nodes == 1 { generation } else { 0 }][index2];
    let intra_hw = if shape.intra_kind == IntraKind::NvSwitch { Hw::NvLink } else { Hw::Pci };
    let hw = if n_nodes == 1 { intra_hw } else { Hw::Net };
    let latency_inter_us = shape.net_latency_s * 1e6;
    // LL128 is on by default only when intra-node paths are NVLink (tuning.cc protocol enable rules).
    let ll128_enabled = shape.intra_kind == IntraKind::NvSwitch;
    let mut cells = [[[Cell::default(); 3]; 7]; 7];
    for op in [Op::AllReduce, Op::AllGather, Op::ReduceScatter, Op::Broadcast, Op::Reduce] {
        let nsteps = match op {
            Op::AllReduce => 2.0 * (n_ranks as f64 - 1.0),
            Op::AllGather | Op::ReduceScatter => n_ranks as f64 - 1.0,
            _ => n_ranks as f64,
        };
        for algorithm in
            [Algorithm::Tree, Algorithm::Ring, Algorithm::Nvls, Algorithm::NvlsTree, Algorithm::Pat]
        {
            if !algorithm_applies(shape, op, algorithm, enable_nvls) {
                continue;
            }
            let graph = if matches!(algorithm, Algorithm::Nvls | Algorithm::NvlsTree) { nvls } else { ring };
            for protocol in Protocol::ALL {
                let simple_only = matches!(algorithm, Algorithm::Nvls | Algorithm::NvlsTree | Algorithm::Pat);
                if (simple_only && protocol != Protocol::Simple)
                    || (protocol == Protocol::Ll128 && !ll128_enabled)
                {
                    continue;
                }
                let mut bw = if n_nodes <= 2 { graph.bw_intra_gbs } else { graph.bw_inter_gbs };
                if matches!(algorithm, Algorithm::Nvls | Algorithm::NvlsTree) {
                    let mut intra_bw =
                        graph.bw_intra_gbs * k::nvls_efficiency(shape.generation) * (graph.n_channels - 1.0)
                            / graph.n_channels;
                    intra_bw *= if op == Op::AllReduce { 2.0 } else { (ppn - 1.0) / ppn };
                    let inter_bw = graph.bw_inter_gbs
                        * if n_nodes <= 2 && algorithm == Algorithm::NvlsTree { 2.0 } else { 1.0 };
                    let cap = if algorithm == Algorithm::NvlsTree {
                        k::PER_CH_MAX_NVLS_TREE_BWS[generation][index2]
                    } else {
                        f64::MAX
                    };
                    bw = intra_bw.min(inter_bw).min(cap);
                }
                let n_ch = graph.n_channels;
                let mut bus_bw = n_ch * bw;
                match (algorithm, protocol) {
                    (Algorithm::Ring, Protocol::Ll) => bus_bw = ll_max_bw.min(bus_bw * 0.5),
                    (Algorithm::Ring, Protocol::Ll128) => {
                        bus_bw = (bus_bw * 0.92).min(n_ch * k::PER_CH_MAX_RING_LL128_BWS[generation][index2]);
                    }
                    _ => {}
                }
                if algorithm == Algorithm::Tree {
                    bus_bw = (bus_bw * 0.92).min(n_ch * k::PER_CH_MAX_TREE_BWS[generation][index2]);
                    match protocol {
                        Protocol::Ll => bus_bw = (bus_bw / 3.8).min(ll_max_bw),
                        Protocol::Ll128 => {
                            let factor = if n_nodes == 1 { 7.0 / 9.0 } else { 120.0 / 128.0 };
                            bus_bw = (bus_bw * factor)
                                .min(n_ch * k::PER_CH_MAX_TREE_LL128_BWS[generation][index2]);
                        }
                        Protocol::Simple => {}
                    }
                }
                if algorithm == Algorithm::Pat {
                    bus_bw *= 0.75;
                }
                // Bus to algorithm bandwidth (skipped for non-ring all-gather / reduce-scatter).
                let ring_like = matches!(algorithm, Algorithm::Ring | Algorithm::Nvls | Algorithm::NvlsTree);
                if ring_like || !matches!(op, Op::AllGather | Op::ReduceScatter) {
                    bus_bw *= if ring_like { n_ranks as f64 / nsteps } else { 0.5 };
                }
                let base = k::base_lat_us(algorithm, protocol);
                let mut intra_lat = k::hw_lat_us(intra_hw, algorithm, protocol);
                let mut inter_lat = if ppn == 1.0 {
                    k::hw_lat_us(Hw::Net, Algorithm::Tree, protocol)
                } else {
                    k::hw_lat_us(Hw::Net, algorithm, protocol)
                };
                inter_lat += latency_inter_us;
                if protocol == Protocol::Simple {
                    inter_lat += latency_inter_us; // NCCL's "flush" latency
                }
                let lat = match algorithm {
                    Algorithm::Ring if matches!(op, Op::Broadcast | Op::Reduce) => {
                        let step = if protocol == Protocol::Simple {
                            k::hw_lat_us(hw, Algorithm::Tree, protocol)
                        } else {
                            k::hw_lat_us(hw, Algorithm::Ring, protocol)
                        };
                        base + nsteps * step
                    }
                    Algorithm::Ring => {
                        let mut overhead = 0.0;
                        if n_nodes > 1 {
                            overhead = net_overhead_us * if protocol == Protocol::Simple { 3.0 } else { 1.0 };
                        }
                        intra_lat = intra_lat.max(overhead);
                        let n_inter = match (n_nodes, op) {
                            (1, _) => 0.0,
                            (_, Op::AllReduce) => 2.0 * (n_nodes as f64 - 1.0),
                            _ => n_nodes as f64 - 1.0,
                        };
                        base + (nsteps - n_inter) * intra_lat + n_inter * inter_lat
                    }
                    Algorithm::Tree => {
                        let local = (n_ranks / n_nodes) as f64 - 1.0;
                        base + 2.0 * (local * intra_lat + log2i(n_nodes) * inter_lat)
                    }
                    Algorithm::Nvls => intra_lat + if n_nodes > 1 { inter_lat } else { 0.0 },
                    Algorithm::NvlsTree => base + intra_lat + 2.0 * log2i(n_nodes) * inter_lat,
                    Algorithm::Pat => base + log2i(n_nodes) * (inter_lat / 3.5) + n_ranks as f64 * 2.8,
                    Algorithm::Hierarchical | Algorithm::Direct => 0.0,
                };
                cells[op.index()][algorithm.index()][protocol.index()] = Cell { lat_us: lat, bw_gbs: bus_bw };
            }
        }
    }
    Tables {
        cells,
        n_channels: ring.n_channels,
        n_ranks,
        n_nodes,
        pre_ampere: shape.generation < crate::shape::GpuGeneration::Ampere,
    }
}

/// NCCL's estimated time in µs for `bytes` with one cell (`ncclTopoGetAlgoTime` for one operation), or
/// `None` when the cell is disabled.
pub(crate) fn algo_time_us(
    tables: &Tables,
    op: Op,
    algorithm: Algorithm,
    protocol: Protocol,
    bytes: f64,
) -> Option<f64> {
    let cell = tables.cells[op.index()][algorithm.index()][protocol.index()];
    if cell.bw_gbs <= 0.0 {
        return None;
    }
    let mut bw = cell.bw_gbs;
    let mut lat = cell.lat_us;
    let log_size = if bytes >= 64.0 { (bytes / 64.0).log2().floor() as i64 } else { -1 };
    if algorithm == Algorithm::Tree && op == Op::AllReduce && (0..23).contains(&log_size) {
        bw *= k::TREE_CORRECTION[protocol.index()][log_size as usize];
    }
    if algorithm == Algorithm::Ring
        && protocol == Protocol::Simple
        && tables.n_nodes > 1
        && op == Op::AllReduce
        && bytes / (tables.n_channels * tables.n_ranks as f64) >= 64.0
    {
        lat *= if tables.pre_ampere { 1.9 } else { 1.4 }; // "plateau effect of ring"
    }
    Some(lat + bytes / (1000.0 * bw))
}
