//! Drawing a cluster: a layered picture (cores, spines, leaves, nodes) as Graphviz DOT or as SVG text.
//!
//! Rows with many switches or nodes are summarised: the first and last few are drawn with a "… n more …" gap
//! between them, so a 16,384-GPU cluster draws as legibly as a 64-GPU one. Returns text; the caller writes it.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::cluster::{Cluster, LinkKind, Vertex};
use crate::spec::{FabricKind, IntraKind};

pub use crate::svg::{group_digits, svg};

/// How much to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderConfig {
    /// Most items drawn per row before the row is summarised (first half, a gap, last half).
    pub max_per_row: u32,
}

impl Default for RenderConfig {
    fn default() -> RenderConfig {
        RenderConfig { max_per_row: 12 }
    }
}

/// One row of the layered drawing, top (cores) to bottom (nodes).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `core`, `spine`, `leaf` or `node`.
    pub tier: &'static str,
    /// How many items the row has in the cluster.
    pub total: u32,
    /// Items drawn, by index within the tier, in order; `None` marks the "… more …" gap.
    pub shown: Vec<Option<u32>>,
}

/// A cable bundle between two drawn items: (upper row, upper index), (lower row, lower index), cables, colour
/// key (the rail for NIC-to-leaf bundles of rail-optimized fabrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bundle {
    /// Row and index (within the tier) of the upper end.
    pub upper: (usize, u32),
    /// Row and index of the lower end.
    pub lower: (usize, u32),
    /// Cables in the bundle.
    pub cables: u32,
    /// Rail index for NIC cables, `None` for switch-to-switch cables.
    pub rail: Option<u32>,
}

/// The layered drawing, before it is turned into DOT or SVG.
#[derive(Debug, Clone, PartialEq)]
pub struct Layers {
    /// Rows, top to bottom.
    pub rows: Vec<Row>,
    /// Cable bundles between drawn items.
    pub bundles: Vec<Bundle>,
}

/// Chooses the rows and bundles to draw.
pub fn layers(cluster: &Cluster, config: RenderConfig) -> Layers {
    let s = cluster.shape();
    let mut rows = Vec::new();
    let mut push = |tier, total| {
        if total > 0 {
            rows.push(Row { tier, total, shown: shown(total, config.max_per_row) });
        }
    };
    push("core", s.num_cores());
    push("spine", s.num_spines());
    push("leaf", s.leaves);
    push("node", s.num_nodes);
    let row_of = |tier: &str| rows.iter().position(|r| r.tier == tier);
    let is_shown = |row: usize, i: u32| rows[row].shown.contains(&Some(i));
    let rail_colours = cluster.spec().fabric.kind == FabricKind::RailOptimized;
    // One entry per drawn cable, then sorted runs merged into bundles.
    let mut pairs: Vec<Bundle> = Vec::new();
    for (_, link) in cluster.links() {
        let (lower, upper) = (cluster.vertex(link.src), cluster.vertex(link.dst));
        let found = match (link.kind, lower, upper) {
            (LinkKind::NicLeaf, Vertex::Nic { node, index }, Vertex::Leaf { index: leaf }) => row_of("leaf")
                .zip(row_of("node"))
                .map(|(lr, nr)| ((lr, leaf), (nr, node.0), rail_colours.then_some(index))),
            (LinkKind::LeafSpine, Vertex::Leaf { index: leaf }, Vertex::Spine { index: spine, .. }) => {
                row_of("spine").zip(row_of("leaf")).map(|(sr, lr)| ((sr, spine), (lr, leaf), None))
            }
            (LinkKind::SpineCore, Vertex::Spine { index: spine, .. }, Vertex::Core { index: core, .. }) => {
                row_of("core").zip(row_of("spine")).map(|(cr, sr)| ((cr, core), (sr, spine), None))
            }
            _ => None,
        };
        if let Some((upper, lower, rail)) = found
            && is_shown(upper.0, upper.1)
            && is_shown(lower.0, lower.1)
        {
            pairs.push(Bundle { upper, lower, cables: 1, rail });
        }
    }
    pairs.sort_unstable();
    let mut bundles: Vec<Bundle> = Vec::new();
    for p in pairs {
        match bundles.last_mut() {
            Some(b) if (b.upper, b.lower, b.rail) == (p.upper, p.lower, p.rail) => b.cables += 1,
            _ => bundles.push(p),
        }
    }
    Layers { rows, bundles }
}

