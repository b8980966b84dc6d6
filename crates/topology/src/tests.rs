//! Tests across modules: every preset loads and builds, malformed files are rejected with useful messages,
//! routing is deterministic and ECMP spreads evenly, and fabric shapes match published designs.

use std::collections::BTreeMap;

use crate::*;

fn build(name: &str, gpus: u32) -> Cluster {
    Cluster::build(&preset(name).unwrap(), gpus).unwrap()
}

#[test]
fn every_preset_loads_and_builds_at_its_default_size() {
    for p in PRESETS {
        let spec = preset(p.name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.name, p.name, "the name field matches the file name");
        assert!(!spec.source.is_empty(), "{} cites a source", p.name);
        let c = Cluster::build_default(&spec).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.num_gpus(), spec.default_num_gpus);
        assert!(c.bisection_bandwidth_bytes_per_s() > 0.0, "{}", p.name);
    }
}

#[test]
fn h100_superpod_spine_counts_match_the_reference_architecture() {
    // RA-11333-001 Table 4 (compute fabric): 1, 2, 3, 4 SUs -> 8/16/24/32 leaves, 4/8/16/16 spines,
    // 256/512/768/1024 spine-leaf cables.
    for (sus, leaves, spines, cables) in
        [(1, 8, 4, 256), (2, 16, 8, 512), (3, 24, 16, 768), (4, 32, 16, 1024)]
    {
        let c = build("dgx-h100-superpod", sus * 32 * 8);
        let s = c.shape();
        assert_eq!(
            (s.tiers, s.leaves, s.num_spines(), s.leaf_spine_cables()),
            (2, leaves, spines, cables),
            "{sus} SU"
        );
    }
}

#[test]
fn sizes_are_overridable_from_one_gpu_to_sixteen_thousand() {
    let one = build("dgx-h100-superpod", 1);
    assert_eq!((one.num_nodes(), one.gpus_per_node(), one.shape().tiers), (1, 1, 0));
    let node = build("dgx-h100-superpod", 8);
    assert_eq!(node.diameter_hops(), 2);
    let small = build("dgx-h100-superpod", 64);
    assert_eq!((small.num_nodes(), small.shape().leaves, small.shape().tiers), (8, 8, 2));
    let big = build("dgx-h100-superpod", 16_384);
    assert_eq!((big.num_nodes(), big.shape().tiers), (2048, 3));
    assert_eq!(big.diameter_hops(), 8);
    // Non-blocking: the bisection is half the GPUs at NIC rate.
    assert_eq!(big.bisection_bandwidth_bytes_per_s(), 8192.0 * 50e9);
}

#[test]
fn intra_node_route_uses_the_node_switch() {
    let c = build("dgx-h100-superpod", 16);
    let p = c.route(GpuId(0), GpuId(3), 7).unwrap();
    assert_eq!(p.hops(), 2);
    let (a, b) = (c.link(p.links[0]), c.link(p.links[1]));
    assert_eq!((a.kind, b.kind), (LinkKind::Intra, LinkKind::Intra));
    assert_eq!(a.src, c.gpu_vertex(GpuId(0)));
    assert_eq!(b.dst, c.gpu_vertex(GpuId(3)));
    assert_eq!(a.capacity_bytes_per_s, 450e9);
    assert!((p.latency_s(&c) - 936.25e-9).abs() < 1e-15);
    assert!(c.route(GpuId(5), GpuId(5), 0).unwrap().links.is_empty());
}

#[test]
fn routes_are_connected_chains_from_source_to_destination() {
    for (name, gpus) in
        [("dgx-h100-superpod", 16_384), ("dgx-a100-superpod", 1120), ("ethernet-cluster", 256)]
    {
        let c = build(name, gpus);
        for (s, d, h) in [(0, gpus - 1, 3), (1, gpus / 2 + 6, 99), (gpus - 9, 17, u64::MAX)] {
            let p = c.route(GpuId(s), GpuId(d), h).unwrap();
            assert_eq!(c.link(p.links[0]).src, c.gpu_vertex(GpuId(s)), "{name}");
            assert_eq!(c.link(*p.links.last().unwrap()).dst, c.gpu_vertex(GpuId(d)), "{name}");
            for w in p.links.windows(2) {
                assert_eq!(c.link(w[0]).dst, c.link(w[1]).src, "{name}: {s}->{d}");
            }
        }
    }
}

