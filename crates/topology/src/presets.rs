//! The cluster files of `topologies/`, embedded so that they load by name.

use crate::TopologyError;
use crate::spec::{ClusterSpec, from_toml};

/// One embedded preset: its name (the file stem) and its TOML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// Name, e.g. `dgx-h100-superpod` (the file is `topologies/<name>.toml`).
    pub name: &'static str,
    /// The file's text.
    pub toml: &'static str,
}

/// Every preset, in the order `choir topology --list` shows them.
pub const PRESETS: &[Preset] = &[
    Preset { name: "dgx-a100-superpod", toml: include_str!("../../../topologies/dgx-a100-superpod.toml") },
    Preset { name: "dgx-h100-superpod", toml: include_str!("../../../topologies/dgx-h100-superpod.toml") },
    Preset { name: "fat-tree", toml: include_str!("../../../topologies/fat-tree.toml") },
    Preset { name: "pcie-server", toml: include_str!("../../../topologies/pcie-server.toml") },
    Preset { name: "ethernet-cluster", toml: include_str!("../../../topologies/ethernet-cluster.toml") },
];

/// Loads a preset by name; its origin is `preset:<name>`.
pub fn preset(name: &str) -> Result<ClusterSpec, TopologyError> {
    let found = PRESETS.iter().find(|p| p.name == name).ok_or_else(|| TopologyError::UnknownPreset {
        name: name.to_owned(),
        known: PRESETS.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
    })?;
    from_toml(found.toml, &format!("preset:{}", found.name))
}
