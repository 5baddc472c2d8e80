"""The Gaussian-class predictor of t_S for all 45 Fashion-MNIST pairs: wall time and FLOP rate against the
float64 and float32 matmul rates measured in the same run.

The predictor's arithmetic is dominated by matmuls: per class one covariance (``n_c d^2``, 2 flops each)
and its eigendecomposition (~``9 d^3``), then per class the projections of every selected image and of its
noise on the class's eigenvectors (``2 x 2 N d^2``) and three (N, d) x (d, T) products.  Without the
Fashion-MNIST files (``apt-get install dataset-fashion-mnist``) the same shapes are run on Gaussian data.
"""

from __future__ import annotations

import argparse
import time

import torch

from diffusion_regimes.benchmarks.baseline import matmul_gflops


def _data(quick: bool) -> tuple[torch.Tensor, torch.Tensor, list[str], str]:
    from diffusion_regimes.data.sources import FASHION_DEBIAN, FASHION_NAMES, fashion_training_split

    if (FASHION_DEBIAN / "train-images-idx3-ubyte.gz").is_file() and not quick:
        images, labels, _ = fashion_training_split(FASHION_DEBIAN)
        x = torch.tensor(images, dtype=torch.float64).reshape(len(images), -1) / 255.0
        return x, torch.tensor(labels, dtype=torch.long), list(FASHION_NAMES), "Fashion-MNIST training split"
    n, d = (600, 784) if quick else (6000, 784)
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(10 * n) % 10
    x = torch.randn(10 * n, d, dtype=torch.float64, generator=gen) + 0.3 * labels[:, None]
    return x, labels, [str(c) for c in range(10)], f"Gaussian stand-in (10 x {n} x {d})"


def run(args: argparse.Namespace) -> None:
    from diffusion_regimes.speciation import PredictorConfig, pair_predictions

    x, y, names, what = _data(args.quick)
    cfg = PredictorConfig(images_per_class=100 if args.quick else 1000)
    threads = torch.get_num_threads()
    print(
        f"speciation predictor benchmark: {what}, {x.shape[0]} images, d = {x.shape[1]}, "
        f"{cfg.images_per_class} noised images per class, {cfg.n_times} times, threads = {threads}",
        flush=True,
    )
    rate64 = matmul_gflops(size=args.size, dtype=torch.float64)
    rate32 = matmul_gflops(size=args.size)
    start = time.perf_counter()
    table, _ = pair_predictions(x, y, names, cfg=cfg, seed=0, source="bench")
    seconds = time.perf_counter() - start
    k, n, d = len(names), x.shape[0], x.shape[1]
    m = k * cfg.images_per_class
    flops = 2 * n * d * d + k * 9 * d**3 + k * (4 * m * d * d + 3 * 2 * m * d * cfg.n_times)
    achieved = flops / seconds / 1e9
    print(
        f"  {len(table)} pairs in {seconds:.2f} s ({seconds / len(table) * 1e3:.0f} ms per pair)", flush=True
    )
    print(f"  matmul baselines: float64 {rate64:.1f} GFLOP/s, float32 {rate32:.1f} GFLOP/s", flush=True)
    print(
        f"  predictor arithmetic {flops / 1e9:.0f} GFLOP -> {achieved:.1f} GFLOP/s = "
        f"{achieved / rate64:.2f} x the float64 matmul rate ({achieved / rate32:.2f} x float32)",
        flush=True,
    )
    print(
        f"  time in float64-matmul units: {seconds * rate64 / (flops / 1e9):.2f} x the pure-matmul time",
        flush=True,
    )
