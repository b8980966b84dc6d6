//! `choir attention`: a checkpoint's causal attention weights for a text, as a terminal heat map and an SVG.

use std::path::PathBuf;

use nn::gpt::ForwardOptions;

use crate::cmd::train::xml_escape;
use crate::exit::bad_input;
use crate::output::{print_json, write_atomic};

/// Flags of `choir attention`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Checkpoint directory written by `choir train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The text whose attention to show.
    #[arg(long)]
    text: String,
    /// Layer, 0-based (default: the last).
    #[arg(long)]
    layer: Option<usize>,
    /// Head, 0-based (default: the mean over heads).
    #[arg(long)]
    head: Option<usize>,
    /// Softmax temperature for display: below 1 sharpens the weights, above 1 flattens them.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Where to write the SVG heat map.
    #[arg(long, default_value = "attention.svg")]
    svg: PathBuf,
    /// Print one JSON object instead of the heat map.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Report {
    tokens: Vec<String>,
    layer: usize,
    head: Option<usize>,
    temperature: f64,
    /// `weights[q][k]`: how much query token q attends to key token k (0 for k > q).
    weights: Vec<Vec<f32>>,
    svg: String,
}

/// Runs `choir attention`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let ck = crate::cmd::generate::load(&args.checkpoint)?;
    let config = ck.model.config();
    let ids = ck.vocab.encode(&args.text).map_err(bad_input)?;
    if ids.is_empty() || ids.len() > config.context {
        return Err(bad_input(format!(
            "--text is {} tokens long, expected 1 to {} (the model's context)",
            ids.len(),
            config.context
        )));
    }
    let layer = args.layer.unwrap_or(config.n_layers - 1);
    if layer >= config.n_layers {
        return Err(bad_input(format!(
            "--layer {layer}: expected 0 to {} ({} layers)",
            config.n_layers - 1,
            config.n_layers
        )));
    }
    if let Some(h) = args.head.filter(|&h| h >= config.n_heads) {
        return Err(bad_input(format!(
            "--head {h}: expected 0 to {} ({} heads)",
            config.n_heads - 1,
            config.n_heads
        )));
    }
    if !(args.temperature > 0.0 && args.temperature.is_finite()) {
        return Err(bad_input(format!("--temperature {}: expected a number > 0", args.temperature)));
    }
    let x = nn::gpt::token_row(&ids, ck.model.device()).map_err(|e| anyhow::anyhow!(e))?;
    let out = ck
        .model
        .forward_with(&x, None, ForwardOptions { record_attention: Some(args.temperature) })
        .map_err(|e| anyhow::anyhow!(e))?;
    // [1, heads, t, t] → [heads][t][t]
    let all: Vec<Vec<Vec<f32>>> =
        out.attention[layer].squeeze(0)?.to_dtype(nn::DType::F32)?.to_vec3::<f32>()?;
    let weights: Vec<Vec<f32>> = match args.head {
        Some(h) => all[h].clone(),
        None => (0..ids.len())
            .map(|q| {
                (0..ids.len())
                    .map(|k| all.iter().map(|hd| hd[q][k]).sum::<f32>() / all.len() as f32)
                    .collect()
            })
            .collect(),
    };
    let labels: Vec<String> = ids.iter().map(|&t| ck.vocab.token_label(t)).collect();
    let head_name = args.head.map_or_else(|| "mean of heads".to_string(), |h| format!("head {h}"));
    let title = format!("layer {layer}, {head_name}, temperature {}", args.temperature);
    write_atomic(&args.svg, heatmap_svg(&labels, &weights, &title).as_bytes())?;
    if args.json {
        return print_json(&Report {
            tokens: labels,
            layer,
            head: args.head,
            temperature: args.temperature,
            weights,
            svg: args.svg.display().to_string(),
        });
    }
    println!("{title} ({} tokens; rows attend to columns; ░▒▓█ = weight ≥ 0.05, 0.15, 0.3, 0.5)", ids.len());
    print!("{}", heatmap_text(&labels, &weights));
    let last = ids.len() - 1;
    let mut top: Vec<(usize, f32)> = weights[last].iter().copied().enumerate().collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> = top.iter().take(5).map(|(k, w)| format!("{:?}@{k} {w:.2}", labels[*k])).collect();
    println!("last token {:?} attends most to: {}", labels[last], top.join(", "));
    println!("wrote {}", args.svg.display());
    Ok(())
}

/// One shade character per weight.
fn shade(w: f32) -> char {
    match w {
        w if w >= 0.5 => '█',
        w if w >= 0.3 => '▓',
        w if w >= 0.15 => '▒',
        w if w >= 0.05 => '░',
        _ => '·',
    }
}

/// Rows: query tokens with their labels; columns: key tokens, headed by the first character of their labels.
fn heatmap_text(labels: &[String], weights: &[Vec<f32>]) -> String {
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1).min(12);
    let cut = |l: &str| l.chars().take(width).collect::<String>();
    let mut out = format!(
        "{:>width$}  {}\n",
        "",
        labels.iter().map(|l| l.chars().next().unwrap_or(' ')).collect::<String>()
    );
    for (q, row) in weights.iter().enumerate() {
        let cells: String =
            row.iter().enumerate().map(|(k, &w)| if k > q { ' ' } else { shade(w) }).collect();
        out += &format!("{:>width$}  {cells}\n", cut(&labels[q]));
    }
    out
}

/// The heat map as SVG: one square per (query, key), darker for more weight, labels on both axes.
fn heatmap_svg(labels: &[String], weights: &[Vec<f32>], title: &str) -> String {
    let n = labels.len();
    let cell = if n > 40 { 11.0 } else { 18.0 };
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64;
    let (left, top) = (16.0 + longest * cell * 0.5, 36.0 + longest * cell * 0.5);
    let (w, h) = (left + cell * n as f64 + 90.0, top + cell * n as f64 + 30.0);
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="monospace" font-size="{fs}">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="20" text-anchor="middle" font-family="sans-serif" font-size="14">{}</text>
"##,
        w / 2.0,
        xml_escape(title),
        fs = (cell * 0.75).round()
    );
    for (i, label) in labels.iter().enumerate() {
        let c = left + cell * (i as f64 + 0.5);
        let r = top + cell * (i as f64 + 0.5);
        svg += &format!(
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            left - 4.0,
            r + cell * 0.3,
            xml_escape(label)
        );
        svg += &format!(
            "<text x=\"{c:.1}\" y=\"{}\" transform=\"rotate(-90 {c:.1} {})\">{}</text>\n",
            top - 4.0,
            top - 4.0,
            xml_escape(label)
        );
    }
    for (q, row) in weights.iter().enumerate() {
        for (k, &wt) in row.iter().enumerate().take(q + 1) {
            // White to dark blue, by the square root of the weight so that small weights stay visible.
            let t = wt.clamp(0.0, 1.0).sqrt() as f64;
            let (r, g, b) = (255.0 - t * 247.0, 255.0 - t * 207.0, 255.0 - t * 148.0);
            svg += &format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{cell}\" height=\"{cell}\" fill=\"rgb({:.0},{:.0},{:.0})\"><title>{} → {}: {wt:.3}</title></rect>\n",
                left + cell * k as f64,
                top + cell * q as f64,
                r,
                g,
                b,
                xml_escape(&labels[q]),
                xml_escape(&labels[k])
            );
        }
    }
    svg += &format!(
        "<rect x=\"{left}\" y=\"{top}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n",
        cell * n as f64,
        cell * n as f64
    );
    svg + "</svg>\n"
}