#[test]
fn routing_is_deterministic() {
    let a = build("dgx-h100-superpod", 4096);
    let b = build("dgx-h100-superpod", 4096);
    for h in 0..50u64 {
        let (s, d) = (GpuId((h * 37 % 4096) as u32), GpuId((h * 1009 % 4096) as u32));
        let hash = flow_hash(s, d, h as u32);
        assert_eq!(a.route(s, d, hash).unwrap(), b.route(s, d, hash).unwrap());
        assert_eq!(a.route(s, d, hash).unwrap(), a.route(s, d, hash).unwrap());
    }
}

#[test]
fn ecmp_spreads_flows_evenly_across_spines() {
    // One SU: cross-rail traffic between two nodes goes leaf -> spine -> leaf; 4 spines, 8 cables each.
    let c = build("dgx-h100-superpod", 256);
    let (src, dst) = (GpuId(0), GpuId(8 + 3)); // node 0 rail 0 -> node 1 rail 3
    let n_paths = c.equal_cost_paths_count(src, dst).unwrap();
    assert_eq!(n_paths, 32 * 8);
    let spine_of = |p: &Path| {
        p.links.iter().find_map(|&l| match c.vertex(c.link(l).dst) {
            Vertex::Spine { index, .. } => Some(index),
            _ => None,
        })
    };
    // Hashes 0..n enumerate every path once: each spine carries exactly a quarter.
    let mut per_spine = BTreeMap::new();
    let mut distinct = std::collections::BTreeSet::new();
    for h in 0..n_paths {
        let p = c.route(src, dst, h).unwrap();
        *per_spine.entry(spine_of(&p).unwrap()).or_insert(0u64) += 1;
        distinct.insert(p.links);
    }
    assert_eq!(distinct.len() as u64, n_paths);
    assert_eq!(per_spine.values().copied().collect::<Vec<_>>(), vec![n_paths / 4; 4]);
    // Mixed hashes of many flows also spread: every spine within 10% of the mean.
    let mut per_spine = BTreeMap::new();
    let flows = 4000u32;
    for f in 0..flows {
        let p = c.route(src, dst, flow_hash(src, dst, f)).unwrap();
        *per_spine.entry(spine_of(&p).unwrap()).or_insert(0u32) += 1;
    }
    let mean = f64::from(flows) / 4.0;
    assert!(per_spine.values().all(|&n| (f64::from(n) - mean).abs() < 0.1 * mean), "{per_spine:?}");
}

#[test]
fn same_rail_traffic_stays_under_one_leaf() {
    let c = build("dgx-h100-superpod", 256);
    let p = c.route(GpuId(2), GpuId(8 * 31 + 2), 5).unwrap();
    assert_eq!(p.hops(), 4, "GPU -> NIC -> leaf -> NIC -> GPU");
    assert_eq!(c.equal_cost_paths_count(GpuId(2), GpuId(8 * 31 + 2)).unwrap(), 1);
}

fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "test fixture lacks {from:?}");
    text.replacen(from, to, 1)
}

fn h100_text() -> &'static str {
    PRESETS.iter().find(|p| p.name == "dgx-h100-superpod").unwrap().toml
}

#[test]
fn unknown_gpu_names_file_field_and_value() {
    let text = replace(h100_text(), "gpu = \"h100-sxm-80gb\"", "gpu = \"h900\"");
    let err = from_toml(&text, "bad.toml").unwrap_err().to_string();
    assert!(err.starts_with("bad.toml: field `node.gpu` = \"h900\": expected a GPU of the catalog"), "{err}");
}

