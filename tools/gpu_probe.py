#!/usr/bin/env python3
"""Measure what choir's compute model predicts, on a real GPU.

Three kernel classes (the terms of crates/sim/src/compute.rs) and whole training steps:

  gemm       bf16 (and fp8 where the GPU has it) matrix products at transformer shapes: achieved FLOP/s
  attention  FlashAttention through torch's SDPA, causal, forward and forward+backward
  memory     copy and the eager element-wise kernels of a Llama layer (RMSNorm, SwiGLU): achieved bytes/s
  step       training steps of Llama- and GPT-2-shaped models (Hugging Face transformers, SDPA attention, AMP
             bf16 autocast over fp32 weights, fused AdamW), one GPU: eager, with full recomputation
             ("-recompute") or under torch.compile ("-compiled"); each also profiled once (torch.profiler) into
             GPU seconds per kernel class

Timing: CUDA events around each call, after warm-up; the median of the timed repeats. Nothing is fitted
here: the output is raw measurements plus the environment they were taken in (GPU, driver, clocks, torch).

  python3 tools/gpu_probe.py OUT_DIR            # writes OUT_DIR/gpu_probe.json (and a log on stdout)
  GPU_PROBE_ONLY=env,step GPU_PROBE_STEPS=compiled python3 tools/gpu_probe.py OUT_DIR   # some of it

The results in tests/data/measured/ were taken with this script; tools/gpu_probe_to_toml.py turns its JSON
into the files choir reads.
"""

import functools
import json
import os
import statistics
import subprocess
import sys
import time
import traceback

import torch
import torch.nn.functional as F

DEV = "cuda"
RESULTS = {"env": {}, "gemm": [], "gemm_fp8": [], "attention": [], "memory": [], "step": [], "errors": []}


def save(out_dir):
    tmp = os.path.join(out_dir, "gpu_probe.json.tmp")
    with open(tmp, "w") as f:
        json.dump(RESULTS, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(out_dir, "gpu_probe.json"))


