//! A built cluster: a directed petgraph graph of GPUs, node switches, NICs and fabric switches, with ids.
//!
//! Every cable is two directed links, created together: the link with an even id goes "up" (away from the GPU)
//! and the next odd id is the same cable back, so [`Cluster::reverse`] is `id ^ 1`.

use petgraph::graph::DiGraph;
use serde::Serialize;

use crate::TopologyError;
use crate::catalog::GpuSpec;
use crate::shape::FabricShape;
use crate::spec::{ClusterSpec, IntraNodeFabric, NicConfig};

/// A GPU, by global rank (0..num_gpus; node-major: rank = node · gpus_per_node + local rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GpuId(pub u32);

/// A node (server or NVLink domain), 0..num_nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NodeId(pub u32);

/// A directed link, 0..num_links; also its edge index in [`Cluster::graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct LinkId(pub u32);

/// A vertex of the graph; also its node index in [`Cluster::graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct VertexId(pub u32);

/// What a vertex is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Vertex {
    /// A GPU.
    Gpu {
        /// Its rank.
        gpu: GpuId,
        /// Its node.
        node: NodeId,
    },
    /// The NVSwitch crossbar of a node (all of a node's NVSwitch chips as one non-blocking switch).
    NvSwitch {
        /// Its node.
        node: NodeId,
    },
    /// The PCIe switching of a node, as one switch.
    PcieSwitch {
        /// Its node.
        node: NodeId,
    },
    /// A scale-out NIC.
    Nic {
        /// Its node.
        node: NodeId,
        /// Index within the node (the rail, in a rail-optimized fabric).
        index: u32,
    },
    /// A leaf (first-tier) switch.
    Leaf {
        /// Global leaf index.
        index: u32,
    },
    /// A spine switch (two tiers) or aggregation switch (three tiers).
    Spine {
        /// Global index.
        index: u32,
        /// Its pod (0 with two tiers).
        pod: u32,
    },
    /// A core switch (three tiers).
    Core {
        /// Global index.
        index: u32,
        /// Its core group (the aggregation index it joins across pods).
        group: u32,
    },
}

/// What a link connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum LinkKind {
    /// GPU ↔ node switch (NVLink or PCIe, see [`IntraNodeFabric::kind`]).
    Intra,
    /// GPU ↔ its NIC (PCIe).
    GpuNic,
    /// NIC ↔ leaf.
    NicLeaf,
    /// Leaf ↔ spine/aggregation.
    LeafSpine,
    /// Aggregation ↔ core.
    SpineCore,
}

/// One directed link.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Link {
    /// Where data leaves.
    pub src: VertexId,
    /// Where data arrives.
    pub dst: VertexId,
    /// What it connects.
    pub kind: LinkKind,
    /// Capacity in this direction, bytes/s.
    pub capacity_bytes_per_s: f64,
    /// Latency to cross it (cable, plus the switch or NIC it enters), seconds.
    pub latency_s: f64,
}

/// A routed path: directed links from the source GPU to the destination GPU, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Path {
    /// The links, in order (empty when source and destination are the same GPU).
    pub links: Vec<LinkId>,
}

impl Path {
    /// Number of links (hops).
    pub fn hops(&self) -> usize {
        self.links.len()
    }

    /// Sum of the links' latencies, seconds.
    pub fn latency_s(&self, cluster: &Cluster) -> f64 {
        self.links.iter().map(|&l| cluster.link(l).latency_s).sum()
    }

    /// The smallest link capacity on the path, bytes/s (infinite for an empty path).
    pub fn bottleneck_bytes_per_s(&self, cluster: &Cluster) -> f64 {
        self.links.iter().map(|&l| cluster.link(l).capacity_bytes_per_s).fold(f64::INFINITY, f64::min)
    }
}

/// A cluster instantiated from a [`ClusterSpec`] at a given size: the graph plus the tables that route on it.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub(crate) spec: ClusterSpec,
    pub(crate) shape: FabricShape,
    pub(crate) num_gpus: u32,
    pub(crate) graph: DiGraph<Vertex, LinkId, u32>,
    pub(crate) links: Vec<Link>,
    /// Per GPU: its link up to the node switch.
    pub(crate) intra_up: Vec<LinkId>,
    /// Per GPU: its link up to its NIC (empty without a fabric).
    pub(crate) gpu_nic_up: Vec<LinkId>,
    /// Per NIC (global, node-major): its link up to its leaf.
    pub(crate) nic_up: Vec<LinkId>,
    /// Per NIC: its leaf.
    pub(crate) nic_leaf: Vec<u32>,
    /// Per leaf, `leaf_up_ports` uplinks, grouped by spine: entry `k` goes to spine `k / leaf_spine_parallel`.
    pub(crate) leaf_up: Vec<LinkId>,
    /// Per aggregation switch, `spine_up_ports` uplinks: entry `k` goes to core `k / spine_core_parallel` of
    /// its group.
    pub(crate) spine_up: Vec<LinkId>,
}

