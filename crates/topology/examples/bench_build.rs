//! Measures how long building and routing a large cluster takes: `cargo run --release -p topology --example
//! bench_build [GPUS]` (default 16384). Prints figures; asserts nothing about speed.
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![allow(clippy::disallowed_methods, reason = "a benchmark reads the wall clock")]

use std::time::Instant;

use topology::{Cluster, GpuId, flow_hash, preset};

fn main() {
    let gpus: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(16_384);
    let spec = preset("dgx-h100-superpod").expect("preset loads");
    let t = Instant::now();
    let cluster = Cluster::build(&spec, gpus).expect("cluster builds");
    let build_s = t.elapsed().as_secs_f64();
    println!(
        "build {gpus} GPUs: {:.1} ms ({} vertices, {} directed links)",
        build_s * 1e3,
        cluster.num_vertices(),
        cluster.num_links()
    );

    let n_routes = 1_000_000u32;
    let mut links = Vec::with_capacity(8);
    let mut total_hops = 0usize;
    let t = Instant::now();
    for i in 0..n_routes {
        let src = GpuId(i.wrapping_mul(2_654_435_761) % gpus);
        let dst = GpuId(i.wrapping_mul(40_503).wrapping_add(7) % gpus);
        links.clear();
        cluster.route_into(src, dst, flow_hash(src, dst, i), &mut links).expect("in range");
        total_hops += links.len();
    }
    let route_s = t.elapsed().as_secs_f64();
    println!(
        "route: {:.0} ns per route over {n_routes} random pairs ({:.2} hops on average)",
        route_s / f64::from(n_routes) * 1e9,
        total_hops as f64 / f64::from(n_routes)
    );

    let t = Instant::now();
    let summary = cluster.summary();
    println!(
        "summary (bisection + diameter over all GPUs): {:.1} ms; diameter {} hops",
        t.elapsed().as_secs_f64() * 1e3,
        summary.diameter_hops
    );
}
