//! The analytical network model: NCCL's latency + bytes/bandwidth per (algorithm, protocol), the argmin choice,
//! plus the algorithms NCCL's tuner does not cover (hierarchical, direct all-to-all, send/recv).
//!
//! [`Communicator::new`] does all the work that depends only on the hardware and placement (NCCL's tables);
//! [`Communicator::time`] is then a handful of arithmetic per candidate, with no allocation, so a caller may
//! build one communicator per group and call it thousands of times.

use crate::error::CollectiveError;
use crate::nccl::constants::{self as k, Hw};
use crate::nccl::tune::{self, Tables};
use crate::op::{Algorithm, Op, Protocol};
use crate::shape::{CommShape, IntraKind};

/// How to choose the algorithm and protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectiveConfig {
    /// `None` = choose like NCCL (argmin of estimated time); `Some` = force this algorithm.
    pub algorithm: Option<Algorithm>,
    /// `None` = choose; `Some` = force this protocol.
    pub protocol: Option<Protocol>,
    /// Allow NVLS / NVLS-tree where the hardware has it (NCCL's `NCCL_NVLS_ENABLE`).
    pub enable_nvls: bool,
    /// Let the automatic choice consider the hierarchical algorithm too (NCCL itself does not have it).
    pub auto_hierarchical: bool,
    /// Network post overhead per step, seconds (NCCL `getNetOverhead`: 1 µs on Intel x86, 2 µs on AMD).
    pub net_overhead_s: f64,
}

impl Default for CollectiveConfig {
    fn default() -> Self {
        CollectiveConfig {
            algorithm: None,
            protocol: None,
            enable_nvls: true,
            auto_hierarchical: false,
            net_overhead_s: k::NET_OVERHEAD_US * 1e-6,
        }
    }
}

/// The estimated cost of one collective call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CollectiveCost {
    /// Wall time of the call, seconds.
    pub time_s: f64,
    /// Algorithm used.
    pub algorithm: Algorithm,
    /// Protocol used.
    pub protocol: Protocol,
    /// nccl-tests algorithm bandwidth, bytes / time_s.
    pub algbw_bytes_per_s: f64,
    /// nccl-tests bus bandwidth, algbw × the op's factor.
    pub busbw_bytes_per_s: f64,
}

/// A communicator's precomputed cost tables: build once per (hardware, placement, config), query often.
#[derive(Debug, Clone, PartialEq)]
pub struct Communicator {
    shape: CommShape,
    config: CollectiveConfig,
    tables: Tables,
    /// Tables of the intra-node and per-rail sub-communicators, for the hierarchical algorithm.
    hierarchy: Option<Box<(Tables, Tables)>>,
    /// NCCL-effective intra-node bandwidth per GPU, bytes/s.
    intra_eff_bytes_per_s: f64,
    /// NCCL-effective NIC bandwidth per NIC, bytes/s.
    nic_eff_bytes_per_s: f64,
}

impl Communicator {
    /// Builds the tables for `shape` under `config`.
    pub fn new(shape: &CommShape, config: &CollectiveConfig) -> Result<Communicator, CollectiveError> {
        shape.validate()?;
        for (field, value) in [("net_overhead_s", config.net_overhead_s)] {
            if !value.is_finite() || value < 0.0 {
                return Err(CollectiveError::BadFigure { field, value });
            }
        }
        let overhead_us = config.net_overhead_s * 1e6;
        let tables = tune::build(shape, config.enable_nvls, overhead_us);
        let ppn = shape.n_ranks / shape.n_nodes;
        let hierarchy = (shape.n_nodes > 1 && ppn > 1 && ppn * shape.n_nodes == shape.n_ranks).then(|| {
            let intra = CommShape { n_ranks: ppn, n_nodes: 1, ..shape.clone() };
            let rail = CommShape { n_ranks: shape.n_nodes, nics_per_node: 1, ..shape.clone() };
            Box::new((
                tune::build(&intra, config.enable_nvls, overhead_us),
                tune::build(&rail, false, overhead_us),
            ))
        });
        let (ring, _) = tune::graphs(&CommShape { n_nodes: 1, ..shape.clone() });
        let intra_eff_bytes_per_s = ring.n_channels * ring.bw_intra_gbs * 1e9;
        let nic_eff_bytes_per_s = if shape.n_nodes > 1 {
            k::pick_speed(k::speed_array_inter(shape.generation), shape.nic_bytes_per_s / 1e9) * 1e9
        } else {
            0.0
        };
        Ok(Communicator {
            shape: shape.clone(),
            config: config.clone(),
            tables,
            hierarchy,
            intra_eff_bytes_per_s,
            nic_eff_bytes_per_s,
        })
    }

