//! `choir collective` as a user runs it: the nccl-tests style table, JSON rows, validation, bad input.

use crate::support::choir;

fn stdout(args: &[&str]) -> String {
    let out = choir(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn json_rows_follow_nccl_tests_conventions() {
    let text = stdout(&[
        "collective",
        "--cluster",
        "dgx-h100-superpod",
        "--gpus",
        "8",
        "--sizes",
        "1M:1G",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 11);
    for row in rows {
        let bytes = row["bytes"].as_f64().unwrap();
        let time_s = row["time_s"].as_f64().unwrap();
        let algbw = row["algbw_gbytes_per_s"].as_f64().unwrap();
        let busbw = row["busbw_gbytes_per_s"].as_f64().unwrap();
        assert!((algbw - bytes / time_s / 1e9).abs() < 1e-9 * algbw);
        assert!((busbw - algbw * 2.0 * 7.0 / 8.0).abs() < 1e-9 * busbw);
        assert!(row["algorithm"].is_string());
    }
    // Large messages on a DGX H100 reach the published NVLS bus bandwidth (480 GB/s, GTC24 S62129) within 15%.
    let last = rows.last().unwrap()["busbw_gbytes_per_s"].as_f64().unwrap();
    assert!((last / 480.0 - 1.0).abs() < 0.15, "{last}");
}

#[test]
fn table_and_flow_model_agree_on_an_idle_node() {
    let table = stdout(&["collective", "--gpus", "8", "--sizes", "1G"]);
    assert!(table.contains("busbw") && table.contains("nvls"), "{table}");
    let json = |network: &str| -> f64 {
        let text = stdout(&["collective", "--gpus", "8", "--sizes", "1G", "--network", network, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["rows"][0]["time_s"].as_f64().unwrap()
    };
    let (analytical, flow) = (json("analytical"), json("flow"));
    assert!((flow / analytical - 1.0).abs() < 0.05, "analytical {analytical} s, flow {flow} s");
}

#[test]
fn validate_prints_the_accuracy_table() {
    let text = stdout(&["collective", "--validate"]);
    assert!(text.contains("nccl_8x_h100_80gb_hbm3_single_node_all_reduce_8589934592B"), "{text}");
    let json = stdout(&["collective", "--validate", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let targeted = v["targeted"].as_u64().unwrap();
    let within = v["within_target"].as_u64().unwrap();
    assert!(targeted >= 10 && within + 1 >= targeted, "{within} of {targeted}");
}

#[test]
fn bad_input_exits_2_and_names_the_value() {
    for (args, needle) in [
        (vec!["collective", "--op", "all-sum"], "all-sum"),
        (vec!["collective", "--algo", "butterfly"], "butterfly"),
        (vec!["collective", "--cluster", "no-such-cluster"], "no-such-cluster"),
        (vec!["collective", "--network", "packet"], "packet"),
        (vec!["collective", "--op", "all-to-all", "--algo", "tree", "--gpus", "16"], "tree"),
    ] {
        let out = choir(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(needle), "{args:?}");
    }
}
