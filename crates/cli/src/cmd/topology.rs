//! `choir topology`: summarise a cluster file or preset (GPUs, nodes, bisection bandwidth, diameter) and draw it.

use std::path::PathBuf;

use anyhow::Context;
use topology::render::{RenderConfig, group_digits};
use topology::{Cluster, GpuId, Precision, Summary};
use units::{format_bytes, format_count, format_duration, format_rate};

use crate::exit::bad_input;
use crate::output::{print_json, write_atomic};

/// Flags of `choir topology`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A cluster file (TOML, schema in topologies/README.md) or a preset name (see --list).
    #[arg(value_name = "FILE|PRESET", required_unless_present = "list")]
    cluster: Option<String>,
    /// Number of GPUs to instantiate (default: the file's `gpus`), e.g. 64, 16384 or 2e3.
    #[arg(long, value_name = "N")]
    gpus: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Write a Graphviz DOT drawing to FILE.
    #[arg(long, value_name = "FILE")]
    dot: Option<PathBuf>,
    /// Write an SVG drawing to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Most switches or nodes drawn per row before the row is summarised.
    #[arg(long, value_name = "N", default_value_t = 12)]
    max_per_row: u32,
    /// List the presets.
    #[arg(long, conflicts_with_all = ["cluster", "gpus", "dot", "svg"])]
    list: bool,
}

/// Runs `choir topology`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    if args.list {
        return list(args.json);
    }
    let name = args.cluster.as_deref().context("a cluster file or preset name is required")?;
    let spec = crate::inputs::load_cluster_spec(name)?;
    let num_gpus = match &args.gpus {
        Some(text) => parse_gpus(text)?,
        None => spec.default_num_gpus,
    };
    let cluster = Cluster::build(&spec, num_gpus).map_err(bad_input)?;
    let summary = cluster.summary();
    let config = RenderConfig { max_per_row: args.max_per_row.max(2) };
    let mut written = Vec::new();
    if let Some(path) = &args.dot {
        let text = topology::render::dot(&cluster, config);
        write_atomic(path, text.as_bytes())?;
        written.push((path, text.len()));
    }
    if let Some(path) = &args.svg {
        let text = topology::render::svg(&cluster, config);
        write_atomic(path, text.as_bytes())?;
        written.push((path, text.len()));
    }
    if args.json {
        print_json(&summary)?;
        for (path, bytes) in written {
            eprintln!("wrote {} ({})", path.display(), format_bytes(bytes as f64));
        }
    } else {
        print_summary(&cluster, &summary);
        for (path, bytes) in written {
            println!("wrote {} ({})", path.display(), format_bytes(bytes as f64));
        }
    }
    Ok(())
}

fn parse_gpus(text: &str) -> anyhow::Result<u32> {
    let value = units::parse_count(text).map_err(|e| bad_input(format!("--gpus {text}: {e}")))?;
    if value.fract() != 0.0 || !(1.0..=f64::from(u32::MAX)).contains(&value) {
        return Err(bad_input(format!("--gpus {text}: expected a whole number of GPUs >= 1")));
    }
    Ok(value as u32)
}

fn list(json: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for p in topology::PRESETS {
        let spec = topology::preset(p.name).map_err(bad_input)?;
        rows.push(serde_json::json!({
            "name": p.name,
            "gpus": spec.default_num_gpus,
            "gpu": spec.node.gpu.slug,
            "fabric": spec.fabric.kind,
            "description": spec.description,
            "source": spec.source,
        }));
    }
    if json {
        return print_json(&rows);
    }
    println!("{:<18} {:>6}  {:<15} description", "preset", "GPUs", "GPU");
    for r in &rows {
        println!(
            "{:<18} {:>6}  {:<15} {}",
            r["name"].as_str().unwrap_or(""),
            r["gpus"].as_u64().unwrap_or(0),
            r["gpu"].as_str().unwrap_or(""),
            r["description"].as_str().unwrap_or("")
        );
    }
    println!("\nchoir topology PRESET [--gpus N] shows one; topologies/README.md documents the file format.");
    Ok(())
}

