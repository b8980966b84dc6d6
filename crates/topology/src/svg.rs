//! The layered drawing as SVG: rows of switches above rows of nodes, GPUs as small squares coloured by the
//! rail (NIC) they send through, cable bundles as lines, and the cluster's figures as a caption.

use std::fmt::Write;

use crate::cluster::Cluster;
use crate::render::{Layers, RenderConfig, escape, intra_label, layers, rails};

const LEFT: f64 = 110.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 78.0;
const ROW_GAP: f64 = 120.0;
const SWITCH_W: f64 = 46.0;
const SWITCH_H: f64 = 24.0;
const SQUARE: f64 = 8.0;
const GAP_W: f64 = 96.0;
const RAIL_COLOURS: [&str; 8] =
    ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"];

/// SVG text of the layered drawing.
pub fn svg(cluster: &Cluster, config: RenderConfig) -> String {
    let l = layers(cluster, config);
    let g = cluster.gpus_per_node();
    let cols = g.min(8);
    let node_w = f64::from(cols) * (SQUARE + 2.0) + 10.0;
    let node_h = f64::from(g.div_ceil(cols)) * (SQUARE + 2.0) + 22.0;
    let item_w = if_node(node_w);
    // Width of each drawn slot: items by tier, the "… more …" gap wider so that its text fits.
    let slot_ws: Vec<Vec<f64>> = l
        .rows
        .iter()
        .map(|r| r.shown.iter().map(|s| if s.is_none() { GAP_W } else { item_w(r.tier) }).collect())
        .collect();
    let row_w = |i: usize| slot_ws[i].iter().sum::<f64>();
    let inner_w = (0..l.rows.len()).map(row_w).fold(520.0, f64::max);
    let width = LEFT + inner_w + RIGHT;
    let bottom = TOP + ROW_GAP * (l.rows.len() as f64 - 1.0).max(0.0) + node_h;
    let height = bottom + 110.0;
    // Centre x of each drawn slot, per row.
    let x_of = |row: usize, slot: usize| {
        let before: f64 = slot_ws[row][..slot].iter().sum();
        LEFT + (inner_w - row_w(row)) / 2.0 + before + slot_ws[row][slot] / 2.0
    };
    let y_of = |row: usize| TOP + ROW_GAP * row as f64;
    let slot_of =
        |row: usize, index: u32| l.rows[row].shown.iter().position(|s| *s == Some(index)).unwrap_or(0);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"Helvetica, Arial, sans-serif\">"
    );
    let _ = writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    header(&mut out, cluster);

    // Cable bundles first, so that boxes are drawn over their ends.
    let nics = cluster.spec().node.nics_per_node.max(1);
    for b in &l.bundles {
        let (ur, lr) = (b.upper.0, b.lower.0);
        let x1 = x_of(ur, slot_of(ur, b.upper.1));
        let y1 = y_of(ur) + SWITCH_H / 2.0;
        let mut x2 = x_of(lr, slot_of(lr, b.lower.1));
        let lower_is_node = l.rows[lr].tier == "node";
        let y2 = if lower_is_node { y_of(lr) } else { y_of(lr) - SWITCH_H / 2.0 };
        if let (true, Some(rail)) = (lower_is_node, b.rail) {
            x2 += (f64::from(rail) + 0.5) / f64::from(nics) * node_w - node_w / 2.0;
        }
        let colour = b.rail.map_or("#94a3b8", |r| RAIL_COLOURS[r as usize % RAIL_COLOURS.len()]);
        let stroke = 0.8 + f64::from(b.cables).log2() * 0.6;
        let _ = writeln!(
            out,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"{colour}\" \
             stroke-width=\"{stroke:.1}\" stroke-opacity=\"0.55\"/>"
        );
    }

    for (r, row) in l.rows.iter().enumerate() {
        let y = y_of(r);
        let label = format!("{} ×{}", plural(row.tier), row.total);
        let _ = writeln!(
            out,
            "<text x=\"12\" y=\"{:.1}\" font-size=\"13\" font-weight=\"bold\">{label}</text>",
            y + 4.0
        );
        for (slot, item) in row.shown.iter().enumerate() {
            let x = x_of(r, slot);
            match item {
                None => {
                    let more = row.total - (row.shown.len() as u32 - 1);
                    let _ = writeln!(
                        out,
                        "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#475569\">… {more} more …</text>",
                        y + 4.0
                    );
                }
                Some(i) if row.tier == "node" => node(&mut out, cluster, *i, x, y, node_w, node_h),
                Some(i) => {
                    let fill = match row.tier {
                        "core" => "#fca5a5",
                        "spine" => "#fcd34d",
                        _ => "#86efac",
                    };
                    let _ = writeln!(
                        out,
                        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{SWITCH_W}\" height=\"{SWITCH_H}\" rx=\"5\" fill=\"{fill}\" \
                         stroke=\"#334155\"/><text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
                        x - SWITCH_W / 2.0,
                        y - SWITCH_H / 2.0,
                        y + 4.0,
                        i
                    );
                }
            }
        }
    }
    footer(&mut out, cluster, &l, bottom + 34.0);
    out.push_str("</svg>\n");
    out
}

