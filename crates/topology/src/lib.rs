//! Hardware catalog and cluster topology: nodes, fabrics, links, routing.
//!
//! - [`catalog`]: GPUs, NICs and switches with a source per figure (`data/catalog.toml`).
//! - [`from_toml`] / [`preset`]: a cluster description ([`ClusterSpec`]): the node type and the fabric's shape.
//! - [`Cluster::build`]: the spec instantiated at a size, as a petgraph graph of directed links (bytes/s,
//!   seconds), with structured, deterministic ECMP routing ([`Cluster::route`]) and whole-cluster figures
//!   (bisection bandwidth, diameter).
//!
//! - [`render`]: the cluster as a layered drawing, Graphviz DOT or SVG text.
//!
//! Pure and deterministic: no IO, no clock, no hash maps.

pub mod catalog;
mod cluster;
mod construct;
mod error;
mod metrics;
mod presets;
pub mod render;
mod route;
mod shape;
mod spec;
mod svg;
#[cfg(test)]
mod tests;

pub use catalog::{GpuSpec, NicSpec, Precision, SwitchSpec};
pub use cluster::{Cluster, GpuId, Link, LinkId, LinkKind, NodeId, Path, Vertex, VertexId};
pub use error::TopologyError;
pub use metrics::Summary;
pub use presets::{PRESETS, Preset, preset};
pub use route::flow_hash;
pub use shape::FabricShape;
pub use spec::{
    ClusterSpec, FabricKind, FabricSpec, IntraKind, IntraNodeFabric, NicConfig, NodeSpec, from_toml,
};

/// Loads a cluster description by preset name, or returns `None` when `name` is not a preset (the caller then
/// reads it as a file).
pub fn try_preset(name: &str) -> Option<Result<ClusterSpec, TopologyError>> {
    PRESETS.iter().any(|p| p.name == name).then(|| preset(name))
}
