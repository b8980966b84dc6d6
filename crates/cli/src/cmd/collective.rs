//! `choir collective`: time a collective across message sizes like nccl-tests, under the analytical or the flow
//! network model; `--validate` compares the analytical model with published nccl-tests figures.

use std::path::Path;

use collective::placement::comm_shape;
use collective::validation::{self, Outcome};
use collective::{Algorithm, CollectiveConfig, Communicator, Op, Protocol};
use serde::Serialize;
use topology::Cluster;

use crate::exit::bad_input;
use crate::output::{print_json, read_text};

/// Flags of `choir collective`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Cluster: a preset name (see `choir topology --list`) or a cluster TOML file.
    #[arg(long, default_value = "dgx-h100-superpod")]
    cluster: String,
    /// Operation: all-reduce, all-gather, reduce-scatter, all-to-all, broadcast, reduce, send-recv.
    #[arg(long, default_value = "all-reduce")]
    op: String,
    /// GPUs in the group (ranks 0..N of the cluster, node-major).
    #[arg(long, default_value_t = 8)]
    gpus: u32,
    /// Message sizes, nccl-tests style: MIN:MAX doubling (K/M/G are powers of 1024), or one size.
    #[arg(long, default_value = "1K:8G")]
    sizes: String,
    /// Algorithm: auto (NCCL's choice), ring, tree, nvls, nvls-tree, pat, hierarchical, direct.
    #[arg(long, default_value = "auto")]
    algo: String,
    /// Protocol: auto, LL, LL128, Simple.
    #[arg(long, default_value = "auto")]
    proto: String,
    /// Disable NVLS (in-switch reduction), like NCCL_NVLS_ENABLE=0.
    #[arg(long)]
    no_nvls: bool,
    /// Network model: analytical (NCCL's cost model) or flow (max-min fair flows on routed paths).
    #[arg(long, default_value = "analytical")]
    network: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Instead of timing, compare the analytical model with published nccl-tests rows: the embedded copy, or
    /// the `[[collective]]` rows of the given validation file.
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "FILE")]
    validate: Option<String>,
}

#[derive(Debug, Serialize)]
struct Row {
    bytes: u64,
    time_s: f64,
    algbw_gbytes_per_s: f64,
    busbw_gbytes_per_s: f64,
    algorithm: String,
    protocol: String,
}

#[derive(Debug, Serialize)]
struct Report {
    cluster: String,
    op: String,
    gpus: u32,
    nodes: usize,
    network: String,
    rows: Vec<Row>,
}

/// Runs `choir collective`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    if let Some(file) = &args.validate {
        return validate(file, &args);
    }
    let op: Op = args.op.parse().map_err(bad_input)?;
    let config = config_from(&args)?;
    let flow = match args.network.as_str() {
        "analytical" => false,
        "flow" => true,
        other => return Err(bad_input(format!("--network {other}: expected analytical or flow"))),
    };
    let sizes = units::parse_size_range(&args.sizes).map_err(|e| bad_input(format!("--sizes: {e}")))?;
    if args.gpus < 2 {
        return Err(bad_input(format!("--gpus {}: a collective needs at least 2 GPUs", args.gpus)));
    }
    let spec = crate::inputs::load_cluster_spec(&args.cluster)?;
    let cluster = Cluster::build(&spec, args.gpus).map_err(bad_input)?;
    let group: Vec<u32> = (0..args.gpus).collect();
    let shape = comm_shape(&cluster, &group).map_err(bad_input)?;
    let comm = Communicator::new(&shape, &config).map_err(bad_input)?;
    let mut rows = Vec::with_capacity(sizes.len());
    for &bytes in &sizes {
        let cost = comm.time(op, bytes).map_err(bad_input)?;
        let time_s = if flow {
            collective::placement::flow_time(&cluster, &group, op, bytes, &config).map_err(bad_input)?.1
        } else {
            cost.time_s
        };
        let algbw = bytes as f64 / time_s;
        rows.push(Row {
            bytes,
            time_s,
            algbw_gbytes_per_s: algbw / 1e9,
            busbw_gbytes_per_s: algbw * op.busbw_factor(shape.n_ranks) / 1e9,
            algorithm: cost.algorithm.name().to_owned(),
            protocol: cost.protocol.name().to_owned(),
        });
    }
    let report = Report {
        cluster: spec.name.clone(),
        op: op.name().to_owned(),
        gpus: args.gpus,
        nodes: shape.n_nodes,
        network: args.network.clone(),
        rows,
    };
    if args.json {
        return print_json(&report);
    }
    println!(
        "# choir collective: {} on {} GPUs ({} node{} of {}), {} network model",
        report.op,
        report.gpus,
        report.nodes,
        if report.nodes == 1 { "" } else { "s" },
        report.cluster,
        report.network
    );
    println!("# {:>12} {:>12} {:>9} {:>9}  {:<13} protocol", "size", "time", "algbw", "busbw", "algorithm");
    println!("# {:>12} {:>12} {:>9} {:>9}", "(B)", "(us)", "(GB/s)", "(GB/s)");
    for row in &report.rows {
        println!(
            "  {:>12} {:>12.2} {:>9.2} {:>9.2}  {:<13} {}",
            row.bytes,
            row.time_s * 1e6,
            row.algbw_gbytes_per_s,
            row.busbw_gbytes_per_s,
            row.algorithm,
            row.protocol
        );
    }
    Ok(())
}