def timed(fn, warmup=3, iters=10):
    """Median seconds of `fn` over `iters` calls, timed with CUDA events after `warmup` calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times), min(times), max(times)


def section(name, fn, out_dir):
    t0 = time.time()
    try:
        fn()
    except Exception:  # keep what the other sections measured
        RESULTS["errors"].append({"section": name, "error": traceback.format_exc()})
        print(f"[{name}] FAILED\n{traceback.format_exc()}", flush=True)
    print(f"[{name}] {time.time() - t0:.1f} s", flush=True)
    save(out_dir)


def env():
    p = torch.cuda.get_device_properties(0)
    e = RESULTS["env"]
    e.update(
        gpu=p.name,
        sm_count=p.multi_processor_count,
        memory_bytes=p.total_memory,
        capability=f"{p.major}.{p.minor}",
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version(),
        date=time.strftime("%Y-%m-%d", time.gmtime()),
    )
    try:
        q = "driver_version,clocks.max.sm,clocks.max.mem,power.limit,clocks.sm"
        e["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", f"--query-gpu={q}", "--format=csv"], capture_output=True, text=True, timeout=20
        ).stdout.strip()
    except Exception as x:  # the measurements stand without it
        e["nvidia_smi"] = f"unavailable: {x}"
    print(json.dumps(e, indent=1), flush=True)


def gemm():
    # (m, n, k): m = tokens of a micro-batch, n x k = a weight of a layer split tp ways; plus square shapes.
    shapes = []
    for m in (512, 2048, 8192, 32768):
        for n, k in ((1024, 1024), (4096, 1024), (1024, 4096), (4096, 4096), (14336, 4096), (4096, 14336),
                     (16384, 16384), (6144, 2048), (2048, 8192), (57344, 8192)):
            if 2 * m * n * k <= 4e13:
                shapes.append((m, n, k))
    for s in (256, 1024, 8192):
        shapes.append((s, s, s))
    for m, n, k in shapes:
        a = torch.randn(m, k, device=DEV, dtype=torch.bfloat16)
        b = torch.randn(k, n, device=DEV, dtype=torch.bfloat16)
        flops = 2.0 * m * n * k
        iters = 20 if flops < 1e12 else 8
        med, lo, hi = timed(lambda: a @ b, iters=iters)
        RESULTS["gemm"].append(dict(m=m, n=n, k=k, flops=flops, s=med, s_min=lo, s_max=hi, flops_per_s=flops / med))
        print(f"gemm bf16 {m:>6} {n:>6} {k:>6} {flops / 1e9:>9.1f} GF {flops / med / 1e12:7.1f} TF/s", flush=True)
        del a, b
    torch.cuda.empty_cache()


def gemm_fp8():
    if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
        RESULTS["errors"].append({"section": "gemm_fp8", "error": "no float8 / _scaled_mm in this torch"})
        return
    one = torch.tensor(1.0, device=DEV)
    for m, n, k in ((2048, 4096, 4096), (8192, 4096, 4096), (8192, 14336, 4096), (8192, 4096, 14336),
                    (32768, 16384, 16384), (8192, 8192, 8192)):
        a = torch.randn(m, k, device=DEV).to(torch.float8_e4m3fn)
        b = torch.randn(n, k, device=DEV).to(torch.float8_e4m3fn).t()  # column-major, as _scaled_mm wants
        flops = 2.0 * m * n * k
        med, lo, hi = timed(lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16))
        RESULTS["gemm_fp8"].append(dict(m=m, n=n, k=k, flops=flops, s=med, s_min=lo, s_max=hi,
                                        flops_per_s=flops / med))
        print(f"gemm fp8  {m:>6} {n:>6} {k:>6} {flops / 1e9:>9.1f} GF {flops / med / 1e12:7.1f} TF/s", flush=True)
        del a, b
    torch.cuda.empty_cache()


def attention():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    heads, d = 32, 128
    for s in (1024, 2048, 4096, 8192, 16384):
        b = max(1, 16384 // s)
        q, k, v = (torch.randn(b, heads, s, d, device=DEV, dtype=torch.bfloat16, requires_grad=True)
                   for _ in range(3))
        # Causal: half the s x s score matrix. Forward 2 matmuls (4 b h s^2 d / 2), backward 2.5x the forward.
        fwd_flops = 2.0 * b * heads * s * s * d
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            fwd = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
            med_f, lo_f, hi_f = timed(fwd)
            out = fwd()
            grad = torch.randn_like(out)

            def both():
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                o.backward(grad)

            med_b, lo_b, hi_b = timed(both)
        RESULTS["attention"].append(dict(batch=b, heads=heads, head_dim=d, seq=s, causal=True,
                                         fwd_flops=fwd_flops, fwd_s=med_f, fwd_bwd_flops=3.5 * fwd_flops,
                                         fwd_bwd_s=med_b))
        print(f"attn s {s:>6} b {b:>3} fwd {fwd_flops / med_f / 1e12:6.1f} TF/s "
              f"fwd+bwd {3.5 * fwd_flops / med_b / 1e12:6.1f} TF/s", flush=True)
        del q, k, v, out, grad
    torch.cuda.empty_cache()


def memory():
    n = 1 << 28  # 256 Mi elements, 512 MiB in bf16
    x = torch.randn(n, device=DEV, dtype=torch.bfloat16)
    y = torch.empty_like(x)
    med, _, _ = timed(lambda: y.copy_(x), iters=20)
    RESULTS["memory"].append(dict(kernel="copy", bytes=4.0 * n, s=med, bytes_per_s=4.0 * n / med))
    tokens, h, ffn = 16384, 4096, 14336
    xs = torch.randn(tokens, h, device=DEV, dtype=torch.bfloat16)
    w = torch.ones(h, device=DEV, dtype=torch.bfloat16)

    def rmsnorm():  # transformers' LlamaRMSNorm, eager: upcast, variance, rsqrt, scale, downcast
        v = xs.float()
        v = v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + 1e-5)
        return w * v.to(torch.bfloat16)

    med, _, _ = timed(rmsnorm, iters=20)
    RESULTS["memory"].append(dict(kernel="rmsnorm_eager", elements=tokens * h, s=med,
                                  bytes_min=4.0 * tokens * h, bytes_per_s_min=4.0 * tokens * h / med))
    g = torch.randn(tokens, ffn, device=DEV, dtype=torch.bfloat16)
    u = torch.randn(tokens, ffn, device=DEV, dtype=torch.bfloat16)
    med, _, _ = timed(lambda: F.silu(g) * u, iters=20)
    RESULTS["memory"].append(dict(kernel="swiglu_eager", elements=tokens * ffn, s=med,
                                  bytes_min=6.0 * tokens * ffn, bytes_per_s_min=6.0 * tokens * ffn / med))
    for r in RESULTS["memory"]:
        print(f"memory {r['kernel']:<14} {r['s'] * 1e3:8.3f} ms", flush=True)
    del x, y, xs, g, u
    torch.cuda.empty_cache()


# Llama-shaped models for whole steps (untied embeddings, as choir's validate assumes). Keep each step
# within a few seconds and the fp32 weights + grads + Adam (16 bytes/param) well inside 141 GB.
STEPS = [
    # name, layers, hidden, heads, kv heads, ffn, vocab, seq, micro-batch
    ("llama-1b-shape", 16, 2048, 32, 8, 8192, 128256, 2048, 8),
    ("llama-1b-shape", 16, 2048, 32, 8, 8192, 128256, 8192, 2),
    ("llama-8b-shape-8l", 8, 4096, 32, 8, 14336, 128256, 4096, 2),
    ("llama-8b-shape-8l", 8, 4096, 32, 8, 14336, 128256, 8192, 1),
    ("llama-3b-shape", 28, 3072, 24, 8, 8192, 128256, 4096, 1),
    ("llama-3b-shape-recompute", 28, 3072, 24, 8, 8192, 128256, 4096, 4),
    ("llama-8b-shape-8l-recompute", 8, 4096, 32, 8, 14336, 128256, 8192, 4),
    # torch.compile (Inductor fuses the element-wise kernels; GEMMs stay cuBLAS, attention cuDNN)
    ("llama-1b-shape-compiled", 16, 2048, 32, 8, 8192, 128256, 2048, 8),
    ("llama-8b-shape-8l-compiled", 8, 4096, 32, 8, 14336, 128256, 4096, 2),
]

# GPT-2-shaped models (LayerNorm, GeLU MLP of 4h, biases, learned positions; untied): name, layers, hidden,
# heads, vocab, seq, micro-batch.
GPT2_STEPS = [
    ("gpt2-xl-shape", 48, 1600, 25, 50304, 1024, 8),
    ("gpt-1.3b-shape", 24, 2048, 16, 50304, 2048, 4),
    ("gpt-1.3b-shape-compiled", 24, 2048, 16, 50304, 2048, 4),
]


def steps():
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    runs = []
    for name, layers, h, heads, kv, ffn, vocab, seq, mb in STEPS:
        cfg = functools.partial(  # bound now: the runs start after this loop
            LlamaConfig, hidden_size=h, intermediate_size=ffn, num_hidden_layers=layers, num_attention_heads=heads,
            num_key_value_heads=kv, vocab_size=vocab, max_position_embeddings=seq, tie_word_embeddings=False,
            rms_norm_eps=1e-5, rope_theta=500000.0, attn_implementation="sdpa")
        runs.append((name, "llama", LlamaForCausalLM, cfg, layers, h, heads, kv, ffn, vocab, seq, mb))
    for name, layers, h, heads, vocab, seq, mb in GPT2_STEPS:
        cfg = functools.partial(
            GPT2Config, n_embd=h, n_layer=layers, n_head=heads, vocab_size=vocab, n_positions=seq, tie_word_embeddings=False,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="sdpa")
        runs.append((name, "gpt2", GPT2LMHeadModel, cfg, layers, h, heads, heads, 4 * h, vocab, seq, mb))
    names = os.environ.get("GPU_PROBE_STEPS")  # e.g. "compiled" to run only matching steps
    for run in runs:
        name, seq, mb = run[0], run[-2], run[-1]
        if names and names not in name:
            continue
        try:
            one_step(*run)
        except Exception:  # an out-of-memory model must not cost the others
            RESULTS["errors"].append({"section": f"step {name} seq {seq} mb {mb}", "error": traceback.format_exc()})
            print(f"step {name} seq {seq} mb {mb} FAILED\n{traceback.format_exc()}", flush=True)
        torch.cuda.empty_cache()


def kernel_class(name):
    n = name.lower()
    if any(k in n for k in ("flash", "fmha", "attention")):
        return "attention"
    if any(k in n for k in ("gemm", "xmma", "cutlass", "nvjet", "cublas", "splitk", "matmul")):
        return "gemm"
    if any(k in n for k in ("adam", "multi_tensor")):
        return "optimizer"
    return "other"


def profile_step(step):
    """CUDA time per kernel class over one step, and the GPU-busy total (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    classes, kernels = {}, []
    for evt in prof.key_averages():
        us = getattr(evt, "device_time_total", None)
        if us is None:
            us = evt.cuda_time_total
        if us <= 0:
            continue
        c = kernel_class(evt.key)
        classes[c] = classes.get(c, 0.0) + us / 1e6
        kernels.append((us / 1e6, evt.count, c, evt.key[:120]))
    kernels.sort(reverse=True)
    return classes, [dict(s=s, count=n, kind=c, name=k) for s, n, c, k in kernels[:25]]


def one_step(name, family, Model, make_cfg, layers, h, heads, kv, ffn, vocab, seq, mb):
    cfg = make_cfg()
    torch.cuda.reset_peak_memory_stats()
    with torch.device(DEV):
        model = Model(cfg)
    recompute = "full" if name.endswith("-recompute") else "none"
    if recompute == "full":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    params = sum(p.numel() for p in model.parameters())
    fused = name.endswith("-compiled")
    forward = torch.compile(model) if fused else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ids = torch.randint(0, vocab, (mb, seq), device=DEV)

    def fwd_bwd():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = forward(input_ids=ids, labels=ids).loss
        loss.backward()

    def step():
        fwd_bwd()
        opt.step()
        opt.zero_grad(set_to_none=True)

    med, lo, hi = timed(step, warmup=3, iters=6)
    peak = torch.cuda.max_memory_allocated()
    fb, _, _ = timed(fwd_bwd, warmup=1, iters=4)
    opt_s, _, _ = timed(opt.step, warmup=1, iters=4)
    opt.zero_grad(set_to_none=True)
    classes, top = profile_step(step)
    RESULTS["step"].append(dict(name=name, family=family, kernel_s=classes, top_kernels=top, layers=layers, hidden=h, heads=heads, kv_heads=kv, ffn=ffn,
                                vocab=vocab, seq=seq, micro_batch=mb, params=params, step_s=med,
                                step_s_min=lo, step_s_max=hi, fwd_bwd_s=fb, optimizer_s=opt_s,
                                peak_allocated_bytes=peak, precision="amp_bf16", optimizer="AdamW(fused=True)",
                                attention=cfg._attn_implementation, recompute=recompute,
                                kernels="torch.compile" if fused else "eager"))
    tok = mb * seq / med
    print(f"step {name:<18} seq {seq:>5} mb {mb:>2} params {params / 1e9:5.2f} B: {med:7.3f} s "
          f"(fwd+bwd {fb:6.3f} s, adam {opt_s:6.3f} s) {tok:9.0f} tok/s peak {peak / 2**30:6.1f} GiB", flush=True)
    print("    kernels: " + ", ".join(f"{c} {t:.3f} s" for c, t in sorted(classes.items())), flush=True)
    del model, opt, ids


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "."
    only = os.environ.get("GPU_PROBE_ONLY")  # e.g. "env,step" to rerun some sections
    only = set(only.split(",")) if only else None
    os.makedirs(out_dir, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    if not only or "env" in only:
        section("env", env, out_dir)
    if not only or "gemm" in only:
        section("gemm", gemm, out_dir)
    if not only or "gemm_fp8" in only:
        section("gemm_fp8", gemm_fp8, out_dir)
    if not only or "attention" in only:
        section("attention", attention, out_dir)
    if not only or "memory" in only:
        section("memory", memory, out_dir)
    if not only or "step" in only:
        section("step", steps, out_dir)


if __name__ == "__main__":
    main()