    /// The shape this communicator was built for.
    pub fn shape(&self) -> &CommShape {
        &self.shape
    }

    /// NCCL's bandwidth for one (algorithm, protocol) cell, bytes/s: what `bytes` is divided by (algorithm
    /// bandwidth for ring-like algorithms). `None` when the cell is disabled or not an NCCL algorithm.
    pub fn cell_bandwidth_bytes_per_s(
        &self,
        op: Op,
        algorithm: Algorithm,
        protocol: Protocol,
    ) -> Option<f64> {
        let cell = self.tables.cells[op.index()][algorithm.index()][protocol.index()];
        (cell.bw_gbs > 0.0).then_some(cell.bw_gbs * 1e9)
    }

    /// Estimated cost of `op` on `bytes` (nccl-tests size convention, see [`Op`]).
    pub fn time(&self, op: Op, bytes: u64) -> Result<CollectiveCost, CollectiveError> {
        let size = bytes as f64;
        let mut best: Option<(f64, Algorithm, Protocol)> = None;
        let mut consider = |candidate: Option<(f64, Algorithm, Protocol)>| {
            if let Some(c) = candidate
                && best.is_none_or(|b| c.0 < b.0)
            {
                best = Some(c);
            }
        };
        let algorithms: &[Algorithm] = match self.config.algorithm {
            Some(ref a) => std::slice::from_ref(a),
            None => &Algorithm::ALL,
        };
        for &algorithm in algorithms {
            if self.config.algorithm.is_none()
                && algorithm == Algorithm::Hierarchical
                && !self.config.auto_hierarchical
            {
                continue;
            }
            for protocol in Protocol::ALL {
                if self.config.protocol.is_some_and(|p| p != protocol) {
                    continue;
                }
                consider(self.candidate_us(op, algorithm, protocol, size).map(|t| (t, algorithm, protocol)));
            }
        }
        let Some((time_us, algorithm, protocol)) = best else {
            let algorithm = self.config.algorithm.map_or_else(|| "auto".to_owned(), |a| a.name().to_owned());
            let protocol = self.config.protocol.map_or("any protocol", |p| p.name());
            return Err(CollectiveError::Unsupported {
                algorithm,
                op: op.name().to_owned(),
                reason: format!(
                    "no way to run it with {protocol} on {} ranks over {} nodes (nvls capable: {})",
                    self.shape.n_ranks, self.shape.n_nodes, self.shape.nvls_capable
                ),
            });
        };
        let time_s = time_us * 1e-6;
        let algbw = if time_s > 0.0 { size / time_s } else { 0.0 };
        Ok(CollectiveCost {
            time_s,
            algorithm,
            protocol,
            algbw_bytes_per_s: algbw,
            busbw_bytes_per_s: algbw * op.busbw_factor(self.shape.n_ranks),
        })
    }

    /// Time in µs of one candidate, or `None` when it does not apply.
    fn candidate_us(&self, op: Op, algorithm: Algorithm, protocol: Protocol, bytes: f64) -> Option<f64> {
        match algorithm {
            Algorithm::Direct => (protocol == Protocol::Simple && matches!(op, Op::AllToAll | Op::SendRecv))
                .then(|| self.direct_us(op, bytes)),
            Algorithm::Hierarchical => self.hierarchical_us(op, protocol, bytes),
            _ => tune::algo_time_us(&self.tables, op, algorithm, protocol, bytes),
        }
    }

