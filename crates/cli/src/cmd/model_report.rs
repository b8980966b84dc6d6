//! `choir model`'s report: the figures (also its JSON) and their text layout.

use serde::Serialize;
use units::{GB, format_bytes, format_bytes_binary, format_count, format_flops};

use super::Origin;

/// What the report is about.
pub(crate) struct Input<'a> {
    pub(crate) spec: &'a model::ModelSpec,
    pub(crate) origin: &'a Origin,
    pub(crate) seq_len: u64,
    pub(crate) global_batch: u64,
    pub(crate) causal: bool,
    pub(crate) plan: &'a model::MemoryPlan,
    pub(crate) memory: Option<(model::MemoryBreakdown, &'static topology::GpuSpec)>,
}

/// The figures, as `--json` prints them.
#[derive(Serialize)]
pub(crate) struct Out {
    model: model::ModelSpec,
    params: Params,
    flops_per_token: FlopsPerToken,
    flops_per_step: FlopsPerStep,
    kv_cache: KvCache,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<Memory>,
}

#[derive(Serialize)]
struct Params {
    total: u64,
    active: u64,
    embedding: u64,
    attention: u64,
    mlp: u64,
    norms: u64,
    output_head: u64,
    non_embedding: u64,
    routed_experts: u64,
    rule_of_thumb_12_h2_l: u64,
}

#[derive(Serialize)]
struct FlopsPerToken {
    seq_len: u64,
    causal_halving: bool,
    training: f64,
    training_with_recompute: f64,
    six_n: f64,
    attention: f64,
    six_n_plus_attention: f64,
    megatron: f64,
    megatron_full_recompute: f64,
    forward: f64,
    decode_at_seq_len: f64,
}

#[derive(Serialize)]
struct FlopsPerStep {
    global_batch_seqs: u64,
    tokens: u64,
    training: f64,
    training_with_recompute: f64,
}

#[derive(Serialize)]
struct KvCache {
    element_bytes: u64,
    bytes_per_token: u64,
    bytes_per_sequence: u64,
}

#[derive(Serialize)]
struct Memory {
    plan: model::MemoryPlan,
    stage: u64,
    layers: u64,
    params: f64,
    micro_batches_in_flight: u64,
    weights_bytes: f64,
    grads_bytes: f64,
    optimizer_bytes: f64,
    activations_bytes: f64,
    total_bytes: f64,
    gpu: String,
    gpu_memory_bytes: f64,
    fits: bool,
}

/// Computes every figure of the report.
pub(crate) fn compute(input: &Input<'_>) -> Out {
    let spec = input.spec;
    let c = model::param_counts(spec);
    let recompute = input.plan.recompute;
    let cfg = model::FlopsConfig { seq_len: input.seq_len, causal: input.causal, recompute };
    let f = model::flops_per_token(spec, &cfg);
    let tokens = input.global_batch * input.seq_len;
    let element_bytes = input.plan.precision.bytes().max(2);
    let kv = model::kv_cache_bytes_per_token(spec, element_bytes);
    Out {
        model: spec.clone(),
        params: Params {
            total: c.total,
            active: c.active,
            embedding: c.embedding,
            attention: c.attention,
            mlp: c.mlp,
            norms: c.norms,
            output_head: c.output_head,
            non_embedding: c.non_embedding(),
            routed_experts: c.routed_experts,
            rule_of_thumb_12_h2_l: model::rule_of_thumb_params(spec),
        },
        flops_per_token: FlopsPerToken {
            seq_len: input.seq_len,
            causal_halving: input.causal,
            training: f.training,
            training_with_recompute: f.training_with_recompute,
            six_n: f.six_n,
            attention: f.attention,
            six_n_plus_attention: f.six_n_plus_attention,
            megatron: f.megatron,
            megatron_full_recompute: f.megatron_full_recompute,
            forward: f.forward,
            decode_at_seq_len: model::decode_flops_per_token(spec, input.seq_len),
        },
        flops_per_step: FlopsPerStep {
            global_batch_seqs: input.global_batch,
            tokens,
            training: f.training * tokens as f64,
            training_with_recompute: f.training_with_recompute * tokens as f64,
        },
        kv_cache: KvCache { element_bytes, bytes_per_token: kv, bytes_per_sequence: kv * input.seq_len },
        memory: input.memory.map(|(m, gpu)| Memory {
            plan: *input.plan,
            stage: m.stage,
            layers: m.layers,
            params: m.params,
            micro_batches_in_flight: m.micro_batches_in_flight,
            weights_bytes: m.weights_bytes,
            grads_bytes: m.grads_bytes,
            optimizer_bytes: m.optimizer_bytes,
            activations_bytes: m.activations_bytes,
            total_bytes: m.total_bytes,
            gpu: gpu.slug.clone(),
            gpu_memory_bytes: gpu.hbm_bytes,
            fits: m.total_bytes <= gpu.hbm_bytes,
        }),
    }
}

