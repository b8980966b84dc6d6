//! Tests of the max-min solver and the fluid network against hand-computed answers.

use crate::flow::{FlowNetwork, FlowSpec, LinkSpec, MaxMinSolver};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
}

fn spec(path: &[u32], bytes: f64, tag: u64) -> FlowSpec {
    FlowSpec { path: path.to_vec(), bytes, rate_cap_bytes_per_s: f64::INFINITY, extra_latency_s: 0.0, tag }
}

#[test]
fn lone_flow_takes_latency_plus_size_over_bandwidth() {
    let links = [
        LinkSpec { capacity_bytes_per_s: 50e9, latency_s: 1e-6 },
        LinkSpec { capacity_bytes_per_s: 25e9, latency_s: 2e-6 },
    ];
    let mut net = FlowNetwork::new(&links).unwrap();
    net.start(&spec(&[0, 1], 1e9, 7)).unwrap();
    let done = net.run_to_idle();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].tag, 7);
    assert!(close(done[0].time_s, 3e-6 + 1e9 / 25e9), "{done:?}");
}

#[test]
fn two_flows_on_one_link_get_half_each() {
    let mut net = FlowNetwork::new(&[LinkSpec { capacity_bytes_per_s: 10e9, latency_s: 0.0 }]).unwrap();
    let a = net.start(&spec(&[0], 1e9, 1)).unwrap();
    let b = net.start(&spec(&[0], 2e9, 2)).unwrap();
    assert!(close(net.rate(a), 5e9) && close(net.rate(b), 5e9));
    let done = net.run_to_idle();
    // Both at 5 GB/s until the first ends at 0.2 s; then the second has 1 GB left at 10 GB/s: ends at 0.3 s.
    assert_eq!(done.iter().map(|d| d.tag).collect::<Vec<_>>(), vec![1, 2]);
    assert!(close(done[0].time_s, 0.2) && close(done[1].time_s, 0.3), "{done:?}");
}

#[test]
fn textbook_max_min_three_flows_two_links() {
    // Link 0 (capacity 10) carries flows A and B; link 1 (capacity 4) carries B and C. Link 1 is the
    // bottleneck: B = C = 2; A takes the rest of link 0: 8 (Bertsekas & Gallager's progressive filling).
    let mut solver = MaxMinSolver::new(&[10.0, 4.0]);
    let a = solver.add(&[0], f64::INFINITY);
    let b = solver.add(&[0, 1], f64::INFINITY);
    let c = solver.add(&[1], f64::INFINITY);
    let mut changed = Vec::new();
    solver.solve(&mut changed);
    assert!(close(solver.rate(a), 8.0) && close(solver.rate(b), 2.0) && close(solver.rate(c), 2.0));
    // A cap below the fair share frees bandwidth for the others on the same link.
    let mut capped = MaxMinSolver::new(&[10.0, 4.0]);
    let a = capped.add(&[0], f64::INFINITY);
    let b = capped.add(&[0, 1], f64::INFINITY);
    let c = capped.add(&[1], 1.0);
    capped.solve(&mut changed);
    assert!(close(capped.rate(c), 1.0) && close(capped.rate(b), 3.0) && close(capped.rate(a), 7.0));
}

#[test]
fn incremental_solve_touches_only_the_changed_component() {
    // Two disjoint links: adding a flow on link 1 must not report the flow on link 0 as changed.
    let mut solver = MaxMinSolver::new(&[10.0, 10.0]);
    let a = solver.add(&[0], f64::INFINITY);
    let mut changed = Vec::new();
    solver.solve(&mut changed);
    assert_eq!(changed, vec![a]);
    changed.clear();
    let b = solver.add(&[1], f64::INFINITY);
    solver.solve(&mut changed);
    assert_eq!(changed, vec![b]);
    changed.clear();
    let c = solver.add(&[1], f64::INFINITY);
    solver.solve(&mut changed);
    changed.sort();
    assert_eq!(changed, vec![b, c]);
    assert!(close(solver.rate(a), 10.0) && close(solver.rate(b), 5.0) && close(solver.rate(c), 5.0));
    solver.remove(b);
    changed.clear();
    solver.solve(&mut changed);
    assert_eq!(changed, vec![c]);
    assert!(close(solver.rate(c), 10.0));
}

