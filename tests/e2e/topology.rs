//! `choir topology`: presets and files, size overrides, JSON, drawings, and errors that name file, field and value.

use crate::support::choir;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn topologies_dir() -> std::path::PathBuf {
    crate::support::repo_root().join("topologies")
}

#[test]
fn list_shows_every_preset() {
    let out = choir(&["topology", "--list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for name in ["dgx-a100-superpod", "dgx-h100-superpod", "fat-tree", "pcie-server", "ethernet-cluster"] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}

#[test]
fn every_file_in_topologies_loads_by_path() {
    for entry in std::fs::read_dir(topologies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = choir(&["topology", path.to_str().unwrap(), "--json"]);
            assert_eq!(out.status.code(), Some(0), "{}: {}", path.display(), stderr(&out));
            let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
            assert!(v["num_gpus"].as_u64().unwrap() >= 1);
            assert!(v["origin"].as_str().unwrap().ends_with(".toml"));
        }
    }
}

#[test]
fn preset_summary_with_a_size_override() {
    let out = choir(&["topology", "dgx-h100-superpod", "--gpus", "16384", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["num_gpus"], 16384);
    assert_eq!(v["num_nodes"], 2048);
    assert_eq!(v["tiers"], 3);
    assert_eq!(v["diameter_hops"], 8);
    // Non-blocking: half the GPUs at 400 Gb/s = 8192 x 50 GB/s.
    assert_eq!(v["bisection_bandwidth_bytes_per_s"].as_f64(), Some(8192.0 * 50e9));

    let out = choir(&["topology", "dgx-h100-superpod", "--gpus", "64"]);
    let text = stdout(&out);
    assert!(text.contains("64 x h100-sxm-80gb (8 nodes x 8)") && text.contains("bisection"), "{text}");
}

#[test]
fn dot_and_svg_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let (dot, svg) = (dir.path().join("c.dot"), dir.path().join("c.svg"));
    let out = choir(&[
        "topology",
        "dgx-a100-superpod",
        "--dot",
        dot.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dot_text = std::fs::read_to_string(&dot).unwrap();
    assert!(dot_text.contains("graph \"dgx-a100-superpod\"") && dot_text.contains(" -- "), "{dot_text}");
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.starts_with("<svg") && svg_text.trim_end().ends_with("</svg>"));
    assert!(svg_text.contains("nodes ×140") && svg_text.contains("more …"));
}

#[test]
fn malformed_file_names_file_field_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(topologies_dir().join("fat-tree.toml")).unwrap();
    let cases = [
        ("gpu = \"h100-sxm-80gb\"", "gpu = \"tpu-v9\"", "field `node.gpu` = \"tpu-v9\""),
        ("nic = \"cx7-ndr\"", "nic = \"cx7-ndr\"\nnic_gbps = 0", "field `node.nic_gbps` = 0"),
        ("nics = 8", "nics = 0", "field `node.nics` = 0"),
    ];
    for (from, to, expected) in cases {
        assert!(good.contains(from));
        let path = dir.path().join("broken.toml");
        std::fs::write(&path, good.replacen(from, to, 1)).unwrap();
        let out = choir(&["topology", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{to}");
        let err = stderr(&out);
        assert!(err.contains("broken.toml") && err.contains(expected), "{err}");
    }
}

#[test]
fn bad_names_and_sizes_are_usage_errors() {
    let out = choir(&["topology", "no-such-cluster"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("dgx-h100-superpod"), "{}", stderr(&out));
    let out = choir(&["topology", "dgx-h100-superpod", "--gpus", "12"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("multiple of node.gpus_per_node (8)"), "{}", stderr(&out));
}