fn config_from(args: &Args) -> anyhow::Result<CollectiveConfig> {
    let algorithm = match args.algo.as_str() {
        "auto" => None,
        name => Some(name.parse::<Algorithm>().map_err(bad_input)?),
    };
    let protocol = match args.proto.as_str() {
        "auto" => None,
        name => Some(name.parse::<Protocol>().map_err(bad_input)?),
    };
    Ok(CollectiveConfig { algorithm, protocol, enable_nvls: !args.no_nvls, ..CollectiveConfig::default() })
}

#[derive(Debug, Serialize)]
struct ValidationRow {
    id: String,
    gpu: Option<String>,
    collective: String,
    n_gpus: Option<u32>,
    bytes: u64,
    measured_busbw_gbytes_per_s: f64,
    predicted_busbw_gbytes_per_s: Option<f64>,
    algorithm: Option<String>,
    error_pct: Option<f64>,
    targeted: bool,
    within_target: Option<bool>,
    skipped: Option<String>,
    source: String,
}

/// `--validate`: every row on the chosen cluster (its GPU swapped for the row's), errors and the 15% target.
fn validate(file: &str, args: &Args) -> anyhow::Result<()> {
    let text =
        if file.is_empty() { validation::NCCL_TESTS_TOML.to_owned() } else { read_text(Path::new(file))? };
    let rows = validation::parse_rows(&text).map_err(bad_input)?;
    let base = crate::inputs::load_cluster_spec(&args.cluster)?;
    let outcomes = validation::run(&rows, &base);
    let table: Vec<ValidationRow> = outcomes.iter().map(to_row).collect();
    let targeted: Vec<&ValidationRow> = table.iter().filter(|r| r.targeted).collect();
    let passed = targeted.iter().filter(|r| r.within_target == Some(true)).count();
    if args.json {
        #[derive(Serialize)]
        struct Out<'a> {
            base_cluster: &'a str,
            target_error_pct: f64,
            target_min_bytes: u64,
            targeted: usize,
            within_target: usize,
            rows: &'a [ValidationRow],
        }
        return print_json(&Out {
            base_cluster: &base.name,
            target_error_pct: validation::TARGET_ERROR * 100.0,
            target_min_bytes: validation::TARGET_MIN_BYTES,
            targeted: targeted.len(),
            within_target: passed,
            rows: &table,
        });
    }
    println!("# analytical model vs published nccl-tests bus bandwidth (nodes built from {})", base.name);
    println!(
        "# {:<62} {:>4} {:>11} {:>9} {:>9} {:>8}  {:<9} target",
        "id", "n", "size", "measured", "model", "error", "algorithm"
    );
    for r in &table {
        let size = units::format_bytes_binary(r.bytes as f64);
        match (r.predicted_busbw_gbytes_per_s, r.error_pct) {
            (Some(p), Some(e)) => println!(
                "  {:<62} {:>4} {:>11} {:>9.1} {:>9.1} {:>7.1}%  {:<9} {}",
                r.id,
                r.n_gpus.unwrap_or(0),
                size,
                r.measured_busbw_gbytes_per_s,
                p,
                e,
                r.algorithm.as_deref().unwrap_or("-"),
                match r.within_target {
                    Some(true) => "ok",
                    Some(false) => "MISS",
                    None => "-",
                }
            ),
            _ => println!(
                "  {:<62} {:>4} {:>11} {:>9.1} {:>9} {:>8}  {:<9} skipped: {}",
                r.id,
                "-",
                size,
                r.measured_busbw_gbytes_per_s,
                "-",
                "-",
                "-",
                r.skipped.as_deref().unwrap_or("")
            ),
        }
    }
    println!(
        "# {passed} of {} rows with messages >= {} are within {:.0}% (busbw)",
        targeted.len(),
        units::format_bytes_binary(validation::TARGET_MIN_BYTES as f64),
        validation::TARGET_ERROR * 100.0
    );
    Ok(())
}

fn to_row(o: &Outcome) -> ValidationRow {
    let (predicted, algorithm, error_pct, skipped) = match &o.predicted {
        Ok(p) => {
            (Some(p.busbw_gbytes_per_s), Some(p.algorithm.name().to_owned()), Some(p.error * 100.0), None)
        }
        Err(why) => (None, None, None, Some(why.clone())),
    };
    let targeted = o.is_targeted();
    ValidationRow {
        id: o.row.id.clone(),
        gpu: o.row.gpu.clone(),
        collective: o.row.collective.clone(),
        n_gpus: o.row.n_gpus,
        bytes: o.bytes,
        measured_busbw_gbytes_per_s: o.row.busbw_gbytes_per_s,
        predicted_busbw_gbytes_per_s: predicted,
        algorithm,
        error_pct,
        targeted,
        within_target: targeted
            .then(|| o.predicted.as_ref().is_ok_and(|p| p.error.abs() <= validation::TARGET_ERROR)),
        skipped,
        source: o.row.source.clone(),
    }
}