/// Graphviz DOT of the layered drawing (nodes as one box each; `dot -Tsvg` lays it out).
pub fn dot(cluster: &Cluster, config: RenderConfig) -> String {
    let l = layers(cluster, config);
    let sum = cluster.summary();
    let mut out = String::new();
    let _ = writeln!(out, "// {} GPUs: {}", sum.num_gpus, sum.description);
    let _ = writeln!(out, "graph \"{}\" {{", escape(&sum.name));
    let _ = writeln!(out, "  rankdir=TB; splines=false; node [fontname=\"Helvetica\", fontsize=10];");
    let _ = writeln!(
        out,
        "  label=\"{} - {} GPUs, {} nodes x {} {}\"; labelloc=t;",
        escape(&sum.name),
        sum.num_gpus,
        sum.num_nodes,
        sum.gpus_per_node,
        escape(&sum.gpu)
    );
    for (r, row) in l.rows.iter().enumerate() {
        let _ = writeln!(out, "  {{ rank=same;");
        for (slot, item) in row.shown.iter().enumerate() {
            match item {
                Some(i) => {
                    let (shape, colour) =
                        if row.tier == "node" { ("box", "#dbeafe") } else { ("ellipse", "#fde68a") };
                    let _ = writeln!(
                        out,
                        "    {}{i} [label=\"{} {i}\", shape={shape}, style=filled, fillcolor=\"{colour}\"];",
                        row.tier, row.tier
                    );
                }
                None => {
                    let more = row.total - (row.shown.len() as u32 - 1);
                    let _ =
                        writeln!(out, "    gap{r}_{slot} [label=\"... {more} more ...\", shape=plaintext];");
                }
            }
        }
        let _ = writeln!(out, "  }}");
    }
    for b in &l.bundles {
        let (ut, lt) = (l.rows[b.upper.0].tier, l.rows[b.lower.0].tier);
        let label = if b.cables > 1 { format!(" [label=\"x{}\"]", b.cables) } else { String::new() };
        let _ = writeln!(out, "  {ut}{} -- {lt}{}{label};", b.upper.1, b.lower.1);
    }
    out.push_str("}\n");
    out
}

/// The items of a row to draw: all of them, or the first and last `max/2` with a gap (`None`) between.
fn shown(total: u32, max: u32) -> Vec<Option<u32>> {
    if total <= max.max(2) {
        return (0..total).map(Some).collect();
    }
    let half = (max / 2).max(1);
    (0..half).map(Some).chain(std::iter::once(None)).chain((total - half..total).map(Some)).collect()
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Distinct rails drawn (for the legend).
pub(crate) fn rails(l: &Layers) -> BTreeSet<u32> {
    l.bundles.iter().filter_map(|b| b.rail).collect()
}

/// Human label of the intra-node fabric.
pub(crate) fn intra_label(kind: IntraKind) -> &'static str {
    match kind {
        IntraKind::NvSwitch => "NVSwitch",
        IntraKind::Pcie => "PCIe",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset;

    #[test]
    fn rows_are_summarised_beyond_the_limit() {
        assert_eq!(shown(3, 12), vec![Some(0), Some(1), Some(2)]);
        assert_eq!(shown(100, 4), vec![Some(0), Some(1), None, Some(98), Some(99)]);
    }

    #[test]
    fn one_su_draws_every_spine_and_leaf_with_bundles() {
        let c = Cluster::build(&preset("dgx-h100-superpod").unwrap(), 256).unwrap();
        let l = layers(&c, RenderConfig::default());
        let tiers: Vec<_> = l.rows.iter().map(|r| (r.tier, r.total)).collect();
        assert_eq!(tiers, vec![("spine", 4), ("leaf", 8), ("node", 32)]);
        // Each leaf has 8 parallel cables to each of the 4 spines.
        let leaf_spine: Vec<_> = l.bundles.iter().filter(|b| l.rows[b.upper.0].tier == "spine").collect();
        assert_eq!(leaf_spine.len(), 32);
        assert!(leaf_spine.iter().all(|b| b.cables == 8));
        let text = dot(&c, RenderConfig::default());
        assert!(text.starts_with("// 256 GPUs") && text.contains("spine0 -- leaf0 [label=\"x8\"]"), "{text}");
    }
}
