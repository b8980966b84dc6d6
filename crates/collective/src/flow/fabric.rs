//! Where flows go: the [`Router`] trait the lowering asks for paths, and [`RailFabric`], a small built-in
//! rail-optimised leaf/spine cluster used by tests and benchmarks (the real clusters come from the topology
//! crate through `crate::placement`).

use crate::error::CollectiveError;
use crate::flow::LinkSpec;

/// Paths between GPUs over a set of directed links.
pub trait Router {
    /// The directed links, indexed by the ids that paths use.
    fn links(&self) -> Vec<LinkSpec>;
    /// Appends the links from GPU `src` to GPU `dst` to `out`. `flow_hash` picks among equal-cost paths
    /// (ECMP hash-pinned routing); the same inputs always give the same path.
    fn path(&self, src: u32, dst: u32, flow_hash: u64, out: &mut Vec<u32>) -> Result<(), CollectiveError>;
    /// The node a GPU sits in.
    fn node_of(&self, gpu: u32) -> u32;
    /// The GPU's links to and from its in-network-reduction switch (NVLS), if it has one.
    fn reduction_ports(&self, gpu: u32) -> Option<(u32, u32)>;
    /// The index within its node of the NIC a GPU sends and receives through, where several GPUs share one;
    /// `None` (the default) when every GPU has its own NIC or the fabric does not say.
    fn nic_of(&self, _gpu: u32) -> Option<u32> {
        None
    }
}

/// Shape of a [`RailFabric`].
#[derive(Debug, Clone, PartialEq)]
pub struct RailFabricConfig {
    /// Nodes.
    pub n_nodes: usize,
    /// GPUs per node (and NICs per node, one per GPU: rail-optimised).
    pub gpus_per_node: usize,
    /// Nodes under one leaf per rail (a scalable unit); leaves of one rail meet at the spines.
    pub nodes_per_leaf: usize,
    /// Spine switches; every leaf has one uplink to each.
    pub n_spines: usize,
    /// Leaf down:up bandwidth ratio (1 = non-blocking, 4 = 4:1 oversubscribed).
    pub oversubscription: f64,
    /// GPU ↔ NVSwitch bandwidth per direction, bytes/s.
    pub nvlink_bytes_per_s: f64,
    /// NIC line rate per direction, bytes/s.
    pub nic_bytes_per_s: f64,
    /// Latency of each link, seconds.
    pub link_latency_s: f64,
}

/// A rail-optimised cluster: per node one NVSwitch; GPU `g` of every node of a block plugs into leaf
/// (block, rail `g`); leaves connect to every spine.
#[derive(Debug, Clone, PartialEq)]
pub struct RailFabric {
    config: RailFabricConfig,
    n_leaves: usize,
}

impl RailFabric {
    /// Builds the fabric; every count must be at least 1.
    pub fn new(config: RailFabricConfig) -> Result<RailFabric, CollectiveError> {
        for (field, value) in [
            ("n_nodes", config.n_nodes as f64),
            ("gpus_per_node", config.gpus_per_node as f64),
            ("nodes_per_leaf", config.nodes_per_leaf as f64),
            ("n_spines", config.n_spines as f64),
            ("oversubscription", config.oversubscription),
            ("nvlink_bytes_per_s", config.nvlink_bytes_per_s),
            ("nic_bytes_per_s", config.nic_bytes_per_s),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(CollectiveError::BadFigure { field, value });
            }
        }
        let blocks = config.n_nodes.div_ceil(config.nodes_per_leaf);
        let n_leaves = blocks * config.gpus_per_node;
        Ok(RailFabric { config, n_leaves })
    }

    /// Total GPUs.
    pub fn num_gpus(&self) -> usize {
        self.config.n_nodes * self.config.gpus_per_node
    }

    fn n_gpus(&self) -> u32 {
        self.num_gpus() as u32
    }

    // Link id layout: [nvs up | nvs down | nic up | nic down] per GPU, then leaf→spine, spine→leaf.
    fn nvs_up(&self, gpu: u32) -> u32 {
        gpu
    }
    fn nvs_down(&self, gpu: u32) -> u32 {
        self.n_gpus() + gpu
    }
    fn nic_up(&self, gpu: u32) -> u32 {
        2 * self.n_gpus() + gpu
    }
    fn nic_down(&self, gpu: u32) -> u32 {
        3 * self.n_gpus() + gpu
    }
    fn leaf_to_spine(&self, leaf: usize, spine: usize) -> u32 {
        (4 * self.num_gpus() + leaf * self.config.n_spines + spine) as u32
    }
    fn spine_to_leaf(&self, leaf: usize, spine: usize) -> u32 {
        (4 * self.num_gpus() + self.n_leaves * self.config.n_spines + leaf * self.config.n_spines + spine)
            as u32
    }
    fn leaf_of(&self, gpu: u32) -> usize {
        let node = gpu as usize / self.config.gpus_per_node;
        let rail = gpu as usize % self.config.gpus_per_node;
        (node / self.config.nodes_per_leaf) * self.config.gpus_per_node + rail
    }
}

impl Router for RailFabric {
    fn links(&self) -> Vec<LinkSpec> {
        let c = &self.config;
        let gpu_link = |bw| LinkSpec { capacity_bytes_per_s: bw, latency_s: c.link_latency_s };
        let uplink_bytes_per_s =
            c.nodes_per_leaf as f64 * c.nic_bytes_per_s / (c.n_spines as f64 * c.oversubscription);
        let mut links = Vec::with_capacity(4 * self.num_gpus() + 2 * self.n_leaves * c.n_spines);
        links.extend((0..2 * self.num_gpus()).map(|_| gpu_link(c.nvlink_bytes_per_s)));
        links.extend((0..2 * self.num_gpus()).map(|_| gpu_link(c.nic_bytes_per_s)));
        links.extend((0..2 * self.n_leaves * c.n_spines).map(|_| gpu_link(uplink_bytes_per_s)));
        links
    }

    fn path(&self, src: u32, dst: u32, flow_hash: u64, out: &mut Vec<u32>) -> Result<(), CollectiveError> {
        let n = self.n_gpus();
        if src >= n || dst >= n {
            return Err(CollectiveError::BadId { what: "gpu", id: src.max(dst) as usize, len: n as usize });
        }
        if src == dst {
            return Ok(());
        }
        if self.node_of(src) == self.node_of(dst) {
            out.extend([self.nvs_up(src), self.nvs_down(dst)]);
            return Ok(());
        }
        let (leaf_src, leaf_dst) = (self.leaf_of(src), self.leaf_of(dst));
        out.push(self.nic_up(src));
        if leaf_src != leaf_dst {
            let spine = (mix(flow_hash) % self.config.n_spines as u64) as usize;
            out.extend([self.leaf_to_spine(leaf_src, spine), self.spine_to_leaf(leaf_dst, spine)]);
        }
        out.push(self.nic_down(dst));
        Ok(())
    }

    fn node_of(&self, gpu: u32) -> u32 {
        gpu / self.config.gpus_per_node as u32
    }

    fn reduction_ports(&self, gpu: u32) -> Option<(u32, u32)> {
        Some((self.nvs_up(gpu), self.nvs_down(gpu)))
    }
}

/// SplitMix64 finaliser: spreads consecutive flow hashes over the equal-cost paths.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
