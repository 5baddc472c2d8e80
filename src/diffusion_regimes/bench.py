"""Benchmarks: ``python -m diffusion_regimes.bench NAME`` (``--help`` lists the names).

Every benchmark prints its timings together with a baseline measured in the same run (e.g. a plain
float32 matmul), so the printed ratios mean the same thing on a laptop, a contended CI box or a GPU node.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from diffusion_regimes.benchmarks import baseline, empirical_score
from diffusion_regimes.benchmarks import gaussian_mixture as gm_bench
from diffusion_regimes.benchmarks import isolation as _isolation
from diffusion_regimes.benchmarks import local_score as _local
from diffusion_regimes.benchmarks import speciation as _speciation
from diffusion_regimes.benchmarks import spectrum as _spectrum
from diffusion_regimes.benchmarks import unet as _unet


def _matmul(args: argparse.Namespace) -> None:
    rate = baseline.matmul_gflops(size=args.size)
    print(f"float32 matmul {args.size}x{args.size}: {rate:.1f} GFLOP/s")


# name -> (function, help); each study registers its own entry.
BENCHMARKS: dict[str, tuple[Callable[[argparse.Namespace], None], str]] = {
    "matmul": (_matmul, "the float32 matmul baseline alone"),
    "score": (empirical_score.run, "exact empirical score evaluations/s vs the matmul rate"),
    "unet": (_unet.run, "UNet training steps/s, sampling calls/s, FLOP rate vs matmul, per-layer profile"),
    "gm": (gm_bench.run, "Gaussian mixture: full vs reduced engine, Fig. 2 time, entropy GFLOP/s vs matmul"),
    "spectrum": (_spectrum.run, "top covariance eigenvalue: matrix-free lobpcg vs covariance + eigvalsh"),
    "speciation": (_speciation.run, "Gaussian-class t_S predictor, 45 Fashion-MNIST pairs, vs matmul"),
    "isolation": (_isolation.run, "LSUN-sized WebP export: decoding in limited child processes vs "
                                  "in-process"),
    "local": (_local.run, "local score machines LS / ELS: image evaluations/s vs the matmul rate"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diffusion_regimes.bench", description=__doc__)
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark")
    parser.add_argument("--size", type=int, default=2048, help="matmul baseline size")
    parser.add_argument("--quick", action="store_true", help="smaller problem sizes (smoke test)")
    parser.add_argument("--compile", action="store_true",
                        help="unet: also measure torch.compile (compile time included; minutes on a CPU)")
    args = parser.parse_args(argv)
    BENCHMARKS[args.name][0](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
