//! NCCL's tuning constants, copied as published figures from NVIDIA/nccl v2.30.7 (`5067397c`):
//! `src/graph/tuning.cc` (`ncclTunerConstantsDefaults`, `nvlsEfficiency`, `treeCorrectionFactor`),
//! `src/graph/topo.h` (link bandwidths) and `src/graph/search.cc:1051-1064` (per-channel speed arrays).
//! Also summarised in /work/shared/reference/simulation.md §1.2. Latencies are in µs, bandwidths in GB/s,
//! exactly as NCCL keeps them; `tune` converts to seconds and bytes/s at the edge.

use crate::op::{Algorithm, Protocol};
use crate::shape::GpuGeneration;

/// NCCL's hardware classes for latency lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hw {
    NvLink = 0,
    Pci = 1,
    Net = 2,
}

/// Row of NCCL's per-algorithm tables for the algorithms NCCL itself implements (CollNet is not modelled).
fn nccl_row(algorithm: Algorithm) -> Option<usize> {
    match algorithm {
        Algorithm::Tree => Some(0),
        Algorithm::Ring => Some(1),
        Algorithm::Nvls => Some(2),
        Algorithm::NvlsTree => Some(3),
        Algorithm::Pat => Some(4),
        Algorithm::Hierarchical | Algorithm::Direct => None,
    }
}

/// `baseLatencies` (µs), rows Tree, Ring, NVLS, NVLSTree, PAT; columns LL, LL128, Simple.
const BASE_LAT_US: [[f64; 3]; 5] =
    [[6.8, 14.0, 8.4], [6.6, 14.0, 8.4], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [8.0, 8.0, 8.0]];

/// `hwLatencies` (µs) indexed [hw][algorithm row][protocol].
const HW_LAT_US: [[[f64; 3]; 5]; 3] = [
    // NVLINK
    [[0.6, 1.25, 4.0], [0.6, 1.9, 3.4], [0.0, 0.0, 25.0], [0.0, 0.0, 25.0], [0.0, 0.0, 4.0]],
    // PCI
    [[1.0, 1.9, 4.0], [1.0, 2.5, 5.7], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 4.0]],
    // NET
    [[5.0, 8.5, 14.0], [2.7, 4.0, 14.0], [0.0, 0.0, 18.0], [0.0, 0.0, 20.9], [0.0, 0.0, 14.0]],
];

/// Base latency of `algorithm`/`protocol` in µs (0 for algorithms NCCL does not have).
pub(crate) fn base_lat_us(algorithm: Algorithm, protocol: Protocol) -> f64 {
    nccl_row(algorithm).map_or(0.0, |row| BASE_LAT_US[row][protocol.index()])
}

/// Per-hop hardware latency of `algorithm`/`protocol` on `hw`, µs.
pub(crate) fn hw_lat_us(hw: Hw, algorithm: Algorithm, protocol: Protocol) -> f64 {
    nccl_row(algorithm).map_or(0.0, |row| HW_LAT_US[hw as usize][row][protocol.index()])
}

/// `llMaxBws` [row][N1, N2, N4+]: single node uses the GPU generation's row; multi-node uses row 0 (Intel CPU)
/// or 1 (AMD CPU).
pub(crate) const LL_MAX_BWS: [[f64; 3]; 4] =
    [[39.0, 39.0, 20.4], [87.7, 22.5, 19.0], [141.0, 45.0, 35.0], [282.0, 90.0, 70.0]];
/// `perChMaxRingLL128Bws` [generation][N1, N2, N4+].
pub(crate) const PER_CH_MAX_RING_LL128_BWS: [[f64; 3]; 4] =
    [[20.0, 20.0, 20.0], [20.0, 20.0, 20.0], [36.7, 36.7, 36.7], [40.0, 40.0, 40.0]];
/// `perChMaxTreeLL128Bws` [generation][N1, N2, N4+].
pub(crate) const PER_CH_MAX_TREE_LL128_BWS: [[f64; 3]; 4] =
    [[20.0, 20.0, 20.0], [20.0, 20.0, 20.0], [36.7, 36.7, 29.0], [55.6, 31.67, 20.0]];
/// `perChMaxTreeBws` [generation][N1, N2, N4+].
pub(crate) const PER_CH_MAX_TREE_BWS: [[f64; 3]; 4] =
    [[26.5, 18.5, 10.0], [24.0, 23.6, 17.8], [38.7, 41.4, 36.0], [70.0, 42.8, 24.0]];
