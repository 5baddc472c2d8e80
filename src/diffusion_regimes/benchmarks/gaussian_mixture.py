"""``python -m diffusion_regimes.bench gm``: the Gaussian-mixture hot paths against same-run baselines.

1. Full-d engine vs reduced engine, same d and pairs (speed-up ratio of the exact 1-D reduction).
2. Reduced engine on all four d of paper Fig. 2 at 10 000 pairs (target < 60 s on 2 cores).
3. Excess-entropy estimator: achieved GFLOP/s (2 n' n d flops per time for the cross term, nothing else
   counted) as a fraction of a plain float32 matmul measured in the same run (target >= 70 %).
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from diffusion_regimes.benchmarks.baseline import matmul_gflops
from diffusion_regimes.entropy import excess_entropy
from diffusion_regimes.gaussian_mixture import GaussianMixture, SpeciationConfig, speciation


def _speciation_seconds(d: int, *, engine: str, pairs: int, branch_times: tuple[float, ...]) -> float:
    sp = SpeciationConfig()
    start = time.perf_counter()
    speciation(GaussianMixture.uniform(d), engine=engine, pairs=pairs, branch_times=branch_times,
               t_max=sp.t_max, n_steps=sp.n_steps, level=sp.level, n_boot=100,
               generator=torch.Generator().manual_seed(0))
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> None:
    threads = torch.get_num_threads()
    print(f"torch threads: {threads}")
    sp = SpeciationConfig()

    # 1. full vs reduced on the same problem (the full engine is the expensive one: keep it small)
    d_check, pairs_check = 256, (200 if args.quick else 1000)
    full = _speciation_seconds(d_check, engine="full", pairs=pairs_check, branch_times=sp.branch_times)
    reduced = _speciation_seconds(d_check, engine="reduced", pairs=pairs_check, branch_times=sp.branch_times)
    print(f"[engines] d={d_check}, {pairs_check} pairs, {len(sp.branch_times)} branch times: "
          f"full {full:.2f} s, reduced {reduced:.3f} s, speed-up x{full / reduced:.0f}")

    # 2. the whole of Fig. 2 with the reduced engine
    pairs = 1000 if args.quick else sp.pairs
    start = time.perf_counter()
    for d in sp.dims:
        _speciation_seconds(d, engine="reduced", pairs=pairs, branch_times=sp.branch_times)
    fig2 = time.perf_counter() - start
    print(f"[fig2] reduced engine, d in {list(sp.dims)}, {pairs} pairs: {fig2:.1f} s (target < 60 s)")

    # 3. excess entropy vs the matmul baseline, measured around it to share the machine's state
    n, d, n_prime = (2000, 1024, 512) if args.quick else (20_000, 4096, 1024)
    gen = torch.Generator().manual_seed(0)
    data = GaussianMixture.random(d, generator=gen).sample(n, generator=gen, dtype=torch.float32)
    times = [0.8, 1.5, 3.0]
    base_before = matmul_gflops(size=args.size)
    best = math.inf
    for _ in range(2):
        start = time.perf_counter()
        excess_entropy(data, times=times, n_prime=n_prime, generator=torch.Generator().manual_seed(1))
        best = min(best, time.perf_counter() - start)
    base_after = matmul_gflops(size=args.size)
    base = max(base_before, base_after)
    rate = 2.0 * n_prime * n * d * len(times) / best / 1e9
    print(f"[entropy] n={n}, d={d}, n'={n_prime}, {len(times)} times: {best:.2f} s, {rate:.1f} GFLOP/s; "
          f"float32 matmul {args.size}^3: {base:.1f} GFLOP/s (before {base_before:.1f}, after "
          f"{base_after:.1f}); ratio {rate / base:.0%} (target >= 70 %)")
    # where the rest goes: the estimator's own ops by self CPU time (one more call, profiled)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        excess_entropy(data, times=times, n_prime=n_prime, generator=torch.Generator().manual_seed(1))
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in ops)
    print("[entropy] self CPU time by op: " + ", ".join(
        f"{e.key.removeprefix('aten::')} {e.self_cpu_time_total / total:.0%}" for e in ops[:6]))