/// Prints the report as text.
pub(crate) fn print(input: &Input<'_>, out: &Out) -> anyhow::Result<()> {
    let spec = input.spec;
    println!("Model {} ({}: {})", spec.name, input.origin.kind, input.origin.detail);
    println!("  {}", describe(spec));
    println!();
    print_params(spec, &out.params);
    println!();
    print_flops(input, out);
    if let Some(mem) = &out.memory {
        println!();
        print_memory(mem);
    }
    Ok(())
}

fn describe(spec: &model::ModelSpec) -> String {
    let d = spec.attn_dims();
    let attention = match &spec.mla {
        Some(m) => format!(
            "MLA ({} heads, q_lora {}, kv_lora {}, rope {}, nope {}, v {})",
            spec.n_heads, m.q_lora_rank, m.kv_lora_rank, m.qk_rope_head_dim, m.qk_nope_head_dim, m.v_head_dim
        ),
        None if d.kv_heads == spec.n_heads => format!("{} heads of {} (MHA)", spec.n_heads, spec.head_dim),
        None if d.kv_heads == 1 => format!("{} heads of {} (MQA)", spec.n_heads, spec.head_dim),
        None => format!("{} heads of {}, {} KV heads (GQA)", spec.n_heads, spec.head_dim, d.kv_heads),
    };
    let mlp = match spec.mlp {
        model::MlpKind::Plain => "GELU MLP",
        model::MlpKind::Gated => "SwiGLU MLP",
    };
    let ffn = match &spec.moe {
        Some(m) => {
            let shared = if m.n_shared_experts > 0 {
                format!(" + {} shared", m.n_shared_experts)
            } else {
                String::new()
            };
            let dense = if m.first_dense_layers > 0 {
                format!(", first {} layers dense {}", m.first_dense_layers, spec.ffn_hidden)
            } else {
                String::new()
            };
            format!("MoE {} experts of {} top-{}{shared}{dense}", m.n_experts, m.expert_ffn_hidden, m.top_k)
        }
        None => format!("{}", spec.ffn_hidden),
    };
    format!(
        "{} layers, hidden {}, {attention}, {mlp} {ffn}, vocab {}, seq {}, {} positions, {}, {} embeddings",
        spec.n_layers,
        spec.hidden,
        spec.vocab,
        spec.seq_len,
        match spec.positions {
            model::Positions::Learned => "learned",
            model::Positions::Rotary => "rotary",
        },
        match spec.norm {
            model::NormKind::LayerNorm => "LayerNorm",
            model::NormKind::RmsNorm => "RMSNorm",
        },
        if spec.tied_embeddings { "tied" } else { "untied" },
    )
}

fn print_params(spec: &model::ModelSpec, p: &Params) {
    let total = p.total as f64;
    let row = |name: &str, n: u64| {
        println!(
            "  {name:<24} {:>12} {:>8.2}%  {n:>20}",
            format_count(n as f64),
            100.0 * n as f64 / total,
            n = group(n)
        );
    };
    println!("Parameters                      count    share                 exact");
    row("embedding", p.embedding);
    row("attention", p.attention);
    row("mlp", p.mlp);
    row("norms", p.norms);
    row("output head", p.output_head);
    row("total", p.total);
    if spec.moe.is_some() {
        row("active per token", p.active);
    }
    let rough = p.rule_of_thumb_12_h2_l as f64;
    println!(
        "  rule of thumb 12·h²·L = {} ({:+.1}% vs exact non-embedding {})",
        format_count(rough),
        100.0 * (rough / p.non_embedding as f64 - 1.0),
        format_count(p.non_embedding as f64)
    );
}