#[test]
fn zero_bandwidth_names_file_field_and_value() {
    let text = replace(h100_text(), "nic = \"cx7-ndr\"", "nic = \"cx7-ndr\"\nnic_gbps = 0");
    let err = from_toml(&text, "zero.toml").unwrap_err().to_string();
    assert_eq!(err, "zero.toml: field `node.nic_gbps` = 0: expected a positive number of Gbit/s");
}

#[test]
fn a_gpu_without_a_path_to_another_is_rejected() {
    let text = replace(h100_text(), "nics = 8 ", "nics = 0 ");
    let err = from_toml(&text, "island.toml").unwrap_err().to_string();
    assert!(err.starts_with("island.toml: field `node.nics` = 0: expected at least 1 NIC per node"), "{err}");
    // A single node needs no NIC.
    let spec = from_toml(&replace(&text, "gpus = 1024", "gpus = 8"), "one-node.toml").unwrap();
    assert!(Cluster::build(&spec, 16).unwrap_err().to_string().contains("node.nics"));
}

#[test]
fn syntax_and_unknown_fields_name_the_file() {
    let err = from_toml("name = ", "broken.toml").unwrap_err().to_string();
    assert!(err.starts_with("broken.toml: "), "{err}");
    let text = replace(h100_text(), "nodes_per_su = 32", "nodes_per_su = 32\nspeed = 3");
    let err = from_toml(&text, "extra.toml").unwrap_err().to_string();
    assert!(err.contains("extra.toml") && err.contains("speed"), "{err}");
}

#[test]
fn sizes_that_do_not_fit_are_rejected() {
    let spec = preset("dgx-h100-superpod").unwrap();
    let err = Cluster::build(&spec, 12).unwrap_err().to_string();
    assert!(err.contains("`gpus` = 12") && err.contains("multiple of node.gpus_per_node (8)"), "{err}");
    let pcie = preset("pcie-server").unwrap();
    assert!(Cluster::build(&pcie, 8 * 64).is_ok());
    let err = Cluster::build(&pcie, 8 * 65).unwrap_err().to_string();
    assert!(err.contains("at most 512 GPUs on one switch of radix 64"), "{err}");
}

#[test]
fn oversubscription_halves_the_bisection() {
    let c = build("ethernet-cluster", 512);
    let s = c.shape();
    // 43 ports down hold 10 whole nodes of 4 NICs: 64 nodes on 7 leaves, 21 uplinks each.
    assert_eq!((s.leaf_down_ports, s.leaf_up_ports, s.leaves), (43, 21, 7));
    // Half the NICs: 32 nodes x 4 x 12.5 GB/s = 1.6 TB/s; half the leaf uplinks: 7 x 21 x 12.5 GB/s / 2.
    assert_eq!(c.bisection_bandwidth_bytes_per_s(), 7.0 * 21.0 * 12.5e9 / 2.0);
    // Every node's NICs share one leaf (top-of-rack).
    for node in 0..64 {
        let leaf_of = |g: u32| c.route(GpuId(g), GpuId((g + 8) % 512), 0).unwrap().links[1];
        assert_eq!(c.link(leaf_of(node * 8)).dst, c.link(leaf_of(node * 8 + 7)).dst);
    }
}

#[test]
fn unknown_preset_lists_the_presets() {
    let err = preset("nope").unwrap_err().to_string();
    assert!(err.contains("\"nope\"") && err.contains("dgx-h100-superpod"), "{err}");
    assert!(try_preset("topologies/x.toml").is_none());
}

#[test]
fn every_file_in_topologies_is_an_embedded_preset_and_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies");
    let mut stems = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let spec = from_toml(&text, &path.display().to_string()).unwrap_or_else(|e| panic!("{e}"));
            Cluster::build_default(&spec).unwrap_or_else(|e| panic!("{e}"));
            stems.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    stems.sort();
    let mut names: Vec<_> = PRESETS.iter().map(|p| p.name.to_owned()).collect();
    names.sort();
    assert_eq!(stems, names, "topologies/*.toml and PRESETS list the same clusters");
}