impl Cluster {
    /// Instantiates `spec` with `num_gpus` GPUs (a multiple of `gpus_per_node`, or fewer than one node).
    pub fn build(spec: &ClusterSpec, num_gpus: u32) -> Result<Cluster, TopologyError> {
        crate::construct::build(spec, num_gpus)
    }

    /// Instantiates `spec` at its default size (`gpus` in the file).
    pub fn build_default(spec: &ClusterSpec) -> Result<Cluster, TopologyError> {
        Cluster::build(spec, spec.default_num_gpus)
    }

    /// The description this cluster was built from.
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// Switch counts and cabling.
    pub fn shape(&self) -> &FabricShape {
        &self.shape
    }

    /// GPUs in the cluster.
    pub fn num_gpus(&self) -> u32 {
        self.num_gpus
    }

    /// GPUs per node.
    pub fn gpus_per_node(&self) -> u32 {
        self.shape.gpus_per_node
    }

    /// Nodes in the cluster.
    pub fn num_nodes(&self) -> u32 {
        self.shape.num_nodes
    }

    /// The GPU of a rank.
    pub fn gpu(&self, rank: u32) -> Result<GpuId, TopologyError> {
        if rank < self.num_gpus { Ok(GpuId(rank)) } else { Err(self.out_of_range(rank)) }
    }

    /// The node a GPU is in.
    pub fn node_of(&self, gpu: GpuId) -> NodeId {
        NodeId(gpu.0 / self.shape.gpus_per_node)
    }

    /// A GPU's index within its node.
    pub fn local_rank(&self, gpu: GpuId) -> u32 {
        gpu.0 % self.shape.gpus_per_node
    }

    /// The GPU model (catalog entry).
    pub fn gpu_spec(&self) -> &GpuSpec {
        &self.spec.node.gpu
    }

    /// The intra-node fabric.
    pub fn intra(&self) -> &IntraNodeFabric {
        &self.spec.node.intra
    }

    /// The NIC configuration.
    pub fn nic(&self) -> &NicConfig {
        &self.spec.node.nic
    }

    /// Scale-out bandwidth available to one GPU when all GPUs of a node send at once, bytes/s per direction:
    /// the node's NIC capacity shared by its GPUs, capped by a GPU's PCIe path to its NIC.
    pub fn nic_bandwidth_per_gpu_bytes_per_s(&self) -> f64 {
        let n = &self.spec.node;
        let shared = n.nic.bandwidth_bytes_per_s * f64::from(n.nics_per_node) / f64::from(n.gpus_per_node);
        shared.min(n.nic.gpu_nic_bytes_per_s)
    }

    /// Index (within its node) of the NIC a GPU sends through, `None` without NICs.
    pub fn nic_index_of(&self, gpu: GpuId) -> Option<u32> {
        let nics = self.spec.node.nics_per_node;
        (nics > 0).then(|| self.local_rank(gpu) * nics / self.spec.node.gpus_per_node)
    }

    /// The directed link with this id.
    pub fn link(&self, id: LinkId) -> &Link {
        &self.links[id.0 as usize]
    }

    /// Every directed link with its id, in id order.
    pub fn links(&self) -> impl ExactSizeIterator<Item = (LinkId, &Link)> + '_ {
        self.links.iter().enumerate().map(|(i, l)| (LinkId(i as u32), l))
    }

    /// Number of directed links.
    pub fn num_links(&self) -> usize {
        self.links.len()
    }

    /// The same cable in the other direction.
    pub fn reverse(&self, id: LinkId) -> LinkId {
        LinkId(id.0 ^ 1)
    }

    /// What a vertex is.
    pub fn vertex(&self, id: VertexId) -> Vertex {
        self.graph[petgraph::graph::NodeIndex::new(id.0 as usize)]
    }

    /// Number of vertices.
    pub fn num_vertices(&self) -> usize {
        self.graph.node_count()
    }

    /// The vertex of a GPU (GPUs come first, so it is the rank).
    pub fn gpu_vertex(&self, gpu: GpuId) -> VertexId {
        VertexId(gpu.0)
    }

    /// The graph itself: vertices are [`Vertex`], edge weights the [`LinkId`] (equal to the edge index).
    pub fn graph(&self) -> &DiGraph<Vertex, LinkId, u32> {
        &self.graph
    }

    pub(crate) fn out_of_range(&self, rank: u32) -> TopologyError {
        TopologyError::RankOutOfRange { rank, num_gpus: self.num_gpus }
    }
}
