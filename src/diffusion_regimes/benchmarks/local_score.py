"""Benchmark of the local score machines (``local_score.LocalScore``, ``local_score.EquivariantLocalScore``):
score evaluations per second on MNIST-sized problems and their arithmetic rate as a fraction of the
float32 matmul rate measured in the same run (docs/science.md section 7).

Operation counts per image evaluation (C channels, H W pixels, patch side P):

* LS against n training images: ``n H W (5 C + 2 (H + W) + 3)`` (difference, square, channel sum, the box
  filter as two banded matmuls of ``2 H`` and ``2 W`` flops per pixel, scaling, exponential, weighted sum);
  mostly elementwise work, so its ratio to the matmul rate says how far the memory-bound loop is from the
  machine's peak;
* ELS against a bank of m patches: ``2 H W m (C P^2 + C)`` (the distance matmul and the weighted sum of the
  centre pixels), plus ``H W m`` exponentials.

The exact score (``score.EmpiricalScore``, ``4 n d`` per image) is timed beside them as the reference
machine.  Times are taken at t = 0.5 (float32 products).
"""

from __future__ import annotations

import argparse

import torch

from diffusion_regimes.benchmarks.baseline import best_time, matmul_gflops
from diffusion_regimes.local_score import EquivariantLocalScore, LocalScore
from diffusion_regimes.score import EmpiricalScore

T_BENCH = 0.5


def run(args: argparse.Namespace) -> None:
    n, side, batch = (200, 32, 4) if args.quick else (1000, 32, 16)
    patches = (5, 9) if args.quick else (5, 9, 15)
    banks = (2_000,) if args.quick else (10_000, 50_000)
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(n, 1, side, side, dtype=torch.float64, generator=gen)
    x = torch.randn(batch, 1, side, side, dtype=torch.float64, generator=gen)
    hw = side * side
    base = matmul_gflops(size=args.size, repeats=10)
    print(f"local score machines: n = {n} images of 1x{side}x{side}, batch = {batch}, t = {T_BENCH}")
    print(f"  float32 matmul {args.size}^2: {base:.1f} GFLOP/s (same run)")
    exact = EmpiricalScore(data.reshape(n, -1))
    seconds = best_time(lambda: exact(x.reshape(batch, -1), T_BENCH), repeats=5)
    rate = 4.0 * batch * n * hw / seconds / 1e9
    print(f"  exact score: {batch / seconds:,.1f} image evaluations/s, {rate:.2f} GFLOP/s, "
          f"ratio to matmul {rate / base:.3f}")
    for p in patches:
        ls = LocalScore(data, patch=p)
        seconds = best_time(lambda ls=ls: ls(x, T_BENCH), repeats=3)
        rate = batch * n * hw * (5 + 4 * side + 3) / seconds / 1e9
        print(f"  LS  P = {p:2d}: {batch / seconds:,.2f} image evaluations/s "
              f"({seconds * 1e3:.0f} ms per batch), {rate:.2f} GFLOP/s, ratio to matmul {rate / base:.3f}")
    for m in banks:
        for p in patches:
            els = EquivariantLocalScore(data, patch=p, bank_size=m)
            els.bank(p)  # built once per P, outside the timing (a sampler reuses it at every step)
            seconds = best_time(lambda els=els: els(x, T_BENCH), repeats=2)
            rate = 2.0 * batch * hw * m * (p * p + 1) / seconds / 1e9
            print(f"  ELS P = {p:2d}, bank m = {m:,}: {batch / seconds:,.2f} image evaluations/s "
                  f"({seconds * 1e3:.0f} ms per batch), {rate:.2f} GFLOP/s, "
                  f"ratio to matmul {rate / base:.3f}")
