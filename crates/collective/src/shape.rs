//! `CommShape`: the few facts about hardware and placement that the analytical model needs.
//!
//! It is deliberately small and independent of the topology crate, so the NCCL-style model can be evaluated
//! (and tested) on a description like "8 ranks on 1 node of H100 behind an NVSwitch". `placement` builds one
//! from a real `topology::Cluster` and a group of ranks.

use crate::error::CollectiveError;

/// GPU architecture generation; selects NCCL's per-generation tuning rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GpuGeneration {
    /// SM70 (V100).
    Volta,
    /// SM80 (A100).
    Ampere,
    /// SM90 (H100, H200).
    Hopper,
    /// SM100 (B200, GB200).
    Blackwell,
}

impl GpuGeneration {
    /// Row index into NCCL's per-compute-capability tables (Volta 0 … Blackwell 3).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The generation from a CUDA compute capability written as major·10 + minor (80, 90, 100).
    pub fn from_compute_capability(cc: u32) -> Self {
        match cc {
            0..=79 => GpuGeneration::Volta,
            80..=89 => GpuGeneration::Ampere,
            90..=99 => GpuGeneration::Hopper,
            _ => GpuGeneration::Blackwell,
        }
    }
}

/// How the GPUs inside one node talk to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntraKind {
    /// NVLink through NVSwitch: every GPU reaches every other at its full NVLink bandwidth.
    NvSwitch,
    /// PCIe (possibly through a PCIe switch).
    Pcie,
}

/// Hardware and placement of one communicator, as the analytical model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommShape {
    /// Ranks in the communicator.
    pub n_ranks: usize,
    /// Distinct nodes the ranks sit on.
    pub n_nodes: usize,
    /// GPU generation (selects NCCL's tuning rows).
    pub generation: GpuGeneration,
    /// Intra-node fabric kind.
    pub intra_kind: IntraKind,
    /// Raw intra-node bandwidth per GPU per direction (NVLink aggregate, or the PCIe link), bytes/s.
    pub intra_bytes_per_s: f64,
    /// Raw bandwidth of one NVLink link per direction, bytes/s (25e9 for NVLink 3/4, 50e9 for NVLink 5);
    /// `intra_bytes_per_s / nvlink_link_bytes_per_s` is the number of links per GPU. Ignored for PCIe.
    pub nvlink_link_bytes_per_s: f64,
    /// One-hop intra-node latency, seconds.
    pub intra_latency_s: f64,
    /// Whether the intra-node switch can reduce in-network (NVLink SHARP / NVLS).
    pub nvls_capable: bool,
    /// Scale-out NIC line rate per NIC per direction, bytes/s (0 when the cluster has a single node).
    pub nic_bytes_per_s: f64,
    /// Scale-out NICs per node.
    pub nics_per_node: usize,
    /// One-way network latency between nodes (NIC to NIC through the fabric), seconds.
    pub net_latency_s: f64,
}

impl CommShape {
    /// Ranks per node as NCCL computes it (`nRanks / nNodes`, a float).
    pub fn ranks_per_node(&self) -> f64 {
        self.n_ranks as f64 / self.n_nodes as f64
    }

    /// Checks the figures the model divides by.
    pub fn validate(&self) -> Result<(), CollectiveError> {
        if self.n_ranks < 2 {
            return Err(CollectiveError::BadGroup {
                n_ranks: self.n_ranks,
                reason: "a collective needs at least 2 ranks".into(),
            });
        }
        if self.n_nodes == 0 || self.n_nodes > self.n_ranks {
            return Err(CollectiveError::BadGroup {
                n_ranks: self.n_ranks,
                reason: format!("n_nodes = {}: expected between 1 and the number of ranks", self.n_nodes),
            });
        }
        positive("intra_bytes_per_s", self.intra_bytes_per_s)?;
        if self.intra_kind == IntraKind::NvSwitch {
            positive("nvlink_link_bytes_per_s", self.nvlink_link_bytes_per_s)?;
        }
        if self.n_nodes > 1 {
            positive("nic_bytes_per_s", self.nic_bytes_per_s)?;
            if self.nics_per_node == 0 {
                return Err(CollectiveError::BadGroup {
                    n_ranks: self.n_ranks,
                    reason: "the ranks span several nodes but nics_per_node = 0: expected at least 1".into(),
                });
            }
        }
        for (field, value) in
            [("intra_latency_s", self.intra_latency_s), ("net_latency_s", self.net_latency_s)]
        {
            if !value.is_finite() || value < 0.0 {
                return Err(CollectiveError::BadFigure { field, value });
            }
        }
        Ok(())
    }
}

fn positive(field: &'static str, value: f64) -> Result<(), CollectiveError> {
    if value.is_finite() && value > 0.0 { Ok(()) } else { Err(CollectiveError::BadFigure { field, value }) }
}

/// Example shapes for tests and benches: a DGX-style node of `gpus_per_node` GPUs and `n_nodes` nodes joined by
/// one 400 Gb/s NIC per GPU.
pub fn dgx_shape(generation: GpuGeneration, n_nodes: usize, gpus_per_node: usize) -> CommShape {
    // Per-GPU NVLink: A100 12 links, H100/H200 and B200 18 links (NVIDIA datasheets, via
    // /work/shared/reference/simulation.md §6 and §3.5); per-link per-direction rate 25 GB/s (NVLink 3/4) or
    // 50 GB/s (NVLink 5).
    let (links, link_bytes_per_s) = match generation {
        GpuGeneration::Volta => (6.0, 25e9),
        GpuGeneration::Ampere => (12.0, 25e9),
        GpuGeneration::Hopper => (18.0, 25e9),
        GpuGeneration::Blackwell => (18.0, 50e9),
    };
    CommShape {
        n_ranks: n_nodes * gpus_per_node,
        n_nodes,
        generation,
        intra_kind: IntraKind::NvSwitch,
        intra_bytes_per_s: links * link_bytes_per_s,
        nvlink_link_bytes_per_s: link_bytes_per_s,
        intra_latency_s: 1e-6,
        nvls_capable: generation >= GpuGeneration::Hopper,
        nic_bytes_per_s: 50e9,
        nics_per_node: gpus_per_node,
        net_latency_s: 2e-6,
    }
}