#[test]
fn rates_match_a_reference_water_filling_on_random_instances() {
    // Deterministic pseudo-random instances (a fixed LCG), checked against a slow textbook implementation.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |m: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % m
    };
    for _ in 0..50 {
        let n_links = 1 + next(6) as usize;
        let caps: Vec<f64> = (0..n_links).map(|_| 1.0 + next(20) as f64).collect();
        let mut solver = MaxMinSolver::new(&caps);
        let mut paths = Vec::new();
        for _ in 0..1 + next(8) {
            let mut path: Vec<u32> = (0..n_links as u32).filter(|_| next(2) == 0).collect();
            if path.is_empty() {
                path.push(next(n_links as u64) as u32);
            }
            paths.push((solver.add(&path, f64::INFINITY), path));
        }
        solver.solve(&mut Vec::new());
        let reference = reference_max_min(&caps, &paths.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>());
        for ((id, _), want) in paths.iter().zip(reference) {
            assert!((solver.rate(*id) - want).abs() < 1e-9 * want.max(1.0), "{} vs {want}", solver.rate(*id));
        }
    }
}

/// Progressive filling in small increments of the common level: slow, obviously right.
fn reference_max_min(caps: &[f64], paths: &[Vec<u32>]) -> Vec<f64> {
    let mut rate = vec![0.0; paths.len()];
    let mut frozen = vec![false; paths.len()];
    while frozen.iter().any(|f| !f) {
        let mut delta = f64::INFINITY;
        for (l, cap) in caps.iter().enumerate() {
            let used: f64 =
                paths.iter().zip(&rate).filter(|(p, _)| p.contains(&(l as u32))).map(|(_, r)| r).sum();
            let n = paths.iter().zip(&frozen).filter(|(p, f)| !**f && p.contains(&(l as u32))).count();
            if n > 0 {
                delta = delta.min((cap - used) / n as f64);
            }
        }
        for (r, f) in rate.iter_mut().zip(&frozen) {
            if !f {
                *r += delta;
            }
        }
        for (l, cap) in caps.iter().enumerate() {
            let used: f64 =
                paths.iter().zip(&rate).filter(|(p, _)| p.contains(&(l as u32))).map(|(_, r)| r).sum();
            if cap - used <= 1e-9 {
                for (i, p) in paths.iter().enumerate() {
                    if p.contains(&(l as u32)) {
                        frozen[i] = true;
                    }
                }
            }
        }
    }
    rate
}

mod lowered {
    use crate::flow::collectives::{FlowCollective, FlowConfig, FlowSim};
    use crate::flow::fabric::{RailFabric, RailFabricConfig};
    use crate::{Algorithm, Op};

    fn fabric(
        n_nodes: usize,
        gpus_per_node: usize,
        nodes_per_leaf: usize,
        oversubscription: f64,
    ) -> RailFabric {
        fabric_with_spines(n_nodes, gpus_per_node, nodes_per_leaf, oversubscription, 2)
    }

    fn fabric_with_spines(
        n_nodes: usize,
        gpus_per_node: usize,
        nodes_per_leaf: usize,
        oversubscription: f64,
        n_spines: usize,
    ) -> RailFabric {
        RailFabric::new(RailFabricConfig {
            n_nodes,
            gpus_per_node,
            nodes_per_leaf,
            n_spines,
            oversubscription,
            nvlink_bytes_per_s: 370.8e9,
            nic_bytes_per_s: 48e9,
            link_latency_s: 0.5e-6,
        })
        .unwrap()
    }

    fn ring(ranks: Vec<u32>, bytes: u64, tag: u64) -> FlowCollective {
        FlowCollective {
            ranks,
            op: Op::AllReduce,
            bytes,
            algorithm: Algorithm::Ring,
            config: FlowConfig { channels: 1, step_latency_s: 3.4e-6, ..FlowConfig::default() },
            tag,
        }
    }