fn node(out: &mut String, cluster: &Cluster, index: u32, x: f64, y: f64, w: f64, h: f64) {
    let g = cluster.gpus_per_node();
    let cols = g.min(8);
    let _ = writeln!(
        out,
        "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"4\" fill=\"#eff6ff\" stroke=\"#1e3a8a\"/>",
        x - w / 2.0
    );
    let _ = writeln!(
        out,
        "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">node {index}</text>",
        y + 12.0
    );
    for local in 0..g {
        let gpu = crate::GpuId(index * g + local);
        let colour =
            cluster.nic_index_of(gpu).map_or("#64748b", |r| RAIL_COLOURS[r as usize % RAIL_COLOURS.len()]);
        let gx = x - w / 2.0 + 5.0 + f64::from(local % cols) * (SQUARE + 2.0);
        let gy = y + 17.0 + f64::from(local / cols) * (SQUARE + 2.0);
        let _ = writeln!(
            out,
            "<rect x=\"{gx:.1}\" y=\"{gy:.1}\" width=\"{SQUARE}\" height=\"{SQUARE}\" fill=\"{colour}\"><title>GPU {}</title></rect>",
            gpu.0
        );
    }
}

fn header(out: &mut String, cluster: &Cluster) {
    let spec = cluster.spec();
    let _ = writeln!(
        out,
        "<text x=\"12\" y=\"24\" font-size=\"17\" font-weight=\"bold\">{} — {} GPUs</text>",
        escape(&spec.name),
        group_digits(cluster.num_gpus())
    );
    let _ = writeln!(
        out,
        "<text x=\"12\" y=\"44\" font-size=\"11\" fill=\"#334155\">{}</text>",
        escape(&spec.description)
    );
}

fn footer(out: &mut String, cluster: &Cluster, l: &Layers, y: f64) {
    let s = cluster.summary();
    let spec = cluster.spec();
    let mut lines = vec![
        format!(
            "{} nodes × {} {} · {} {} per GPU · {} × {} NICs per node",
            s.num_nodes,
            s.gpus_per_node,
            s.gpu,
            intra_label(s.intra),
            units::format_rate(s.intra_bandwidth_bytes_per_s, "B/s"),
            s.nics_per_node,
            units::format_rate(s.nic_bandwidth_bytes_per_s * 8.0, "b/s"),
        ),
        format!(
            "{} {} · {} tier(s) of {} (radix {}) · bisection {} per direction · diameter {} hops",
            s.protocol,
            plain_kind(spec.fabric.kind),
            s.tiers,
            s.switch,
            s.switch_radix,
            units::format_rate(s.bisection_bandwidth_bytes_per_s, "B/s"),
            s.diameter_hops,
        ),
    ];
    let sh = cluster.shape();
    if sh.tiers >= 2 {
        lines.push(format!(
            "grey lines: switch cables (width grows with parallel cables: {} per leaf–spine pair{})",
            sh.leaf_spine_parallel,
            if sh.tiers == 3 {
                format!(", {} per spine–core pair", sh.spine_core_parallel)
            } else {
                String::new()
            }
        ));
    }
    if s.tiers > 0 {
        lines.push("GPU squares: coloured by the NIC each GPU sends through".to_owned());
    }
    if !rails(l).is_empty() {
        lines.push("coloured lines: rails (NIC i of every node → leaf i of its scalable unit)".to_owned());
    }
    for (i, line) in lines.iter().enumerate() {
        let _ = writeln!(
            out,
            "<text x=\"12\" y=\"{:.1}\" font-size=\"11\" fill=\"#1e293b\">{}</text>",
            y + 16.0 * i as f64,
            escape(line)
        );
    }
}

/// Slot width of a drawn item by tier, given a node box's width.
fn if_node(node_w: f64) -> impl Fn(&str) -> f64 {
    move |tier| if tier == "node" { (node_w + 14.0).max(60.0) } else { 60.0 }
}

fn plural(tier: &str) -> &'static str {
    match tier {
        "core" => "cores",
        "spine" => "spines",
        "leaf" => "leaves",
        _ => "nodes",
    }
}

/// `16384` → `16,384`.
pub fn group_digits(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn plain_kind(kind: crate::FabricKind) -> &'static str {
    match kind {
        crate::FabricKind::SingleSwitch => "single switch",
        crate::FabricKind::FatTree => "fat-tree",
        crate::FabricKind::RailOptimized => "rail-optimized fat-tree",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset;

    #[test]
    fn svg_is_well_formed_and_summarised() {
        let c = Cluster::build(&preset("dgx-h100-superpod").unwrap(), 16_384).unwrap();
        let text = svg(&c, RenderConfig::default());
        assert!(text.starts_with("<svg") && text.ends_with("</svg>\n"));
        assert_eq!(text.matches("<text").count(), text.matches("</text>").count());
        assert!(text.contains("nodes ×2048") && text.contains("more …"));
        // Summarised: a bounded number of elements, not one per GPU.
        assert!(text.matches("<rect").count() < 400, "{}", text.matches("<rect").count());
    }
}
