//! From a `topology::Cluster` and a group of GPU ranks to the inputs of both network models: the
//! [`CommShape`] of the analytical model and a [`Router`] over the cluster's real links for the flow model.

use topology::{Cluster, GpuId, IntraKind as TopoIntraKind, LinkKind};

use crate::analytical::{CollectiveConfig, CollectiveCost, Communicator};
use crate::error::CollectiveError;
use crate::flow::LinkSpec;
use crate::flow::collectives::{FlowCollective, FlowConfig, FlowSim, InSwitchRates};
use crate::flow::fabric::Router;
use crate::nccl::constants::{self as k, Hw};
use crate::op::{Algorithm, Op, Protocol};
use crate::shape::{CommShape, GpuGeneration, IntraKind};

/// A group of ranks: the global GPU ranks of a communicator, in rank order.
pub type Group = [u32];

/// Raw per-direction rate of one NVLink link for an NVLink generation: 25 GB/s for NVLink 2-4, 50 GB/s for
/// NVLink 5 (NVIDIA datasheets: H100 900 GB/s bidirectional over 18 links; B200 1.8 TB/s over 18 links).
pub fn nvlink_link_bytes_per_s(nvlink_generation: u8) -> f64 {
    if nvlink_generation >= 5 { 50e9 } else { 25e9 }
}

/// The GPU generation of a catalog architecture name (`hopper`, ...).
pub fn generation(architecture: &str) -> Result<GpuGeneration, CollectiveError> {
    match architecture.to_lowercase().as_str() {
        "volta" => Ok(GpuGeneration::Volta),
        "ampere" => Ok(GpuGeneration::Ampere),
        "hopper" => Ok(GpuGeneration::Hopper),
        "blackwell" => Ok(GpuGeneration::Blackwell),
        other => Err(CollectiveError::UnknownName {
            what: "GPU architecture",
            value: other.to_owned(),
            expected: "volta, ampere, hopper, blackwell",
        }),
    }
}

fn topo(err: topology::TopologyError) -> CollectiveError {
    CollectiveError::Topology(err.to_string())
}

/// The analytical model's view of `group` placed on `cluster`.
pub fn comm_shape(cluster: &Cluster, group: &Group) -> Result<CommShape, CollectiveError> {
    let mut nodes: Vec<u32> = Vec::with_capacity(group.len());
    for &rank in group {
        nodes.push(cluster.node_of(cluster.gpu(rank).map_err(topo)?).0);
    }
    nodes.sort_unstable();
    nodes.dedup();
    let spec = cluster.spec();
    let gpu = cluster.gpu_spec();
    let intra = cluster.intra();
    // One-way latency between nodes: the routed path between the group's first GPUs on two different nodes.
    let mut net_latency_s = 0.0;
    if nodes.len() > 1 {
        let a = group.iter().find(|r| cluster.node_of(GpuId(**r)).0 == nodes[0]).copied().unwrap_or(group[0]);
        let b = group.iter().find(|r| cluster.node_of(GpuId(**r)).0 == nodes[1]).copied().unwrap_or(group[0]);
        net_latency_s = cluster.route(GpuId(a), GpuId(b), 0).map_err(topo)?.latency_s(cluster);
    }
    let shape = CommShape {
        n_ranks: group.len(),
        n_nodes: nodes.len(),
        generation: generation(&gpu.architecture)?,
        intra_kind: match intra.kind {
            TopoIntraKind::NvSwitch => IntraKind::NvSwitch,
            TopoIntraKind::Pcie => IntraKind::Pcie,
        },
        intra_bytes_per_s: intra.bandwidth_bytes_per_s,
        nvlink_link_bytes_per_s: nvlink_link_bytes_per_s(gpu.nvlink_generation),
        intra_latency_s: intra.latency_s,
        nvls_capable: intra.nvls,
        nic_bytes_per_s: spec.node.nic.bandwidth_bytes_per_s,
        nics_per_node: nics_reached(cluster, group)?,
        net_latency_s,
    };
    shape.validate()?;
    Ok(shape)
}

