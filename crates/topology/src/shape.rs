//! How many switches of each tier a fabric needs for a given number of GPUs, and how they are cabled.
//!
//! The rules, for switches of radix `k` and a leaf down:up ratio `r`:
//! - a leaf has `d` ports down (to NICs) and `u` up. Fat-tree: `u = ⌊k/(1+r)⌋`, `d = k − u`, and a leaf takes
//!   ⌊d / NICs per node⌋ whole nodes (top-of-rack). Rail-optimized:
//!   `d` = nodes per scalable unit (SU), `u = ⌈d/r⌉`, and an SU has one leaf per rail (NIC index).
//! - two tiers while there are at most `k` leaves: `S` spines, the smallest divisor of `u` with `S·k ≥ L·u`,
//!   every leaf cabled to every spine with `u/S` parallel links. For the DGX H100 SuperPOD (k = 64, 32 nodes per
//!   SU, 8 rails) this gives 4, 8, 16, 16 spines for 1-4 SUs, as in RA-11333-001 Table 4.
//! - three tiers beyond: pods of `P` leaves (as many whole SUs as fill `k/2` aggregation down-ports), `A`
//!   aggregation switches per pod chosen the same way, and core group `j` joining aggregation switch `j` of
//!   every pod. Aggregation and core tiers are non-blocking; only the leaf tier is oversubscribed.

use serde::Serialize;

use crate::TopologyError;
use crate::spec::{ClusterSpec, FabricKind};

/// The instantiated shape of a cluster: counts of nodes and switches, and the cabling multiplicities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FabricShape {
    /// Nodes in the cluster.
    pub num_nodes: u32,
    /// GPUs per node (fewer than the spec's when the whole cluster is one partial node).
    pub gpus_per_node: u32,
    /// NICs per node that are cabled (0 for a single-node cluster: there is no scale-out fabric).
    pub nics_per_node: u32,
    /// Switch tiers in use: 0 (no fabric), 1 (one leaf), 2 (leaf-spine) or 3 (leaf-spine-core).
    pub tiers: u8,
    /// Leaf switches.
    pub leaves: u32,
    /// Leaf ports facing NICs.
    pub leaf_down_ports: u32,
    /// Leaf ports facing spines (0 below two tiers).
    pub leaf_up_ports: u32,
    /// Pods (1 below three tiers).
    pub pods: u32,
    /// Leaves per pod (= `leaves` below three tiers).
    pub pod_leaves: u32,
    /// Spine switches (two tiers) or aggregation switches (three tiers) per pod.
    pub spines_per_pod: u32,
    /// Parallel cables between a leaf and each spine of its pod.
    pub leaf_spine_parallel: u32,
    /// Uplinks of each aggregation switch to the core (three tiers only).
    pub spine_up_ports: u32,
    /// Core switches per core group (three tiers only; there are `spines_per_pod` groups).
    pub cores_per_group: u32,
    /// Parallel cables between an aggregation switch and each core of its group.
    pub spine_core_parallel: u32,
}

impl FabricShape {
    /// Spine (or aggregation) switches in total.
    pub fn num_spines(&self) -> u32 {
        if self.tiers >= 2 { self.pods * self.spines_per_pod } else { 0 }
    }

    /// Core switches in total.
    pub fn num_cores(&self) -> u32 {
        if self.tiers == 3 { self.spines_per_pod * self.cores_per_group } else { 0 }
    }

    /// Leaf-to-spine cables in total.
    pub fn leaf_spine_cables(&self) -> u64 {
        u64::from(self.leaves) * u64::from(self.leaf_up_ports)
    }
}