fn print_summary(cluster: &Cluster, s: &Summary) {
    let gpu = cluster.gpu_spec();
    let intra = cluster.intra();
    let row = |label: &str, value: String| println!("  {label:<15} {value}");
    println!("{} ({})", s.name, s.origin);
    if !s.description.is_empty() {
        println!("  {}", s.description);
    }
    row(
        "GPUs",
        format!(
            "{} x {} ({} nodes x {})",
            group_digits(s.num_gpus),
            s.gpu,
            group_digits(s.num_nodes),
            s.gpus_per_node
        ),
    );
    let mut peaks = Vec::new();
    for (p, label) in [(Precision::Bf16, "BF16"), (Precision::Fp16, "FP16"), (Precision::Fp8, "FP8")] {
        if let Some(f) = gpu.peak_flops_per_s(p) {
            peaks.push(format!("{} {label}", format_rate(f, "FLOP/s")));
        }
    }
    row("GPU", format!("{}: {}", gpu.name, peaks.join(", ")));
    row(
        "memory",
        format!("{} HBM at {}", format_bytes(gpu.hbm_bytes), format_rate(gpu.hbm_bytes_per_s, "B/s")),
    );
    let kind = match intra.kind {
        topology::IntraKind::NvSwitch => "NVLink/NVSwitch",
        topology::IntraKind::Pcie => "PCIe",
    };
    row(
        "intra-node",
        format!(
            "{kind}, {} per GPU per direction, {}{}",
            format_rate(intra.bandwidth_bytes_per_s, "B/s"),
            format_duration(intra.latency_s),
            if intra.nvls { ", NVLS" } else { "" }
        ),
    );
    if s.tiers == 0 {
        row("scale-out", "none (one node)".to_owned());
    } else {
        row(
            "scale-out",
            format!(
                "{} x {} ({}) per node = {} per GPU",
                s.nics_per_node,
                s.nic,
                format_rate(s.nic_bandwidth_bytes_per_s * 8.0, "b/s"),
                format_rate(s.nic_bandwidth_per_gpu_bytes_per_s, "B/s")
            ),
        );
        let kind = match s.fabric {
            topology::FabricKind::SingleSwitch => "single switch",
            topology::FabricKind::FatTree => "fat-tree",
            topology::FabricKind::RailOptimized => "rail-optimized",
        };
        let mut counts = format!("{} leaves", s.leaves);
        if s.spines > 0 {
            counts.push_str(&format!(", {} spines", s.spines));
        }
        if s.cores > 0 {
            counts.push_str(&format!(", {} cores", s.cores));
        }
        let over = if s.oversubscription > 1.0 {
            format!(", {}:1 oversubscribed", s.oversubscription)
        } else {
            String::new()
        };
        row(
            "fabric",
            format!(
                "{} {kind}, {} tier(s) of {} (radix {}): {counts}{over}",
                s.protocol, s.tiers, s.switch, s.switch_radix
            ),
        );
    }
    row("bisection", format!("{} per direction", format_rate(s.bisection_bandwidth_bytes_per_s, "B/s")));
    row("diameter", format!("{} hops", s.diameter_hops));
    let last = GpuId(s.num_gpus - 1);
    let far = cluster.route(GpuId(0), last, 0).map(|p| p.latency_s(cluster)).unwrap_or(0.0);
    row(
        "ECMP paths",
        format!(
            "{} between GPU 0 and GPU {} (latency {})",
            s.max_equal_cost_paths,
            last.0,
            format_duration(far)
        ),
    );
    row(
        "graph",
        format!(
            "{} vertices, {} directed links",
            format_count(s.num_vertices as f64),
            format_count(s.num_links as f64)
        ),
    );
    row("peak compute", format_rate(s.peak_bf16_flops_per_s, "FLOP/s"));
}