    /// Direct exchange: each rank's intra-node share over NVLink/PCIe and its inter-node share through its
    /// node's NICs run at once; one NCCL step of latency (base + hardware, Ring/Simple constants).
    fn direct_us(&self, op: Op, bytes: f64) -> f64 {
        let shape = &self.shape;
        let n = shape.n_ranks as f64;
        let ppn = shape.ranks_per_node();
        let hw = if shape.n_nodes == 1 {
            if shape.intra_kind == IntraKind::NvSwitch { Hw::NvLink } else { Hw::Pci }
        } else {
            Hw::Net
        };
        let lat_us = k::base_lat_us(Algorithm::Ring, Protocol::Simple)
            + k::hw_lat_us(hw, Algorithm::Ring, Protocol::Simple)
            + if shape.n_nodes > 1 { shape.net_latency_s * 1e6 } else { 0.0 };
        let transfer_s = match op {
            Op::SendRecv if shape.n_nodes == 1 => bytes / self.intra_eff_bytes_per_s,
            Op::SendRecv => bytes / self.nic_eff_bytes_per_s,
            _ => {
                let intra_s = bytes * (ppn - 1.0) / n / self.intra_eff_bytes_per_s;
                let inter_s = if shape.n_nodes > 1 {
                    let nics = (shape.nics_per_node as f64).min(ppn.ceil()).max(1.0);
                    bytes * ppn * (n - ppn) / n / (nics * self.nic_eff_bytes_per_s)
                } else {
                    0.0
                };
                intra_s.max(inter_s)
            }
        };
        lat_us + transfer_s * 1e6
    }

    /// Hierarchical: intra-node reduce-scatter, the per-rail inter-node collective on 1/ppn of the data (all
    /// rails at once, each on its own NIC), intra-node all-gather. Each phase picks its best NCCL algorithm
    /// under `protocol`.
    fn hierarchical_us(&self, op: Op, protocol: Protocol, bytes: f64) -> Option<f64> {
        let (intra, rail) = self.hierarchy.as_deref()?;
        let ppn = (self.shape.n_ranks / self.shape.n_nodes) as f64;
        let best = |tables: &Tables, phase: Op, size: f64| {
            [Algorithm::Ring, Algorithm::Tree, Algorithm::Nvls, Algorithm::Pat]
                .into_iter()
                .filter_map(|a| tune::algo_time_us(tables, phase, a, protocol, size))
                .min_by(f64::total_cmp)
        };
        match op {
            // RS over the node's full buffer, AR of each GPU's 1/ppn share per rail, AG back.
            Op::AllReduce => Some(
                best(intra, Op::ReduceScatter, bytes)?
                    + best(rail, Op::AllReduce, bytes / ppn)?
                    + best(intra, Op::AllGather, bytes)?,
            ),
            // Sizes are totals: the rail phase moves n_nodes × (1/ranks) parts = bytes/ppn in total.
            Op::AllGather => {
                Some(best(rail, Op::AllGather, bytes / ppn)? + best(intra, Op::AllGather, bytes)?)
            }
            Op::ReduceScatter => {
                Some(best(intra, Op::ReduceScatter, bytes)? + best(rail, Op::ReduceScatter, bytes / ppn)?)
            }
            _ => None,
        }
    }
}

/// One-shot convenience: builds a [`Communicator`] and times one call. Prefer keeping the communicator when
/// timing many calls on the same group.
pub fn collective_time_on(
    shape: &CommShape,
    op: Op,
    bytes: u64,
    config: &CollectiveConfig,
) -> Result<CollectiveCost, CollectiveError> {
    Communicator::new(shape, config)?.time(op, bytes)
}
