//! Where choir's time goes for the Narayanan et al. 2021 plans it disagrees with (issue #5's "check against
//! practice"): per-GEMM efficiency at the GEMM shapes of the 18B and 39B models, the per-layer forward split into
//! GEMMs, attention core and memory-bound kernels at tp 1, 2 and 8, and the step breakdown of the paper's plans
//! beside choir's preferred ones.
//!
//! `cargo run --release -p search --example practice_probe`
#![allow(clippy::print_stdout)] // the example prints its tables

use schedule::{ParallelPlan, PipelineSchedule, Recompute};

/// (name, layers, hidden, heads, GPUs, the paper's micro-batch) of Table 1's 18B and 39B runs.
const MODELS: [(&str, u64, u64, u64, u32, u64); 2] =
    [("18B", 40, 6144, 48, 256, 8), ("39B", 48, 8192, 64, 512, 4)];

fn gpt(layers: u64, hidden: u64, heads: u64) -> model::ModelSpec {
    let mut spec = model::preset("gpt3-175b").unwrap();
    spec.n_layers = layers;
    spec.hidden = hidden;
    spec.n_heads = heads;
    spec.n_kv_heads = heads;
    spec.head_dim = hidden / heads;
    spec.ffn_hidden = 4 * hidden;
    spec.vocab = 51_200;
    spec.seq_len = 2048;
    spec.tied_embeddings = false;
    spec
}

fn selene(gpus: u32) -> topology::Cluster {
    let gpu = topology::catalog::gpu("a100-sxm-80gb").unwrap();
    let mut cs = topology::preset("dgx-a100-superpod").unwrap();
    cs.node.gpu = gpu.clone();
    cs.node.intra.bandwidth_bytes_per_s = gpu.nvlink_bytes_per_s;
    cs.node.nics_per_node = 8;
    cs.node.nic.bandwidth_bytes_per_s = 200e9 / 8.0;
    topology::Cluster::build(&cs, gpus).unwrap()
}

/// Megatron-LM 2021: fp16, no FlashAttention, full recomputation, blocking pipeline exchanges; PyTorch DDP
/// (overlapped, 25 MiB buckets) without pipelining, local DDP with it.
fn plan(tp: u32, pp: u32, dp: u32, vp: u32, micro_batch: u32, global_batch: u32) -> ParallelPlan {
    ParallelPlan {
        tp,
        pp,
        dp,
        vp,
        micro_batch,
        global_batch,
        seq_len: 2048,
        recompute: Recompute::Full,
        schedule: if vp > 1 { PipelineSchedule::Interleaved } else { PipelineSchedule::OneFOneB },
        precision: model::Precision::Fp16,
        flash_attention: false,
        overlap_grad_reduce: pp == 1,
        bucket_params: (pp == 1).then_some(25 * 1024 * 1024 / 2),
        grad_reduce_in_fp32: false,
        overlap_p2p_comm: Some(false),
        ..ParallelPlan::default()
    }
}

fn main() {
    let gpu = topology::catalog::gpu("a100-sxm-80gb").unwrap();
    let cm = sim::ComputeModel::for_gpu(gpu, schedule::KernelStack::Fused, None).unwrap();
    println!("GEMM efficiency (fraction of the 312 TFLOP/s fp16 peak) at b·s tokens per micro-batch");
    println!(
        "{:<5} {:>6} {:>3} {:<8} {:>6} {:>6} {:>6} {:>8} {:>6}",
        "model", "tokens", "tp", "gemm", "m", "n", "k", "GFLOP", "eff"
    );
    for (name, layers, hidden, heads, _, paper_mb) in MODELS {
        let spec = gpt(layers, hidden, heads);
        for tokens in [2048, 2048 * paper_mb] {
            for tp in [1, 2, 8] {
                let shape = model::WorkShape {
                    micro_batch: tokens / 2048,
                    seq_len: 2048,
                    tp,
                    cp: 1,
                    sequence_parallel: false,
                    causal: true,
                    element_bytes: 2,
                };
                for g in model::layer_work(&spec, &shape, 0).gemms {
                    let f = g.flops();
                    let eff = f / (cm.gemm_time_s(f, false) * cm.peak_flops_per_s);
                    let kind = format!("{:?}", g.kind);
                    println!(
                        "{name:<5} {tokens:>6} {tp:>3} {kind:<8} {:>6} {:>6} {:>6} {:>8.1} {eff:>6.3}",
                        g.m,
                        g.n,
                        g.k,
                        f / 1e9
                    );
                }
            }
        }
    }

    println!("\nper-layer forward, micro-batch 1 (ms): GEMMs, attention core, memory-bound kernels");
    for (name, layers, hidden, heads, ..) in MODELS {
        let spec = gpt(layers, hidden, heads);
        for tp in [1, 2, 8] {
            let p = plan(tp, 1, 1, 1, 1, 1);
            let program = schedule::build(&spec, &p).unwrap();
            let (mut g, mut a, mut m) = (0.0, 0.0, 0.0);
            for w in program.stages[0].works.iter().filter(|w| w.label == "attn.fwd" || w.label == "mlp.fwd")
            {
                g += w.gemms.iter().map(|(x, mult)| cm.gemm_time_s(x.flops(), false) * mult).sum::<f64>();
                let e = &cm.efficiency;
                a += w.attention_flops / (cm.peak_flops_per_s * e.attention_efficiency);
                m += w.memory_bytes / (cm.hbm_bytes_per_s * e.memory_efficiency);
            }
            let t = g + a + m;
            println!(
                "{name:<5} tp {tp}: {:.3} ms = GEMM {:.3} + attention {:.3} + memory {:.3} (memory {:.1}%, × tp {:.3} ms)",
                t * 1e3,
                g * 1e3,
                a * 1e3,
                m * 1e3,
                100.0 * m / t,
                t * 1e3 * tp as f64
            );
        }
    }

    println!("\nstep breakdown (s) of the paper's plans (first of each model) and choir's preferred ones");
    let runs = [
        ("18B", plan(8, 1, 32, 1, 8, 1024)),
        ("18B", plan(2, 4, 32, 5, 1, 1024)),
        ("18B", plan(2, 4, 32, 1, 1, 1024)),
        ("39B", plan(8, 2, 32, 1, 4, 1536)),
        ("39B", plan(2, 8, 32, 6, 1, 1536)),
        ("39B", plan(2, 8, 32, 1, 1, 1536)),
    ];
    for (name, p) in runs {
        let &(_, layers, hidden, heads, gpus, _) = MODELS.iter().find(|m| m.0 == name).unwrap();
        let spec = gpt(layers, hidden, heads);
        let program = schedule::build(&spec, &p).unwrap();
        let cfg = sim::SimConfig { ranks: sim::RankMode::Unique, ..sim::SimConfig::default() };
        let r = sim::simulate(&spec, &program, &selene(gpus), &cfg).unwrap().report;
        let b = |k: &str| r.breakdown.get(k).copied().unwrap_or(0.0);
        println!(
            "{name} {}: step {:.3} = compute {:.3} + TP {:.3} + PP {:.3} + DP {:.3} + bubble {:.3} + tail {:.3}; {:.1} GB",
            search::describe(&p),
            r.step_time_s,
            b("compute"),
            b("exposed_tp"),
            b("exposed_pp"),
            b("exposed_dp"),
            b("bubble"),
            b("tail"),
            r.memory_peak_bytes / 1e9
        );
    }
}
