"""Benchmark of the exact empirical score: evaluations per second, and its achieved GFLOP/s as a fraction
of the float32 matmul rate measured in the same run (docs/science.md section 5, ``score.EmpiricalScore``).

One evaluation on a batch of B points against n training points in d dimensions costs two matmuls
(distances and weighted mean): ``4 B n d`` flops; the rest (exp, reductions) is O(B n + B d).  Both
precisions run in the same process: ``mixed`` (the default: float32 products, float64 accumulation, taken
at t = 0.5 where its error bound allows) and ``float64`` (the reference).
"""

from __future__ import annotations

import argparse

import torch

from diffusion_regimes.benchmarks.baseline import best_time, matmul_gflops
from diffusion_regimes.score import EmpiricalScore

T_BENCH = 0.5


def run(args: argparse.Namespace) -> None:
    n, d, batch = (200, 1024, 64) if args.quick else (1000, 1024, 256)
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(n, d, dtype=torch.float64, generator=gen)
    x = torch.randn(batch, d, dtype=torch.float64, generator=gen)
    base = matmul_gflops(size=args.size, repeats=10)
    base64 = matmul_gflops(size=args.size, dtype=torch.float64, repeats=10)
    print(f"exact empirical score: n = {n}, d = {d}, batch = {batch}, t = {T_BENCH}")
    print(f"  float32 matmul {args.size}^2: {base:.1f} GFLOP/s; float64: {base64:.1f} GFLOP/s (same run)")
    for precision in ("mixed", "float64"):
        score = EmpiricalScore(data, precision=precision)
        seconds = best_time(lambda score=score: score(x, T_BENCH), repeats=20)
        rate = 4.0 * batch * n * d / seconds / 1e9
        path = "float32 products" if score.uses_float32(x, T_BENCH) else "float64 throughout"
        print(f"  precision={precision} ({path}): {batch / seconds:,.0f} point evaluations/s "
              f"({seconds * 1e3:.1f} ms per batch), {rate:.2f} GFLOP/s")
        print(f"    score / float32 matmul = {rate / base:.3f}; score / float64 matmul = {rate / base64:.3f}")
