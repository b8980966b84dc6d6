//! Building a [`Cluster`]: vertices in a fixed order, cables in a fixed order, then a connectivity check.
//!
//! Vertex order: GPUs (so a GPU's vertex id is its rank), node switches, NICs (node-major), leaves, spines
//! (pod-major), cores (group-major). Cable order: GPU–node switch, GPU–NIC, NIC–leaf, leaf–spine, spine–core.
//! The order is what makes link ids deterministic and lets routing find links by arithmetic.

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::Bfs;

use crate::TopologyError;
use crate::cluster::{Cluster, GpuId, Link, LinkId, LinkKind, NodeId, Vertex};
use crate::shape::{FabricShape, check_size};
use crate::spec::{ClusterSpec, FabricKind, IntraKind};

pub(crate) fn build(spec: &ClusterSpec, num_gpus: u32) -> Result<Cluster, TopologyError> {
    let shape = check_size(spec, num_gpus, "gpus")?;
    let nodes = shape.num_nodes;
    let g = shape.gpus_per_node;
    let nics = shape.nics_per_node;
    let total_nics = nodes * nics;
    let n_vertices = num_gpus + nodes + total_nics + shape.leaves + shape.num_spines() + shape.num_cores();
    let n_cables = u64::from(num_gpus) * if shape.tiers > 0 { 2 } else { 1 }
        + u64::from(total_nics)
        + shape.leaf_spine_cables()
        + u64::from(shape.num_spines()) * u64::from(shape.spine_up_ports);
    let mut b = Builder {
        graph: DiGraph::with_capacity(n_vertices as usize, 2 * n_cables as usize),
        links: Vec::with_capacity(2 * n_cables as usize),
    };

    for rank in 0..num_gpus {
        b.graph.add_node(Vertex::Gpu { gpu: GpuId(rank), node: NodeId(rank / g) });
    }
    let switch_base = num_gpus;
    for node in 0..nodes {
        b.graph.add_node(match spec.node.intra.kind {
            IntraKind::NvSwitch => Vertex::NvSwitch { node: NodeId(node) },
            IntraKind::Pcie => Vertex::PcieSwitch { node: NodeId(node) },
        });
    }
    let nic_base = switch_base + nodes;
    for i in 0..total_nics {
        b.graph.add_node(Vertex::Nic { node: NodeId(i / nics), index: i % nics });
    }
    let leaf_base = nic_base + total_nics;
    for index in 0..shape.leaves {
        b.graph.add_node(Vertex::Leaf { index });
    }
    let spine_base = leaf_base + shape.leaves;
    for index in 0..shape.num_spines() {
        b.graph.add_node(Vertex::Spine { index, pod: index / shape.spines_per_pod.max(1) });
    }
    let core_base = spine_base + shape.num_spines();
    for index in 0..shape.num_cores() {
        b.graph.add_node(Vertex::Core { index, group: index / shape.cores_per_group.max(1) });
    }

    let intra = &spec.node.intra;
    let half_intra_latency_s = intra.latency_s / 2.0;
    let intra_up = (0..num_gpus)
        .map(|rank| {
            let sw = switch_base + rank / g;
            b.cable(
                rank,
                sw,
                LinkKind::Intra,
                intra.bandwidth_bytes_per_s,
                half_intra_latency_s,
                half_intra_latency_s,
            )
        })
        .collect();

    let nic = &spec.node.nic;
    let fabric = &spec.fabric;
    let sw_latency_s = fabric.cable_latency_s + fabric.switch.latency_s;
    let mut gpu_nic_up = Vec::new();
    let mut nic_up = Vec::new();
    let mut nic_leaf = Vec::new();
    if shape.tiers > 0 {
        gpu_nic_up = (0..num_gpus)
            .map(|rank| {
                let node = rank / g;
                let nic_vertex = nic_base + node * nics + (rank % g) * nics / spec.node.gpus_per_node;
                b.cable(
                    rank,
                    nic_vertex,
                    LinkKind::GpuNic,
                    nic.gpu_nic_bytes_per_s,
                    nic.latency_s,
                    nic.latency_s,
                )
            })
            .collect();
        nic_leaf = (0..total_nics).map(|i| leaf_of_nic(spec, &shape, i)).collect();
        nic_up = (0..total_nics)
            .map(|i| {
                let leaf = leaf_base + nic_leaf[i as usize];
                let up = nic.bandwidth_bytes_per_s;
                b.cable(nic_base + i, leaf, LinkKind::NicLeaf, up, sw_latency_s, fabric.cable_latency_s)
            })
            .collect();
    }

    let mut leaf_up = Vec::with_capacity(shape.leaf_spine_cables() as usize);
    if shape.tiers >= 2 {
        for leaf in 0..shape.leaves {
            let pod = leaf / shape.pod_leaves;
            for j in 0..shape.spines_per_pod {
                let spine = spine_base + pod * shape.spines_per_pod + j;
                for _ in 0..shape.leaf_spine_parallel {
                    let bw = fabric.link_bytes_per_s;
                    leaf_up.push(b.cable(
                        leaf_base + leaf,
                        spine,
                        LinkKind::LeafSpine,
                        bw,
                        sw_latency_s,
                        sw_latency_s,
                    ));
                }
            }
        }
    }
    let mut spine_up = Vec::new();
    if shape.tiers == 3 {
        for agg in 0..shape.num_spines() {
            let group = agg % shape.spines_per_pod;
            for c in 0..shape.cores_per_group {
                let core = core_base + group * shape.cores_per_group + c;
                for _ in 0..shape.spine_core_parallel {
                    let bw = fabric.link_bytes_per_s;
                    spine_up.push(b.cable(
                        spine_base + agg,
                        core,
                        LinkKind::SpineCore,
                        bw,
                        sw_latency_s,
                        sw_latency_s,
                    ));
                }
            }
        }
    }

    let cluster = Cluster {
        spec: spec.clone(),
        shape,
        num_gpus,
        graph: b.graph,
        links: b.links,
        intra_up,
        gpu_nic_up,
        nic_up,
        nic_leaf,
        leaf_up,
        spine_up,
    };
    check_connected(&cluster)?;
    Ok(cluster)
}