    #[test]
    fn idle_ring_all_reduce_matches_alpha_beta() {
        // One node of 8: every step crosses GPU→NVSwitch→GPU (two 0.5 µs links) plus a 3.4 µs step latency.
        let mut sim = FlowSim::new(fabric(1, 8, 1, 1.0)).unwrap();
        let bytes = 1u64 << 30;
        sim.submit(&ring((0..8).collect(), bytes, 9)).unwrap();
        let done = sim.run_to_idle().unwrap();
        assert_eq!(done.len(), 1);
        let (n, b, alpha) = (8.0, 370.8e9, 3.4e-6 + 1e-6);
        let expected = 2.0 * (n - 1.0) / n * bytes as f64 / b + 2.0 * (n - 1.0) * alpha;
        assert!((done[0].end_s - expected).abs() < 1e-9 * expected, "{done:?} vs {expected}");
    }

    #[test]
    fn groups_contending_for_an_oversubscribed_spine_slow_down() {
        // 4 nodes of 2 GPUs, 2 nodes per leaf, one spine. Rail-0 leaf of block 0 serves nodes 0 and 1, its
        // uplink carries 2 × 48 GB/s / oversubscription. DP group A = rail 0 of nodes 0 and 2 (GPUs 0, 4),
        // group B = rail 0 of nodes 1 and 3 (GPUs 2, 6): both cross the same leaf uplinks.
        let bytes = 256u64 << 20;
        let finish = |oversubscription: f64, groups: &[Vec<u32>]| {
            let mut sim = FlowSim::new(fabric_with_spines(4, 2, 2, oversubscription, 1)).unwrap();
            for (tag, group) in groups.iter().enumerate() {
                sim.submit(&ring(group.clone(), bytes, tag as u64)).unwrap();
            }
            let done = sim.run_to_idle().unwrap();
            assert_eq!(done.len(), groups.len());
            done.iter().map(|d| d.end_s).fold(0.0, f64::max)
        };
        let (a, b) = (vec![0, 4], vec![2, 6]);
        // 4:1 oversubscribed: the uplink (24 GB/s) is the bottleneck; two groups get 12 GB/s each.
        let alone = finish(4.0, std::slice::from_ref(&a));
        let both = finish(4.0, &[a.clone(), b.clone()]);
        assert!(both > 1.9 * alone && both < 2.1 * alone, "alone {alone} s, contended {both} s");
        // Two ring steps of S/2 each at 24 GB/s, plus small latencies.
        let one_flow_s = 2.0 * (bytes as f64 / 2.0) / 24e9;
        assert!(alone > one_flow_s && alone < one_flow_s * 1.01, "{alone} vs {one_flow_s}");
        // Non-blocking (uplink 192 GB/s): the NICs are the bottleneck and the groups do not slow each other.
        let free_alone = finish(0.5, std::slice::from_ref(&a));
        let free_both = finish(0.5, &[a, b]);
        assert!((free_both / free_alone - 1.0).abs() < 1e-9, "{free_both} vs {free_alone}");
    }

    #[test]
    fn every_lowering_finishes_and_is_deterministic() {
        let cases = [
            (Op::AllReduce, Algorithm::Tree),
            (Op::AllReduce, Algorithm::Hierarchical),
            (Op::AllGather, Algorithm::Hierarchical),
            (Op::ReduceScatter, Algorithm::Ring),
            (Op::AllToAll, Algorithm::Direct),
            (Op::Broadcast, Algorithm::Ring),
            (Op::SendRecv, Algorithm::Direct),
        ];
        for (op, algorithm) in cases.into_iter().chain([(Op::AllReduce, Algorithm::NvlsTree)]) {
            let run = || {
                let mut sim = FlowSim::new(fabric(4, 4, 2, 2.0)).unwrap();
                let mut c = ring((0..16).collect(), 64 << 20, 3);
                c.op = op;
                c.algorithm = algorithm;
                c.config.channels = 2;
                sim.submit(&c).unwrap();
                sim.run_to_idle().unwrap()
            };
            let (a, b) = (run(), run());
            assert_eq!(a.len(), 1, "{op} {algorithm}");
            assert!(a[0].end_s > 0.0 && a[0].end_s.is_finite());
            assert_eq!(a[0].end_s.to_bits(), b[0].end_s.to_bits(), "{op} {algorithm} not deterministic");
        }
        // NVLS inside a node: each GPU pushes S up and pulls S down at the NVLink rate.
        let mut sim = FlowSim::new(fabric(1, 8, 1, 1.0)).unwrap();
        let mut c = ring((0..8).collect(), 1 << 30, 4);
        c.algorithm = Algorithm::Nvls;
        sim.submit(&c).unwrap();
        let t = sim.run_to_idle().unwrap()[0].end_s;
        let expected = (1u64 << 30) as f64 / 370.8e9 + 3.4e-6 + 0.5e-6;
        assert!((t - expected).abs() < 1e-9 * expected, "{t} vs {expected}");
    }

