//! Routing: the path between two GPUs, with deterministic ECMP across equal-cost paths.
//!
//! Routing follows the fabric's structure instead of searching the graph, so a route costs O(hops) with no
//! precomputed tables beyond the per-switch uplink lists: up from the source leaf to the lowest common tier,
//! then down. Where several equal-cost links lead on (uplinks to different spines, parallel cables), the choice
//! comes from `flow_hash` read as a mixed-radix number, first digit = the first choice on the path. So hashes
//! `0..equal_cost_paths_count(src, dst)` enumerate every equal-cost path exactly once, and consecutive hashes
//! land on different spines. Pass [`flow_hash`] of the flow's identity to model real hash-based ECMP, where
//! unrelated flows can collide.

use crate::TopologyError;
use crate::cluster::{Cluster, GpuId, LinkId, Path};

/// A well-mixed 64-bit hash of a flow's identity (source, destination, channel), for [`Cluster::route`]:
/// SplitMix64's finaliser over the packed fields.
pub fn flow_hash(src: GpuId, dst: GpuId, channel: u32) -> u64 {
    let packed = (u64::from(src.0) << 32 | u64::from(dst.0)) ^ (u64::from(channel).rotate_left(17));
    let mut z = packed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Where two GPUs' lowest common switch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meet {
    SameGpu,
    SameNode,
    SameLeaf,
    SamePod,
    Core,
}

impl Cluster {
    /// The path from `src` to `dst`. Among equal-cost paths, `flow_hash` picks one, deterministically.
    pub fn route(&self, src: GpuId, dst: GpuId, flow_hash: u64) -> Result<Path, TopologyError> {
        let mut links = Vec::with_capacity(8);
        self.route_into(src, dst, flow_hash, &mut links)?;
        Ok(Path { links })
    }

    /// Like [`Cluster::route`], appending the links to `out` (no allocation once `out` has grown).
    pub fn route_into(
        &self,
        src: GpuId,
        dst: GpuId,
        flow_hash: u64,
        out: &mut Vec<LinkId>,
    ) -> Result<(), TopologyError> {
        self.check(src)?;
        self.check(dst)?;
        let s = &self.shape;
        match self.meet(src, dst) {
            Meet::SameGpu => {}
            Meet::SameNode => {
                out.push(self.intra_up[src.0 as usize]);
                out.push(self.reverse(self.intra_up[dst.0 as usize]));
            }
            meet => {
                let (nic_s, nic_d) = (self.global_nic(src), self.global_nic(dst));
                let (leaf_s, leaf_d) = (self.nic_leaf[nic_s], self.nic_leaf[nic_d]);
                out.push(self.gpu_nic_up[src.0 as usize]);
                out.push(self.nic_up[nic_s]);
                let mut digits = Digits(flow_hash);
                let u = s.leaf_up_ports;
                let par1 = s.leaf_spine_parallel;
                match meet {
                    Meet::SamePod => {
                        let k = digits.next(u);
                        out.push(self.leaf_up[(leaf_s * u + k) as usize]);
                        let j = k / par1;
                        let down = self.leaf_up[(leaf_d * u + j * par1 + digits.next(par1)) as usize];
                        out.push(self.reverse(down));
                    }
                    Meet::Core => {
                        let k = digits.next(u);
                        out.push(self.leaf_up[(leaf_s * u + k) as usize]);
                        let j = k / par1;
                        let agg_s = (leaf_s / s.pod_leaves) * s.spines_per_pod + j;
                        let agg_d = (leaf_d / s.pod_leaves) * s.spines_per_pod + j;
                        let up2 = s.spine_up_ports;
                        let par2 = s.spine_core_parallel;
                        let k2 = digits.next(up2);
                        out.push(self.spine_up[(agg_s * up2 + k2) as usize]);
                        let c = k2 / par2;
                        let down2 = self.spine_up[(agg_d * up2 + c * par2 + digits.next(par2)) as usize];
                        out.push(self.reverse(down2));
                        let down1 = self.leaf_up[(leaf_d * u + j * par1 + digits.next(par1)) as usize];
                        out.push(self.reverse(down1));
                    }
                    _ => {}
                }
                out.push(self.reverse(self.nic_up[nic_d]));
                out.push(self.reverse(self.gpu_nic_up[dst.0 as usize]));
            }
        }
        Ok(())
    }

    /// How many distinct equal-cost paths lead from `src` to `dst` (1 inside a node or under one leaf).
    pub fn equal_cost_paths_count(&self, src: GpuId, dst: GpuId) -> Result<u64, TopologyError> {
        self.check(src)?;
        self.check(dst)?;
        let s = &self.shape;
        let (u, par1) = (u64::from(s.leaf_up_ports), u64::from(s.leaf_spine_parallel));
        Ok(match self.meet(src, dst) {
            Meet::SameGpu | Meet::SameNode | Meet::SameLeaf => 1,
            Meet::SamePod => u * par1,
            Meet::Core => u * u64::from(s.spine_up_ports) * u64::from(s.spine_core_parallel) * par1,
        })
    }

    fn meet(&self, src: GpuId, dst: GpuId) -> Meet {
        if src == dst {
            return Meet::SameGpu;
        }
        if self.node_of(src) == self.node_of(dst) {
            return Meet::SameNode;
        }
        let leaf_s = self.nic_leaf[self.global_nic(src)];
        let leaf_d = self.nic_leaf[self.global_nic(dst)];
        if leaf_s == leaf_d {
            Meet::SameLeaf
        } else if self.shape.tiers < 3 || leaf_s / self.shape.pod_leaves == leaf_d / self.shape.pod_leaves {
            Meet::SamePod
        } else {
            Meet::Core
        }
    }

    /// Global (node-major) index of the NIC a GPU sends through. Only called when the cluster has a fabric.
    fn global_nic(&self, gpu: GpuId) -> usize {
        let node = self.node_of(gpu).0;
        let local = self.nic_index_of(gpu).unwrap_or(0);
        (node * self.shape.nics_per_node + local) as usize
    }

    fn check(&self, gpu: GpuId) -> Result<(), TopologyError> {
        if gpu.0 < self.num_gpus { Ok(()) } else { Err(self.out_of_range(gpu.0)) }
    }
}

/// Reads a hash as a mixed-radix number, one digit per ECMP choice.
struct Digits(u64);

impl Digits {
    fn next(&mut self, radix: u32) -> u32 {
        let radix = u64::from(radix.max(1));
        let digit = self.0 % radix;
        self.0 /= radix;
        digit as u32
    }
}
