//! A cluster description (`ClusterSpec`): the node type and the fabric's shape, parsed from TOML and validated.
//!
//! A spec does not fix the cluster's size: [`crate::Cluster::build`] instantiates it for any number of GPUs.
//! The schema is documented in `topologies/README.md`.

use serde::{Deserialize, Serialize};

use crate::TopologyError;
use crate::catalog::{self, GpuSpec, SwitchSpec};

/// A validated cluster description, in SI units.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSpec {
    /// Short name, e.g. `dgx-h100-superpod`.
    pub name: String,
    /// One line saying what it is.
    pub description: String,
    /// Where the design and its figures come from.
    pub source: String,
    /// Where the text came from (a file path or `preset:<name>`); errors name it.
    pub origin: String,
    /// Number of GPUs when the caller does not choose one.
    pub default_num_gpus: u32,
    /// The node (server) type; every node is identical.
    pub node: NodeSpec,
    /// The scale-out network between nodes.
    pub fabric: FabricSpec,
}

/// One node type: its GPUs, the fabric inside it and its network adapters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeSpec {
    /// The GPU model (a catalog entry).
    pub gpu: GpuSpec,
    /// GPUs in one node (one NVLink domain for NVSwitch nodes; 72 for a GB200 NVL72 rack).
    pub gpus_per_node: u32,
    /// How the GPUs of a node talk to each other.
    pub intra: IntraNodeFabric,
    /// Scale-out NICs per node (0 only for a single-node cluster).
    pub nics_per_node: u32,
    /// The NICs and their attachment to the GPUs.
    pub nic: NicConfig,
}

/// Kind of intra-node fabric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IntraKind {
    /// NVLink through NVSwitch: a non-blocking crossbar, every GPU at full NVLink bandwidth.
    NvSwitch,
    /// PCIe through the host's switches.
    Pcie,
}

/// The intra-node fabric, seen from one GPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntraNodeFabric {
    /// NVSwitch or PCIe.
    pub kind: IntraKind,
    /// Bandwidth per GPU in one direction, bytes/s.
    pub bandwidth_bytes_per_s: f64,
    /// GPU-to-GPU latency inside the node, seconds.
    pub latency_s: f64,
    /// Whether the switch can reduce in-network (NVLink SHARP / NVLS).
    pub nvls: bool,
}

/// The scale-out adapters of a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NicConfig {
    /// Catalog slug, or `custom`.
    pub model: String,
    /// Line rate of one NIC per direction, bytes/s.
    pub bandwidth_bytes_per_s: f64,
    /// Latency of one NIC (paid at each end), seconds.
    pub latency_s: f64,
    /// Bandwidth of the PCIe path from a GPU to its NIC, per direction, bytes/s.
    pub gpu_nic_bytes_per_s: f64,
}

/// Shape of the scale-out network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FabricKind {
    /// Every NIC on one switch.
    SingleSwitch,
    /// Leaves (top-of-rack) filled node by node, then spines, then cores if needed.
    FatTree,
    /// DGX SuperPOD style: NIC i of every node in a scalable unit (SU) goes to leaf i of that SU.
    RailOptimized,
}

/// The scale-out network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FabricSpec {
    /// Its shape.
    pub kind: FabricKind,
    /// `infiniband` or `ethernet` (descriptive).
    pub protocol: String,
    /// The switch used at every tier.
    pub switch: SwitchSpec,
    /// Bandwidth of a switch-to-switch link per direction, bytes/s.
    pub link_bytes_per_s: f64,
    /// Propagation delay of one cable, seconds.
    pub cable_latency_s: f64,
    /// Leaf down:up port ratio (1.0 = non-blocking).
    pub oversubscription: f64,
    /// Nodes per scalable unit (rail-optimized only; 0 otherwise).
    pub nodes_per_su: u32,
    /// Switch tiers above the NICs (1, 2 or 3); `None` = as few as fit.
    pub tiers: Option<u8>,
}

