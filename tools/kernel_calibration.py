#!/usr/bin/env python3
"""Kernel-level compute figures from tools/gpu_probe.py's measurements, for crates/sim/data/compute.toml.

  python3 tools/kernel_calibration.py tests/data/measured/h200_gpu_probe.json [--peak-tflops 989.4]

Derives, from kernels alone (never from whole training steps):
  gemm_max_efficiency, gemm_half_flops  least-squares fit of eff(F) = E * F / (F + H) to every bf16 GEMM timed,
                                        in relative error (a grid over E and log H, then the best point)
  attention_efficiency                  SDPA FlashAttention forward+backward at 4k-8k tokens per sequence,
                                        the training range (median)
  fp8_efficiency_ratio                  fp8 GEMM efficiency over bf16 efficiency at the same shapes (median)
  memory_efficiency                     copy bandwidth over the datasheet's
"""

import json
import statistics
import sys

DATASHEET = {"NVIDIA H200": (989.4e12, 1978.9e12, 4.8e12), "NVIDIA H100 80GB HBM3": (989.4e12, 1978.9e12, 3.35e12)}


def main():
    path = sys.argv[1]
    d = json.load(open(path))
    gpu = d["env"]["gpu"]
    bf16_peak, fp8_peak, hbm = DATASHEET[gpu]
    gemms = [(g["flops"], g["flops_per_s"] / bf16_peak) for g in d["gemm"] if g["flops"] >= 1e9]
    best = None
    for e100 in range(50, 96):
        e = e100 / 100
        for k in range(80, 121):
            h = 10 ** (k / 10)
            err = sum(((e * f / (f + h)) / eff - 1) ** 2 for f, eff in gemms)
            if best is None or err < best[0]:
                best = (err, e, h)
    _, e, h = best
    rms = (best[0] / len(gemms)) ** 0.5
    att = [a["fwd_bwd_flops"] / a["fwd_bwd_s"] / bf16_peak for a in d["attention"] if 4096 <= a["seq"] <= 8192]
    bf16 = {(g["m"], g["n"], g["k"]): g["flops_per_s"] / bf16_peak for g in d["gemm"]}
    ratios = [
        (g["flops_per_s"] / fp8_peak) / bf16[(g["m"], g["n"], g["k"])]
        for g in d["gemm_fp8"]
        if (g["m"], g["n"], g["k"]) in bf16
    ]
    copy = next(m for m in d["memory"] if m["kernel"] == "copy")
    print(f"# {gpu}, {d['env']['date']}, torch {d['env']['torch']}: from {path} by tools/kernel_calibration.py")
    print(f"# GEMM fit over {len(gemms)} bf16 GEMMs of >= 1 GFLOP, rms relative error {rms:.1%}")
    print(f"gemm_max_efficiency = {e:.2f}")
    print(f"gemm_half_flops = {h:.3e}")
    print(f"attention_efficiency = {statistics.median(att):.2f}")
    print(f"memory_efficiency = {copy['bytes_per_s'] / hbm:.2f}")
    print(f"fp8_efficiency_ratio = {statistics.median(ratios):.2f}  # over {len(ratios)} shapes")


if __name__ == "__main__":
    main()
