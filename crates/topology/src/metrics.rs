//! Whole-cluster figures: bisection bandwidth, diameter and a summary record.

use serde::Serialize;

use crate::cluster::{Cluster, GpuId};
use crate::spec::{FabricKind, IntraKind};

/// The figures `choir topology` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Cluster name.
    pub name: String,
    /// Where the description came from.
    pub origin: String,
    /// One-line description.
    pub description: String,
    /// GPU catalog slug.
    pub gpu: String,
    /// GPUs.
    pub num_gpus: u32,
    /// Nodes.
    pub num_nodes: u32,
    /// GPUs per node.
    pub gpus_per_node: u32,
    /// Intra-node fabric kind.
    pub intra: IntraKind,
    /// Intra-node bandwidth per GPU per direction, bytes/s.
    pub intra_bandwidth_bytes_per_s: f64,
    /// Whether the node switch reduces in-network (NVLS).
    pub nvls: bool,
    /// NICs per node.
    pub nics_per_node: u32,
    /// NIC model.
    pub nic: String,
    /// Line rate of one NIC per direction, bytes/s.
    pub nic_bandwidth_bytes_per_s: f64,
    /// Scale-out bandwidth per GPU per direction, bytes/s.
    pub nic_bandwidth_per_gpu_bytes_per_s: f64,
    /// Fabric shape.
    pub fabric: FabricKind,
    /// `infiniband` or `ethernet`.
    pub protocol: String,
    /// Switch model.
    pub switch: String,
    /// Switch radix.
    pub switch_radix: u32,
    /// Switch tiers in use (0 = single node, no fabric).
    pub tiers: u8,
    /// Leaf switches.
    pub leaves: u32,
    /// Spine (or aggregation) switches.
    pub spines: u32,
    /// Core switches.
    pub cores: u32,
    /// Leaf down:up ratio.
    pub oversubscription: f64,
    /// Graph vertices.
    pub num_vertices: usize,
    /// Directed links.
    pub num_links: usize,
    /// Bisection bandwidth per direction, bytes/s.
    pub bisection_bandwidth_bytes_per_s: f64,
    /// Longest routed path between two GPUs, in links.
    pub diameter_hops: usize,
    /// Equal-cost paths between GPU 0 and the last GPU.
    pub max_equal_cost_paths: u64,
    /// Aggregate dense BF16 (FP16 where there is no BF16) peak of all GPUs, FLOP/s.
    pub peak_bf16_flops_per_s: f64,
}

impl Cluster {
    /// Bandwidth across a cut that splits the GPUs in two halves, per direction, bytes/s.
    ///
    /// One node: half the GPUs at full intra-node bandwidth. Several nodes: the cut runs between nodes (NVLink
    /// is never the narrow part), so it is the smallest of: the scale-out egress of half the nodes; half the
    /// leaf uplink capacity (two or more tiers); half the aggregation uplink capacity (three tiers). This is
    /// the usual fat-tree bisection; with partly filled leaves a balanced cut may need slightly more.
    pub fn bisection_bandwidth_bytes_per_s(&self) -> f64 {
        let s = &self.shape;
        let n = &self.spec.node;
        if s.num_nodes == 1 {
            return f64::from(s.gpus_per_node / 2) * n.intra.bandwidth_bytes_per_s;
        }
        // Each NIC is fed by the GPUs that send through it, over their own PCIe paths.
        let node_egress: f64 = (0..n.nics_per_node)
            .map(|nic| {
                let feeders =
                    (0..n.gpus_per_node).filter(|l| l * n.nics_per_node / n.gpus_per_node == nic).count();
                n.nic.bandwidth_bytes_per_s.min(feeders as f64 * n.nic.gpu_nic_bytes_per_s)
            })
            .sum();
        let link = self.spec.fabric.link_bytes_per_s;
        let mut cut = f64::from(s.num_nodes / 2) * node_egress;
        if s.tiers >= 2 {
            cut = cut.min(s.leaf_spine_cables() as f64 * link / 2.0);
        }
        if s.tiers == 3 {
            cut = cut.min(f64::from(s.num_spines()) * f64::from(s.spine_up_ports) * link / 2.0);
        }
        cut
    }

    /// The longest routed path between two GPUs, in links. By the fabric's symmetry the GPU farthest from GPU 0
    /// is as far as any pair gets, so this routes from GPU 0 to every GPU (O(GPUs)).
    pub fn diameter_hops(&self) -> usize {
        let mut links = Vec::with_capacity(8);
        (0..self.num_gpus)
            .map(|g| {
                links.clear();
                // In range by construction, so routing cannot fail.
                self.route_into(GpuId(0), GpuId(g), 0, &mut links).map_or(0, |()| links.len())
            })
            .max()
            .unwrap_or(0)
    }

    /// The figures `choir topology` prints.
    pub fn summary(&self) -> Summary {
        let spec = &self.spec;
        let s = &self.shape;
        let last = GpuId(self.num_gpus - 1);
        let gpu = &spec.node.gpu;
        Summary {
            name: spec.name.clone(),
            origin: spec.origin.clone(),
            description: spec.description.clone(),
            gpu: gpu.slug.clone(),
            num_gpus: self.num_gpus,
            num_nodes: s.num_nodes,
            gpus_per_node: s.gpus_per_node,
            intra: spec.node.intra.kind,
            intra_bandwidth_bytes_per_s: spec.node.intra.bandwidth_bytes_per_s,
            nvls: spec.node.intra.nvls,
            nics_per_node: spec.node.nics_per_node,
            nic: spec.node.nic.model.clone(),
            nic_bandwidth_bytes_per_s: spec.node.nic.bandwidth_bytes_per_s,
            nic_bandwidth_per_gpu_bytes_per_s: self.nic_bandwidth_per_gpu_bytes_per_s(),
            fabric: spec.fabric.kind,
            protocol: spec.fabric.protocol.clone(),
            switch: spec.fabric.switch.slug.clone(),
            switch_radix: spec.fabric.switch.radix,
            tiers: s.tiers,
            leaves: s.leaves,
            spines: s.num_spines(),
            cores: s.num_cores(),
            oversubscription: spec.fabric.oversubscription,
            num_vertices: self.num_vertices(),
            num_links: self.num_links(),
            bisection_bandwidth_bytes_per_s: self.bisection_bandwidth_bytes_per_s(),
            diameter_hops: self.diameter_hops(),
            max_equal_cost_paths: self.equal_cost_paths_count(GpuId(0), last).unwrap_or(1),
            peak_bf16_flops_per_s: f64::from(self.num_gpus)
                * gpu.bf16_flops_per_s.unwrap_or(gpu.fp16_flops_per_s),
        }
    }
}