/// The NICs per node the group can send through: the fewest distinct NICs that the group's GPUs on one node
/// reach (two GPUs sharing a NIC share its bandwidth; a node's other NICs serve other GPUs).
fn nics_reached(cluster: &Cluster, group: &Group) -> Result<usize, CollectiveError> {
    let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(group.len());
    for &rank in group {
        let gpu = cluster.gpu(rank).map_err(topo)?;
        if let Some(nic) = cluster.nic_index_of(gpu) {
            pairs.push((cluster.node_of(gpu).0, nic));
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    let mut fewest = usize::MAX;
    for node in pairs.chunk_by(|a, b| a.0 == b.0) {
        fewest = fewest.min(node.len());
    }
    Ok(if fewest == usize::MAX { cluster.spec().node.nics_per_node as usize } else { fewest })
}

/// Time of one collective on `group` of `cluster` under the analytical model. For repeated calls on the same
/// group, build a [`Communicator`] from [`comm_shape`] once instead.
pub fn collective_time(
    cluster: &Cluster,
    group: &Group,
    op: Op,
    bytes: u64,
    config: &CollectiveConfig,
) -> Result<CollectiveCost, CollectiveError> {
    Communicator::new(&comm_shape(cluster, group)?, config)?.time(op, bytes)
}

/// One collective alone on an idle `cluster` under the flow model, run with the algorithm and protocol the
/// analytical model picks for it (as `choir collective --network flow` does): the analytical cost (which names
/// them) and the flow model's seconds.
pub fn flow_time(
    cluster: &Cluster,
    group: &Group,
    op: Op,
    bytes: u64,
    config: &CollectiveConfig,
) -> Result<(CollectiveCost, f64), CollectiveError> {
    let shape = comm_shape(cluster, group)?;
    let cost = Communicator::new(&shape, config)?.time(op, bytes)?;
    let mut sim = FlowSim::new(ClusterRouter::new(cluster))?;
    sim.submit(&FlowCollective {
        ranks: group.to_vec(),
        op,
        bytes,
        algorithm: cost.algorithm,
        config: flow_config(&shape, cost.protocol),
        tag: 0,
    })?;
    let done = sim.run_to_idle()?;
    let seconds = done.first().map_or(0.0, |d| d.end_s - d.start_s);
    Ok((cost, seconds))
}

/// NCCL-like flow settings for a group: as many channels as NCCL's ring graph has, NCCL's per-step hardware
/// latency for the protocol (ring row of `hwLatencies`, tuning.cc; network hops and intra-node hops of a group
/// over several nodes each their own, as NCCL's ring latency has them), for LL / LL128 a per-flow cap of the
/// protocol's share of a channel's bandwidth (LL moves 4 data bytes per 8-byte line: 0.5; LL128 120 of 128: NCCL's
/// 0.92 factor, tuning.cc), and NCCL's NVLS / NVLS-tree algorithm bandwidths for the flows through the
/// reducing switch.
pub fn flow_config(shape: &CommShape, protocol: Protocol) -> FlowConfig {
    let (ring, _) = crate::nccl::tune::graphs(shape);
    let tables = crate::nccl::tune::build(shape, true, k::NET_OVERHEAD_US);
    let algbw = |op: Op, algorithm: Algorithm| {
        let gbs = tables.cells[op.index()][algorithm.index()][Protocol::Simple.index()].bw_gbs;
        if gbs > 0.0 { gbs * 1e9 } else { f64::INFINITY }
    };
    let in_switch = InSwitchRates {
        nvls_all_reduce_bytes_per_s: algbw(Op::AllReduce, Algorithm::Nvls),
        nvls_all_gather_bytes_per_s: algbw(Op::AllGather, Algorithm::Nvls),
        nvls_reduce_scatter_bytes_per_s: algbw(Op::ReduceScatter, Algorithm::Nvls),
        nvls_tree_all_reduce_bytes_per_s: algbw(Op::AllReduce, Algorithm::NvlsTree),
    };
    let intra_hw = if shape.intra_kind == IntraKind::NvSwitch { Hw::NvLink } else { Hw::Pci };
    let hw = if shape.n_nodes == 1 { intra_hw } else { Hw::Net };
    // NCCL's ring latency for a group over several nodes charges its intra-node steps the intra-node hardware
    // latency, at least the network post overhead (tripled for Simple), as `tune` does.
    let overhead_us = k::NET_OVERHEAD_US * if protocol == Protocol::Simple { 3.0 } else { 1.0 };
    let intra_step_us = k::hw_lat_us(intra_hw, Algorithm::Ring, protocol).max(overhead_us);
    FlowConfig {
        channels: ring.n_channels as u32,
        step_latency_s: k::hw_lat_us(hw, Algorithm::Ring, protocol) * 1e-6,
        intra_step_latency_s: intra_step_us * 1e-6,
        rate_cap_bytes_per_s: match protocol {
            Protocol::Ll => 0.5 * ring.bw_intra_gbs * 1e9,
            Protocol::Ll128 => 0.92 * ring.bw_intra_gbs * 1e9,
            Protocol::Simple => f64::INFINITY,
        },
        in_switch,
    }
}

/// A [`Router`] over a real cluster. Link capacities are the share NCCL expects to use: NVLink links scaled by
/// NCCL's per-link figure over the raw rate (H100: 20.6/25), PCIe by `PCI_BW`/raw Gen3, and network links by
/// NCCL's inter-node speed for the NIC over its line rate (400 Gb/s: 48/50).
#[derive(Debug, Clone, Copy)]
pub struct ClusterRouter<'a> {
    cluster: &'a Cluster,
}

impl<'a> ClusterRouter<'a> {
    /// Routes over `cluster`.
    pub fn new(cluster: &'a Cluster) -> ClusterRouter<'a> {
        ClusterRouter { cluster }
    }
}

impl Router for ClusterRouter<'_> {
    fn links(&self) -> Vec<LinkSpec> {
        let cluster = self.cluster;
        let gpu = cluster.gpu_spec();
        let generation = generation(&gpu.architecture).unwrap_or(GpuGeneration::Hopper);
        let intra_factor = match cluster.intra().kind {
            TopoIntraKind::NvSwitch => {
                k::nvlink_link_gbs(generation) * 1e9 / nvlink_link_bytes_per_s(gpu.nvlink_generation)
            }
            TopoIntraKind::Pcie => k::PCI_EFFICIENCY,
        };
        let nic_line_gbs = cluster.spec().node.nic.bandwidth_bytes_per_s / 1e9;
        let net_factor = if nic_line_gbs > 0.0 {
            (k::pick_speed(k::speed_array_inter(generation), nic_line_gbs) / nic_line_gbs).min(1.0)
        } else {
            1.0
        };
        cluster
            .links()
            .map(|(_, link)| {
                let factor = match link.kind {
                    LinkKind::Intra => intra_factor,
                    LinkKind::GpuNic => 1.0,
                    LinkKind::NicLeaf | LinkKind::LeafSpine | LinkKind::SpineCore => net_factor,
                };
                LinkSpec {
                    capacity_bytes_per_s: link.capacity_bytes_per_s * factor,
                    latency_s: link.latency_s,
                }
            })
            .collect()
    }

    fn path(&self, src: u32, dst: u32, flow_hash: u64, out: &mut Vec<u32>) -> Result<(), CollectiveError> {
        let path = self.cluster.route(GpuId(src), GpuId(dst), flow_hash).map_err(topo)?;
        out.extend(path.links.iter().map(|l| l.0));
        Ok(())
    }

    fn node_of(&self, gpu: u32) -> u32 {
        self.cluster.node_of(GpuId(gpu)).0
    }

    fn nic_of(&self, gpu: u32) -> Option<u32> {
        self.cluster.nic_index_of(GpuId(gpu))
    }

    fn reduction_ports(&self, gpu: u32) -> Option<(u32, u32)> {
        if !self.cluster.intra().nvls {
            return None;
        }
        // Inside a node a route is [GPU → switch, switch → GPU]; any neighbour gives this GPU's two ports.
        let node = self.cluster.node_of(GpuId(gpu));
        let per_node = self.cluster.gpus_per_node();
        let first = node.0 * per_node;
        let other = (first..first + per_node).find(|g| *g != gpu && *g < self.cluster.num_gpus())?;
        let up = self.cluster.route(GpuId(gpu), GpuId(other), 0).ok()?.links.first()?.0;
        let down = self.cluster.route(GpuId(other), GpuId(gpu), 0).ok()?.links.last()?.0;
        Some((up, down))
    }
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