/// `perChMaxNVLSTreeBws` [generation][N1, N2, N4+].
pub(crate) const PER_CH_MAX_NVLS_TREE_BWS: [[f64; 3]; 4] =
    [[26.5, 18.5, 10.0], [24.0, 23.6, 17.8], [0.0, 57.7, 45.5], [0.0, 96.0, 80.0]];

/// `nvlsEfficiency` per generation.
pub(crate) fn nvls_efficiency(generation: GpuGeneration) -> f64 {
    [0.0, 0.0, 0.85, 0.74][generation.index()]
}

/// NCCL's effective bandwidth of one NVLink link per direction, GB/s (`topo.h`: SM70/SM80 20.0, SM90 20.6,
/// SM100 40.1).
pub(crate) fn nvlink_link_gbs(generation: GpuGeneration) -> f64 {
    match generation {
        GpuGeneration::Volta | GpuGeneration::Ampere => 20.0,
        GpuGeneration::Hopper => 20.6,
        GpuGeneration::Blackwell => 40.1,
    }
}

/// NCCL's figure for a PCIe Gen3 x16 path (`topo.h` `PCI_BW` 12 GB/s) over its raw per-direction rate
/// (8 GT/s × 16 lanes × 128/130 ≈ 15.75 GB/s): the share of a PCIe link NCCL expects to use.
pub(crate) const PCI_EFFICIENCY: f64 = 12.0 / 15.75;

/// Per-channel intra-node speeds the graph search tries, GB/s, highest first.
pub(crate) fn speed_array_intra(generation: GpuGeneration) -> &'static [f64] {
    match generation {
        GpuGeneration::Volta | GpuGeneration::Ampere => {
            &[40.0, 30.0, 20.0, 18.0, 15.0, 12.0, 10.0, 9.0, 7.0, 6.0, 5.0, 4.0, 3.0]
        }
        GpuGeneration::Hopper => &[60.0, 50.0, 40.0, 30.0, 24.0, 20.0, 15.0, 12.0, 11.0, 6.0, 3.0],
        GpuGeneration::Blackwell => &[90.0, 80.0, 70.0, 60.0, 50.0, 45.0, 40.0, 30.0, 24.0, 20.0, 19.0, 18.0],
    }
}

/// Per-channel inter-node speeds the graph search tries, GB/s, highest first.
pub(crate) fn speed_array_inter(generation: GpuGeneration) -> &'static [f64] {
    match generation {
        GpuGeneration::Volta | GpuGeneration::Ampere => &[
            48.0, 30.0, 28.0, 24.0, 20.0, 18.0, 15.0, 12.0, 10.0, 9.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.4, 1.2,
            0.24, 0.12,
        ],
        GpuGeneration::Hopper => &[
            48.0, 45.0, 42.0, 40.0, 30.0, 24.0, 22.0, 20.0, 17.5, 15.0, 12.0, 6.0, 3.0, 2.4, 1.2, 0.24, 0.12,
        ],
        GpuGeneration::Blackwell => &[
            96.0, 86.0, 80.0, 48.0, 45.1, 42.0, 40.0, 30.0, 24.0, 22.0, 20.0, 17.5, 15.0, 12.0, 6.0, 3.0,
            2.4, 1.2, 0.24, 0.12,
        ],
    }
}

/// The highest speed in `speeds` that does not exceed `limit_gbs` (the last, smallest one if none fits).
pub(crate) fn pick_speed(speeds: &[f64], limit_gbs: f64) -> f64 {
    speeds.iter().copied().find(|s| *s <= limit_gbs).unwrap_or(speeds[speeds.len() - 1])
}

/// `treeCorrectionFactor` [protocol][log2(bytes/64)], applied to Tree all-reduce below 2^23·64 bytes.
pub(crate) const TREE_CORRECTION: [[f64; 24]; 3] = [
    [
        1.0, 1.0, 1.0, 1.0, 0.9, 0.8, 0.7, 0.7, 0.7, 0.7, 0.6, 0.5, 0.4, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
        1.0, 1.0, 1.0, 1.0,
    ],
    [
        1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.8, 0.8, 0.8, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.8, 0.9, 0.9, 0.9,
        0.9, 1.0, 1.0, 1.0,
    ],
    [
        0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8, 0.7, 0.6, 0.6, 0.5, 0.5, 0.5, 0.5, 0.6, 0.7, 0.8, 0.7, 0.7,
        0.8, 0.9, 0.9, 0.9,
    ],
];

/// `NCCL_MAX_NVLS_ARITY` (`src/include/device.h`): the most NVLS channels.
pub(crate) const MAX_NVLS_ARITY: usize = 32;

/// Default network post overhead for x86 Intel (`getNetOverhead`), µs; tripled for Simple.
pub(crate) const NET_OVERHEAD_US: f64 = 1.0;