/// Parses and validates a cluster file. `origin` (a path or `preset:<name>`) is named in every error.
pub fn from_toml(text: &str, origin: &str) -> Result<ClusterSpec, TopologyError> {
    let raw: RawSpec = toml::from_str(text)
        .map_err(|e| TopologyError::Syntax { origin: origin.to_owned(), message: e.to_string() })?;
    validate(raw, origin)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    source: String,
    gpus: u32,
    node: RawNode,
    fabric: RawFabric,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    gpu: String,
    gpus_per_node: u32,
    intra: String,
    intra_gbytes_per_s: Option<f64>,
    intra_latency_ns: Option<f64>,
    nvls: Option<bool>,
    nics: u32,
    nic: Option<String>,
    nic_gbps: Option<f64>,
    nic_latency_ns: Option<f64>,
    gpu_nic_gbytes_per_s: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFabric {
    kind: String,
    #[serde(default = "default_protocol")]
    protocol: String,
    switch: Option<String>,
    radix: Option<u32>,
    port_gbps: Option<f64>,
    switch_latency_ns: Option<f64>,
    link_gbps: Option<f64>,
    cable_latency_ns: Option<f64>,
    oversubscription: Option<f64>,
    nodes_per_su: Option<u32>,
    tiers: Option<u8>,
}

fn default_protocol() -> String {
    "infiniband".to_owned()
}

const GIGA: f64 = 1e9;
const NANO: f64 = 1e-9;

fn validate(raw: RawSpec, origin: &str) -> Result<ClusterSpec, TopologyError> {
    let bad = |field: &str, value: &dyn std::fmt::Display, expected: &str| {
        TopologyError::invalid(origin, field, value, expected)
    };
    let positive = |field: &str, value: f64, unit: &str| -> Result<f64, TopologyError> {
        if value.is_finite() && value > 0.0 {
            Ok(value)
        } else {
            Err(bad(field, &value, &format!("a positive number of {unit}")))
        }
    };
    let non_negative = |field: &str, value: f64| -> Result<f64, TopologyError> {
        if value.is_finite() && value >= 0.0 {
            Ok(value)
        } else {
            Err(bad(field, &value, "a latency >= 0 ns"))
        }
    };

    let n = &raw.node;
    let gpu = catalog::gpu(&n.gpu).map_err(|_| {
        let known: Vec<_> = catalog::catalog().gpus.iter().map(|g| g.slug.as_str()).collect();
        bad("node.gpu", &format!("{:?}", n.gpu), &format!("a GPU of the catalog: {}", known.join(", ")))
    })?;
    if n.gpus_per_node == 0 {
        return Err(bad("node.gpus_per_node", &0, "at least 1 GPU per node"));
    }
    let kind = match n.intra.as_str() {
        "nvswitch" => IntraKind::NvSwitch,
        "pcie" => IntraKind::Pcie,
        other => return Err(bad("node.intra", &format!("{other:?}"), "\"nvswitch\" or \"pcie\"")),
    };
    let pcie = catalog::pcie_x16_bytes_per_s(gpu.pcie_gen).unwrap_or(0.0);
    let intra_default = match kind {
        IntraKind::NvSwitch => gpu.nvlink_bytes_per_s,
        IntraKind::Pcie => pcie,
    };
    let intra_bw = match n.intra_gbytes_per_s {
        Some(v) => positive("node.intra_gbytes_per_s", v, "GB/s")? * GIGA,
        None => intra_default,
    };
    let intra_latency_s = match n.intra_latency_ns {
        Some(v) => non_negative("node.intra_latency_ns", v)? * NANO,
        None => gpu.nvlink_latency_s,
    };
    let nvls = n.nvls.unwrap_or(kind == IntraKind::NvSwitch && gpu.nvls);
    if nvls && (kind != IntraKind::NvSwitch || !gpu.nvls) {
        return Err(bad(
            "node.nvls",
            &true,
            &format!("false: {} on {:?} has no NVLink SHARP", gpu.slug, n.intra),
        ));
    }
    if n.nics > n.gpus_per_node {
        return Err(bad("node.nics", &n.nics, &format!("at most gpus_per_node ({}) NICs", n.gpus_per_node)));
    }
    let catalog_nic = match &n.nic {
        Some(name) => Some(catalog::nic(name).map_err(|_| {
            let known: Vec<_> = catalog::catalog().nics.iter().map(|x| x.slug.as_str()).collect();
            bad("node.nic", &format!("{name:?}"), &format!("a NIC of the catalog: {}", known.join(", ")))
        })?),
        None => None,
    };
    let nic_bw = match (n.nic_gbps, catalog_nic) {
        (Some(v), _) => positive("node.nic_gbps", v, "Gbit/s")? * GIGA / 8.0,
        (None, Some(c)) => c.bandwidth_bytes_per_s,
        (None, None) if n.nics == 0 => 0.0,
        (None, None) => return Err(bad("node.nic", &"(missing)", "a catalog NIC, or nic_gbps")),
    };
    let nic_latency_s = match (n.nic_latency_ns, catalog_nic) {
        (Some(v), _) => non_negative("node.nic_latency_ns", v)? * NANO,
        (None, Some(c)) => c.latency_s,
        (None, None) => 0.0,
    };
    let gpu_nic = match n.gpu_nic_gbytes_per_s {
        Some(v) => positive("node.gpu_nic_gbytes_per_s", v, "GB/s")? * GIGA,
        None => pcie,
    };
    let nic = NicConfig {
        model: catalog_nic.map_or_else(|| "custom".to_owned(), |c| c.slug.clone()),
        bandwidth_bytes_per_s: nic_bw,
        latency_s: nic_latency_s,
        gpu_nic_bytes_per_s: gpu_nic,
    };

    let f = &raw.fabric;
    let fabric_kind = match f.kind.as_str() {
        "single-switch" => FabricKind::SingleSwitch,
        "fat-tree" => FabricKind::FatTree,
        "rail-optimized" => FabricKind::RailOptimized,
        other => {
            return Err(bad(
                "fabric.kind",
                &format!("{other:?}"),
                "\"single-switch\", \"fat-tree\" or \"rail-optimized\"",
            ));
        }
    };
    if f.protocol != "infiniband" && f.protocol != "ethernet" {
        return Err(bad("fabric.protocol", &format!("{:?}", f.protocol), "\"infiniband\" or \"ethernet\""));
    }
    let mut switch = match &f.switch {
        Some(name) => catalog::switch(name)
            .map_err(|_| {
                let known: Vec<_> = catalog::catalog().switches.iter().map(|x| x.slug.as_str()).collect();
                bad(
                    "fabric.switch",
                    &format!("{name:?}"),
                    &format!("a switch of the catalog: {}", known.join(", ")),
                )
            })?
            .clone(),
        None => SwitchSpec {
            slug: "custom".to_owned(),
            name: "custom switch".to_owned(),
            aliases: Vec::new(),
            radix: 0,
            port_bytes_per_s: 0.0,
            latency_s: 0.0,
            source: raw.source.clone(),
            notes: String::new(),
        },
    };
    if let Some(r) = f.radix {
        switch.radix = r;
    }
    if let Some(g) = f.port_gbps {
        switch.port_bytes_per_s = positive("fabric.port_gbps", g, "Gbit/s")? * GIGA / 8.0;
    }
    if let Some(l) = f.switch_latency_ns {
        switch.latency_s = non_negative("fabric.switch_latency_ns", l)? * NANO;
    }
    if switch.radix < 2 {
        return Err(bad(
            "fabric.radix",
            &switch.radix,
            "a switch of the catalog (fabric.switch) or a radix >= 2",
        ));
    }
    if switch.port_bytes_per_s <= 0.0 {
        return Err(bad("fabric.port_gbps", &0, "a switch of the catalog (fabric.switch) or port_gbps > 0"));
    }
    let link_bytes_per_s = match f.link_gbps {
        Some(g) => positive("fabric.link_gbps", g, "Gbit/s")? * GIGA / 8.0,
        None => switch.port_bytes_per_s,
    };
    let cable_latency_s = non_negative("fabric.cable_latency_ns", f.cable_latency_ns.unwrap_or(0.0))? * NANO;
    let oversubscription = f.oversubscription.unwrap_or(1.0);
    if !(oversubscription.is_finite() && oversubscription >= 1.0) {
        return Err(bad(
            "fabric.oversubscription",
            &oversubscription,
            "a down:up ratio >= 1.0 (1.0 = non-blocking)",
        ));
    }
    let nodes_per_su = match (fabric_kind, f.nodes_per_su) {
        (FabricKind::RailOptimized, Some(0)) | (FabricKind::RailOptimized, None) => {
            let shown = f.nodes_per_su.map_or("(missing)".to_owned(), |v| v.to_string());
            return Err(bad(
                "fabric.nodes_per_su",
                &shown,
                "nodes per scalable unit, >= 1, for a rail-optimized fabric",
            ));
        }
        (FabricKind::RailOptimized, Some(v)) => v,
        (_, Some(v)) => {
            return Err(bad(
                "fabric.nodes_per_su",
                &v,
                "no nodes_per_su: it applies to rail-optimized fabrics only",
            ));
        }
        (_, None) => 0,
    };
    if let Some(t) = f.tiers {
        let ok = match fabric_kind {
            FabricKind::SingleSwitch => t == 1,
            _ => (2..=3).contains(&t),
        };
        if !ok {
            let expected = if fabric_kind == FabricKind::SingleSwitch {
                "1 (or omit it)"
            } else {
                "2 or 3 (or omit it)"
            };
            return Err(bad("fabric.tiers", &t, expected));
        }
    }
    if raw.gpus == 0 {
        return Err(bad("gpus", &0, "at least 1 GPU"));
    }

    let spec = ClusterSpec {
        name: raw.name,
        description: raw.description,
        source: raw.source,
        origin: origin.to_owned(),
        default_num_gpus: raw.gpus,
        node: NodeSpec {
            gpu: gpu.clone(),
            gpus_per_node: n.gpus_per_node,
            intra: IntraNodeFabric {
                kind,
                bandwidth_bytes_per_s: intra_bw,
                latency_s: intra_latency_s,
                nvls,
            },
            nics_per_node: n.nics,
            nic,
        },
        fabric: FabricSpec {
            kind: fabric_kind,
            protocol: f.protocol.clone(),
            switch,
            link_bytes_per_s,
            cable_latency_s,
            oversubscription,
            nodes_per_su,
            tiers: f.tiers,
        },
    };
    // The default size must itself build: catches a fabric too small for it, or a multi-node cluster without NICs.
    crate::shape::check_size(&spec, spec.default_num_gpus, "gpus")?;
    Ok(spec)
}