/// The leaf a NIC (global index, node-major) is cabled to.
fn leaf_of_nic(spec: &ClusterSpec, shape: &FabricShape, nic: u32) -> u32 {
    let nics = shape.nics_per_node;
    match spec.fabric.kind {
        FabricKind::SingleSwitch => 0,
        FabricKind::FatTree => (nic / nics) / (shape.leaf_down_ports / nics),
        FabricKind::RailOptimized => {
            let node = nic / nics;
            let su = node / spec.fabric.nodes_per_su;
            su * nics + nic % nics
        }
    }
}

/// Every GPU must be reachable from GPU 0 (a breadth-first search; every cable runs both ways, so that suffices).
fn check_connected(cluster: &Cluster) -> Result<(), TopologyError> {
    let graph = cluster.graph();
    let mut seen = vec![false; cluster.num_gpus as usize];
    let mut bfs = Bfs::new(graph, NodeIndex::new(0));
    while let Some(v) = bfs.next(graph) {
        if let Vertex::Gpu { gpu, .. } = graph[v] {
            seen[gpu.0 as usize] = true;
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(TopologyError::Disconnected {
            origin: cluster.spec.origin.clone(),
            from: 0,
            to: missing as u32,
        });
    }
    Ok(())
}

struct Builder {
    graph: DiGraph<Vertex, LinkId, u32>,
    links: Vec<Link>,
}

impl Builder {
    /// Adds one cable as two directed links (`a → b` with an even id, then `b → a`) and returns the first id.
    fn cable(
        &mut self,
        a: u32,
        b: u32,
        kind: LinkKind,
        bytes_per_s: f64,
        up_latency_s: f64,
        down_latency_s: f64,
    ) -> LinkId {
        let up = LinkId(self.links.len() as u32);
        let (va, vb) = (NodeIndex::new(a as usize), NodeIndex::new(b as usize));
        for (src, dst, latency_s) in [(va, vb, up_latency_s), (vb, va, down_latency_s)] {
            let id = LinkId(self.links.len() as u32);
            self.graph.add_edge(src, dst, id);
            self.links.push(Link {
                src: crate::VertexId(src.index() as u32),
                dst: crate::VertexId(dst.index() as u32),
                kind,
                capacity_bytes_per_s: bytes_per_s,
                latency_s,
            });
        }
        up
    }
}
