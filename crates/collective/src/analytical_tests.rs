//! Tests of the analytical model against closed forms and published nccl-tests figures.

use crate::{Algorithm, CollectiveConfig, Communicator, GpuGeneration, Op, Protocol, dgx_shape};

fn forced(algorithm: Algorithm, protocol: Protocol) -> CollectiveConfig {
    CollectiveConfig { algorithm: Some(algorithm), protocol: Some(protocol), ..CollectiveConfig::default() }
}

#[test]
fn ring_all_reduce_is_alpha_beta() {
    // Single-node H100 ring/Simple: bus bandwidth B = 18 links × 20.6 GB/s, per-step α = NCCL's NVLink
    // ring/Simple hardware latency 3.4 µs, plus NCCL's base latency 8.4 µs.
    let shape = dgx_shape(GpuGeneration::Hopper, 1, 8);
    let comm = Communicator::new(&shape, &forced(Algorithm::Ring, Protocol::Simple)).unwrap();
    let n = 8.0;
    let b = 18.0 * 20.6e9;
    let alpha = 3.4e-6;
    for bytes in [1u64 << 10, 1 << 20, 1 << 30] {
        let s = bytes as f64;
        let expected = 8.4e-6 + 2.0 * (n - 1.0) / n * s / b + 2.0 * (n - 1.0) * alpha;
        let cost = comm.time(Op::AllReduce, bytes).unwrap();
        assert!(
            (cost.time_s - expected).abs() < 1e-9 * expected.max(1e-6),
            "{bytes}: {cost:?} vs {expected}"
        );
        assert_eq!(cost.algorithm, Algorithm::Ring);
    }
}

#[test]
fn busbw_reaches_the_bottleneck_for_large_messages() {
    let shape = dgx_shape(GpuGeneration::Hopper, 1, 8);
    let comm = Communicator::new(&shape, &forced(Algorithm::Ring, Protocol::Simple)).unwrap();
    let cost = comm.time(Op::AllReduce, 16 << 30).unwrap();
    assert!((cost.busbw_bytes_per_s / 370.8e9 - 1.0).abs() < 0.01, "{cost:?}");
}

#[test]
fn auto_prefers_low_latency_protocols_for_small_messages_and_nvls_for_large() {
    let shape = dgx_shape(GpuGeneration::Hopper, 1, 8);
    let comm = Communicator::new(&shape, &CollectiveConfig::default()).unwrap();
    let small = comm.time(Op::AllReduce, 1024).unwrap();
    assert_eq!(small.protocol, Protocol::Ll, "{small:?}");
    let large = comm.time(Op::AllReduce, 1 << 30).unwrap();
    assert_eq!(large.algorithm, Algorithm::Nvls, "{large:?}");
    // Without NVLS the large message goes over the ring with Simple.
    let no_nvls =
        Communicator::new(&shape, &CollectiveConfig { enable_nvls: false, ..CollectiveConfig::default() })
            .unwrap()
            .time(Op::AllReduce, 1 << 30)
            .unwrap();
    assert_eq!((no_nvls.algorithm, no_nvls.protocol), (Algorithm::Ring, Protocol::Simple));
    assert!(no_nvls.time_s > large.time_s);
}

#[test]
fn time_grows_with_size_and_the_choice_is_the_minimum() {
    let shape = dgx_shape(GpuGeneration::Hopper, 4, 8);
    let auto = Communicator::new(&shape, &CollectiveConfig::default()).unwrap();
    let mut last = 0.0;
    for shift in 3..34 {
        let bytes = 1u64 << shift;
        let cost = auto.time(Op::AllReduce, bytes).unwrap();
        assert!(cost.time_s > last, "{bytes}: {cost:?}");
        last = cost.time_s;
        for algorithm in [Algorithm::Ring, Algorithm::Tree, Algorithm::NvlsTree] {
            let forced = Communicator::new(
                &shape,
                &CollectiveConfig { algorithm: Some(algorithm), ..Default::default() },
            )
            .unwrap()
            .time(Op::AllReduce, bytes)
            .unwrap();
            assert!(cost.time_s <= forced.time_s * (1.0 + 1e-12), "{bytes}: {cost:?} vs {forced:?}");
        }
    }
}

#[test]
fn unsupported_choices_name_the_algorithm_and_op() {
    let shape = dgx_shape(GpuGeneration::Ampere, 1, 8);
    let comm = Communicator::new(
        &shape,
        &CollectiveConfig { algorithm: Some(Algorithm::Nvls), ..Default::default() },
    )
    .unwrap();
    let err = comm.time(Op::AllReduce, 1 << 20).unwrap_err().to_string();
    assert!(err.contains("nvls") && err.contains("all-reduce"), "{err}");
    let mut bad = shape.clone();
    bad.n_ranks = 1;
    bad.n_nodes = 1;
    let err = Communicator::new(&bad, &CollectiveConfig::default()).unwrap_err().to_string();
    assert!(err.contains("at least 2 ranks"), "{err}");
}

#[test]
fn hierarchical_and_direct_cover_multi_node_groups() {
    let shape = dgx_shape(GpuGeneration::Hopper, 16, 8);
    let hier = Communicator::new(
        &shape,
        &CollectiveConfig { algorithm: Some(Algorithm::Hierarchical), ..Default::default() },
    )
    .unwrap();
    let cost = hier.time(Op::AllReduce, 1 << 30).unwrap();
    assert_eq!(cost.algorithm, Algorithm::Hierarchical);
    // Rail phase alone: 1/8 of the data all-reduced over 16 nodes at one NIC's 48 GB/s.
    let rail_s = 2.0 * 15.0 / 16.0 * (1u64 << 30) as f64 / 8.0 / 48e9;
    assert!(cost.time_s > rail_s, "{cost:?} vs rail phase {rail_s}");
    let auto = Communicator::new(&shape, &CollectiveConfig::default()).unwrap();
    let a2a = auto.time(Op::AllToAll, 1 << 30).unwrap();
    assert_eq!(a2a.algorithm, Algorithm::Direct);
    // 120/128 of each rank's buffer leaves the node; 8 NICs carry 8 ranks' worth.
    let inter_s = (1u64 << 30) as f64 * 120.0 / 128.0 / 48e9;
    assert!((a2a.time_s - inter_s).abs() / inter_s < 0.01, "{a2a:?} vs {inter_s}");
}
