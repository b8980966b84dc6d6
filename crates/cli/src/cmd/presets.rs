//! `choir presets`: the model presets, their sizes and where each comes from.

use serde::Serialize;

/// Flags of `choir presets`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    name: &'static str,
    params_total: u64,
    params_active: u64,
    layers: u64,
    hidden: u64,
    heads: u64,
    kv_heads: u64,
    seq_len: u64,
    source: &'static str,
    notes: &'static str,
}

/// Runs `choir presets`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for info in model::presets() {
        let spec = model::preset(info.name)?;
        let counts = model::param_counts(&spec);
        rows.push(Row {
            name: info.name,
            params_total: counts.total,
            params_active: counts.active,
            layers: spec.n_layers,
            hidden: spec.hidden,
            heads: spec.n_heads,
            kv_heads: spec.attn_dims().kv_heads,
            seq_len: spec.seq_len,
            source: info.source,
            notes: info.notes,
        });
    }
    if args.json {
        return crate::output::print_json(&rows);
    }
    println!(
        "{:<14} {:>10} {:>10} {:>6} {:>7} {:>9} {:>6}  source",
        "preset", "params", "active", "layers", "hidden", "heads/kv", "seq"
    );
    for r in &rows {
        let active = if r.params_active == r.params_total {
            "=".to_owned()
        } else {
            units::format_count(r.params_active as f64)
        };
        println!(
            "{:<14} {:>10} {:>10} {:>6} {:>7} {:>9} {:>6}  {}",
            r.name,
            units::format_count(r.params_total as f64),
            active,
            r.layers,
            r.hidden,
            format!("{}/{}", r.heads, r.kv_heads),
            r.seq_len,
            r.source
        );
    }
    println!();
    println!("Notes:");
    // Presets sharing a note (the Narayanan et al. family) are listed together.
    let mut notes: Vec<(Vec<&str>, &str)> = Vec::new();
    for r in &rows {
        match notes.iter_mut().find(|(_, n)| *n == r.notes) {
            Some((names, _)) => names.push(r.name),
            None => notes.push((vec![r.name], r.notes)),
        }
    }
    for (names, note) in notes {
        let label = if names.len() > 2 {
            format!("{} … {}", names[0], names[names.len() - 1])
        } else {
            names.join(", ")
        };
        println!("  {label:<14} {note}");
    }
    println!();
    println!("Use one with `choir model --preset NAME`; `--json` gives every field.");
    Ok(())
}
