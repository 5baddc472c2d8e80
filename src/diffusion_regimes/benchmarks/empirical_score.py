"""Benchmark of the exact empirical score: evaluations per second, and its achieved GFLOP/s as a fraction
of the float32 matmul rate measured in the same run (SCIENCE.md section 5, ``score.EmpiricalScore``).

One evaluation on a batch of B points against n training points in d dimensions costs two float64
matmuls (distances and weighted mean): ``4 B n d`` flops; the rest (exp, reductions) is O(B n + B d).
"""

from __future__ import annotations

import argparse

import torch

from diffusion_regimes.benchmarks.baseline import best_time, matmul_gflops
from diffusion_regimes.score import EmpiricalScore


def run(args: argparse.Namespace) -> None:
    n, d, batch = (200, 1024, 64) if args.quick else (1000, 1024, 256)
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(n, d, dtype=torch.float64, generator=gen)
    x = torch.randn(batch, d, dtype=torch.float64, generator=gen)
    score = EmpiricalScore(data)
    base = matmul_gflops(size=args.size)
    base64 = matmul_gflops(size=args.size, dtype=torch.float64)
    seconds = best_time(lambda: score(x, 0.5), repeats=5)
    rate = 4.0 * batch * n * d / seconds / 1e9
    print(f"exact empirical score: n = {n}, d = {d}, batch = {batch}")
    print(f"  {batch / seconds:,.0f} point evaluations/s ({seconds * 1e3:.1f} ms per batch), {rate:.2f} GFLOP/s")
    print(f"  float32 matmul {args.size}^2: {base:.1f} GFLOP/s; float64: {base64:.1f} GFLOP/s (same run)")
    print(f"  score / float32 matmul = {rate / base:.3f}; score / float64 matmul = {rate / base64:.3f}")