fn print_flops(input: &Input<'_>, out: &Out) {
    let f = &out.flops_per_token;
    let s = &out.flops_per_step;
    let halving = if f.causal_halving { "causal attention halved" } else { "full s² attention" };
    println!("FLOPs per training token (seq {}, {halving})", f.seq_len);
    println!("  6N (N = active params)                  {:>14}", format_flops(f.six_n));
    println!("  attention core (3 × QKᵀ and PV)         {:>14}", format_flops(f.attention));
    println!("  6N + attention                          {:>14}", format_flops(f.six_n_plus_attention));
    println!("  exact (GEMM shapes + attention + head)  {:>14}   <- model FLOPs", format_flops(f.training));
    if input.plan.recompute != model::Recompute::None {
        let label = format!("exact with {} recompute", recompute_label(input.plan.recompute));
        println!("  {label:<39} {:>14}   <- hardware FLOPs", format_flops(f.training_with_recompute));
    }
    println!("  Megatron 72·s·L·h²(1 + s/6h + V/12Lh)   {:>14}", format_flops(f.megatron));
    println!("  Megatron 96·… (full recompute)          {:>14}", format_flops(f.megatron_full_recompute));
    if input.spec.moe.is_some()
        || input.spec.mlp == model::MlpKind::Gated
        || input.spec.attn_dims().kv_heads != input.spec.n_heads
    {
        println!(
            "  (Megatron's formula assumes a dense MHA GPT with a 4h GELU MLP; the exact line is this model's)"
        );
    }
    println!(
        "FLOPs per step (global batch {} × {} = {} tokens; set with --global-batch): {} model, {} with recompute",
        s.global_batch_seqs,
        f.seq_len,
        format_count(s.tokens as f64),
        format_flops(s.training),
        format_flops(s.training_with_recompute)
    );
    println!();
    let kv = &out.kv_cache;
    println!("Inference");
    println!("  forward FLOPs per token (prefill, seq {})   {:>14}", f.seq_len, format_flops(f.forward));
    println!(
        "  decode FLOPs per token at context {}      {:>14}",
        f.seq_len,
        format_flops(f.decode_at_seq_len)
    );
    println!(
        "  KV cache per token ({} B/elem)             {:>14}  ({})",
        kv.element_bytes,
        format_bytes_binary(kv.bytes_per_token as f64),
        format_bytes(kv.bytes_per_token as f64)
    );
    println!(
        "  KV cache per sequence of {}             {:>14}  ({})",
        f.seq_len,
        format_bytes_binary(kv.bytes_per_sequence as f64),
        format_bytes(kv.bytes_per_sequence as f64)
    );
}

fn print_memory(m: &Memory) {
    let p = &m.plan;
    println!(
        "Memory per GPU (tp {}, pp {}, dp {}, cp {}, ep {}, ZeRO {}, micro-batch {} × seq {}, recompute {}{}, {} weights, {} grads, {}{})",
        p.tp,
        p.pp,
        p.dp,
        p.cp,
        p.ep,
        p.zero_stage,
        p.micro_batch,
        p.seq_len,
        recompute_label(p.recompute),
        if p.sequence_parallel { ", sequence parallel" } else { "" },
        precision_label(p.precision),
        precision_label(p.grad_precision),
        match p.optimizer {
            model::Optimizer::Adam => "Adam",
            model::Optimizer::SgdMomentum => "SGD+momentum",
            model::Optimizer::Sgd => "SGD",
        },
        if p.flash_attention { ", FlashAttention" } else { ", scores stored" },
    );
    println!(
        "  heaviest GPU: pipeline stage {} of {}, {} layers, {} params, {} micro-batch(es) in flight",
        m.stage,
        p.pp,
        m.layers,
        format_count(m.params),
        m.micro_batches_in_flight
    );
    println!("                          GB (1e9)    GiB (2^30)");
    for (name, bytes) in [
        ("weights", m.weights_bytes),
        ("gradients", m.grads_bytes),
        ("optimizer state", m.optimizer_bytes),
        ("activations", m.activations_bytes),
        ("total", m.total_bytes),
    ] {
        println!("  {name:<20} {:>12.2} {:>13.2}", bytes / GB, bytes / units::GIB);
    }
    let used = 100.0 * m.total_bytes / m.gpu_memory_bytes;
    println!(
        "  {} on {} ({:.1} GB): {used:.0}% of its memory (excludes workspace, buffers, fragmentation)",
        if m.fits { "fits" } else { "DOES NOT FIT" },
        m.gpu,
        m.gpu_memory_bytes / GB
    );
}

fn recompute_label(r: model::Recompute) -> &'static str {
    match r {
        model::Recompute::None => "no",
        model::Recompute::Selective => "selective",
        model::Recompute::Full => "full",
    }
}

fn precision_label(p: model::Precision) -> &'static str {
    match p {
        model::Precision::Fp32 => "fp32",
        model::Precision::Fp16 => "fp16",
        model::Precision::Bf16 => "bf16",
        model::Precision::Fp8 => "fp8",
    }
}

/// `8030261248` → `"8,030,261,248"`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