    #[test]
    fn nvls_tree_runs_the_switch_and_the_rail_trees_at_once() {
        // 2 nodes of 4 GPUs. Every GPU pushes S through the switch and pulls S back; on each rail the two
        // trees over the 2 nodes carry S/(2·4) each way, so each NIC sends S/4 per direction. The phases are
        // one pipeline: the time is the slower of the two, plus step latencies.
        let bytes = 1u64 << 30;
        let s = bytes as f64;
        let run = |switch_cap: f64| {
            let mut sim = FlowSim::new(fabric(2, 4, 2, 1.0)).unwrap();
            let mut c = ring((0..8).collect(), bytes, 5);
            c.algorithm = Algorithm::NvlsTree;
            c.config.in_switch.nvls_tree_all_reduce_bytes_per_s = switch_cap;
            sim.submit(&c).unwrap();
            sim.run_to_idle().unwrap()[0].end_s
        };
        let nic_bound = s / 4.0 / 48e9;
        let switch_bound = s / 100e9;
        // Uncapped, the switch flows run at the NVLink rate (2.9 ms) and the NICs (5.6 ms) set the pace.
        let t = run(f64::INFINITY);
        assert!(t > nic_bound && t < nic_bound * 1.01, "{t} vs NIC bound {nic_bound}");
        // Capped at NCCL's NVLS-tree rate of 100 GB/s, the switch sets it.
        let t = run(100e9);
        assert!(t > switch_bound && t < switch_bound * 1.01, "{t} vs switch bound {switch_bound}");
    }

    #[test]
    fn nccl_double_binary_tree_balances_every_ranks_links() {
        // NCCL's double binary tree (ncclGetDtree): each tree spans the ranks, and no rank sends on more than
        // four tree edges in total (interior in one tree: parent + two children; leaf in the other: parent), so
        // every link carries at most 4 × the per-tree bytes. A tree rotated by one rank instead makes some ranks
        // interior in both (up to 6).
        use crate::flow::lower::{End, btree_parent, double_tree};
        assert_eq!((1..8).map(|r| btree_parent(8, r).unwrap()).collect::<Vec<_>>(), [2, 4, 2, 0, 6, 4, 6]);
        for n in 2..=64usize {
            let ranks: Vec<u32> = (0..n as u32).collect();
            let edges = double_tree(&ranks, 1.0, 0.0);
            assert_eq!(edges.len(), 4 * (n - 1), "n = {n}");
            for r in 0..n as u32 {
                let out = edges.iter().filter(|e| e.src == r).count();
                assert!(out <= 4, "n = {n}: rank {r} sends on {out} edges");
            }
            // Every rank reaches the root of each tree by following parents.
            for second in [false, true] {
                let tree = &edges[if second { 2 * (n - 1) } else { 0 }..][..2 * (n - 1)];
                let parent = |r: u32| {
                    tree.iter().step_by(2).find(|e| e.src == r).map(|e| match e.dst {
                        End::Gpu(p) => p,
                        _ => unreachable!(),
                    })
                };
                for start in 0..n as u32 {
                    let (mut r, mut hops) = (start, 0);
                    while let Some(p) = parent(r) {
                        r = p;
                        hops += 1;
                        assert!(hops <= n, "n = {n}: cycle from {start}");
                    }
                }
            }
        }
    }
}
