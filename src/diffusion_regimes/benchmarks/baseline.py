"""Same-run baselines: the machine's plain float32 matmul rate, against which hot paths are judged."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def best_time(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """Best wall time (seconds) of ``fn`` over ``repeats`` calls after ``warmup`` calls (GPU-synchronised)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_gflops(*, size: int = 2048, dtype: torch.dtype = torch.float32, device: str = "cpu",
                  repeats: int = 5) -> float:
    """Achieved GFLOP/s of a ``size x size`` by ``size x size`` matmul (2 size^3 flops)."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, dtype=dtype, device=device, generator=gen)
    b = torch.randn(size, size, dtype=dtype, device=device, generator=gen)
    seconds = best_time(lambda: a @ b, repeats=repeats)
    return 2.0 * size**3 / seconds / 1e9