/// Checks that `spec` can be built with `num_gpus` GPUs and returns the shape. `field` is what the error names
/// as the size's source (`gpus` for the file's default).
pub(crate) fn check_size(
    spec: &ClusterSpec,
    num_gpus: u32,
    field: &str,
) -> Result<FabricShape, TopologyError> {
    let origin = spec.origin.as_str();
    let bad = |field: &str, value: &dyn std::fmt::Display, expected: String| {
        TopologyError::invalid(origin, field, value, expected)
    };
    let g = spec.node.gpus_per_node;
    if num_gpus == 0 {
        return Err(bad(field, &0, "at least 1 GPU".to_owned()));
    }
    if num_gpus <= g {
        return Ok(FabricShape { num_nodes: 1, gpus_per_node: num_gpus, ..FabricShape::single_node() });
    }
    if !num_gpus.is_multiple_of(g) {
        return Err(bad(field, &num_gpus, format!("a multiple of node.gpus_per_node ({g}), or at most {g}")));
    }
    let num_nodes = num_gpus / g;
    let nics = spec.node.nics_per_node;
    if nics == 0 {
        return Err(bad(
            "node.nics",
            &0,
            format!(
                "at least 1 NIC per node: with {num_nodes} nodes, GPUs of different nodes would have no path"
            ),
        ));
    }
    let f = &spec.fabric;
    let k = f.switch.radix;
    let total_nics = u64::from(num_nodes) * u64::from(nics);
    let (leaves, down, up, group) = match f.kind {
        FabricKind::SingleSwitch => {
            if total_nics > u64::from(k) {
                let max = u64::from(k) / u64::from(nics) * u64::from(g);
                return Err(bad(field, &num_gpus, format!("at most {max} GPUs on one switch of radix {k}")));
            }
            (1, total_nics as u32, 0, 1)
        }
        FabricKind::FatTree => {
            let up = ((f64::from(k) / (1.0 + f.oversubscription)).floor() as u32).max(1);
            let down = k - up;
            // Whole nodes per leaf (top-of-rack), so a node's NICs share a leaf.
            let nodes_per_leaf = down / nics;
            if nodes_per_leaf == 0 {
                return Err(bad(
                    "node.nics",
                    &nics,
                    format!("at most {down} NICs per node (leaf ports down)"),
                ));
            }
            (num_nodes.div_ceil(nodes_per_leaf), down, up, 1)
        }
        FabricKind::RailOptimized => {
            let down = f.nodes_per_su;
            let up = (f64::from(down) / f.oversubscription).ceil() as u32;
            if down + up > k {
                return Err(bad(
                    "fabric.nodes_per_su",
                    &down,
                    format!(
                        "at most {} nodes per SU: a leaf of radix {k} needs {down} ports down and {up} up",
                        { (f64::from(k) * f.oversubscription / (1.0 + f.oversubscription)).floor() }
                    ),
                ));
            }
            let sus = num_nodes.div_ceil(down);
            (sus * nics, down, up, nics)
        }
    };
    let mut shape = FabricShape {
        num_nodes,
        gpus_per_node: g,
        nics_per_node: nics,
        tiers: 1,
        leaves,
        leaf_down_ports: down,
        leaf_up_ports: 0,
        pods: 1,
        pod_leaves: leaves,
        spines_per_pod: 0,
        leaf_spine_parallel: 0,
        spine_up_ports: 0,
        cores_per_group: 0,
        spine_core_parallel: 0,
    };
    if leaves == 1 {
        return Ok(shape);
    }
    shape.leaf_up_ports = up;
    let max_tiers = f.tiers.unwrap_or(3);
    if leaves <= k {
        shape.tiers = 2;
        shape.spines_per_pod =
            smallest_divisor_at_least(up, (u64::from(leaves) * u64::from(up)).div_ceil(u64::from(k)));
        shape.leaf_spine_parallel = up / shape.spines_per_pod;
        return if max_tiers >= 2 { Ok(shape) } else { Err(too_big(spec, field, num_gpus, max_tiers)) };
    }
    if max_tiers < 3 {
        return Err(too_big(spec, field, num_gpus, max_tiers));
    }
    let agg_down = k / 2;
    let pod_leaves = (agg_down / group) * group;
    if pod_leaves == 0 {
        return Err(bad(
            "node.nics",
            &nics,
            format!("at most {agg_down} rails for three tiers of radix-{k} switches"),
        ));
    }
    let pods = leaves.div_ceil(pod_leaves);
    if pods > k {
        return Err(too_big(spec, field, num_gpus, 3));
    }
    let aggs =
        smallest_divisor_at_least(up, (u64::from(pod_leaves) * u64::from(up)).div_ceil(u64::from(agg_down)));
    let parallel = up / aggs;
    let agg_up = pod_leaves * parallel;
    let cores =
        smallest_divisor_at_least(agg_up, (u64::from(pods) * u64::from(agg_up)).div_ceil(u64::from(k)));
    shape.tiers = 3;
    shape.pods = pods;
    shape.pod_leaves = pod_leaves;
    shape.spines_per_pod = aggs;
    shape.leaf_spine_parallel = parallel;
    shape.spine_up_ports = agg_up;
    shape.cores_per_group = cores;
    shape.spine_core_parallel = agg_up / cores;
    Ok(shape)
}

impl FabricShape {
    fn single_node() -> FabricShape {
        FabricShape {
            num_nodes: 1,
            gpus_per_node: 0,
            nics_per_node: 0,
            tiers: 0,
            leaves: 0,
            leaf_down_ports: 0,
            leaf_up_ports: 0,
            pods: 0,
            pod_leaves: 0,
            spines_per_pod: 0,
            leaf_spine_parallel: 0,
            spine_up_ports: 0,
            cores_per_group: 0,
            spine_core_parallel: 0,
        }
    }
}

fn too_big(spec: &ClusterSpec, field: &str, num_gpus: u32, tiers: u8) -> TopologyError {
    let k = spec.fabric.switch.radix;
    let fix = if tiers < 3 {
        "raise fabric.tiers, or use fewer GPUs"
    } else {
        "use a larger-radix switch, or fewer GPUs"
    };
    TopologyError::invalid(
        &spec.origin,
        field,
        num_gpus,
        format!("a size that fits {tiers} tier(s) of radix-{k} switches ({fix})"),
    )
}

/// The smallest divisor of `n` that is at least `min` (`n` itself if none is smaller).
fn smallest_divisor_at_least(n: u32, min: u64) -> u32 {
    (1..=n).find(|d| n.is_multiple_of(*d) && u64::from(*d) >= min).unwrap_or(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divisors() {
        assert_eq!(smallest_divisor_at_least(32, 12), 16);
        assert_eq!(smallest_divisor_at_least(32, 4), 4);
        assert_eq!(smallest_divisor_at_least(32, 0), 1);
        assert_eq!(smallest_divisor_at_least(20, 7), 10);
    }
}
