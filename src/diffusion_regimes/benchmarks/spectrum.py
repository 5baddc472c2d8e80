"""Top covariance eigenvalue: matrix-free lobpcg vs forming the covariance + ``eigvalsh``.

Full size is LSUN's (n = 40 000, d = 12 288, ~3.9 GB of float64 data); ``--quick`` is a smoke size.
Synthetic data with a planted top eigenvalue (Λ = 60, near LSUN's 60.5) so both routes can be checked
against it.  Peak memory is the process's resident-set high-water mark growth during each route
(measured on CPU with ``resource.getrusage``; on CUDA with ``torch.cuda.max_memory_allocated``).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from diffusion_regimes.spectrum import top_eigenvalue


def _planted(n: int, d: int, lam: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n, d) float64, covariance ≈ I + (Λ - 1) u uᵀ with u a random unit vector; centred in place."""
    x = torch.randn(n, d, dtype=torch.float64, generator=generator).to(device)
    u = torch.randn(d, dtype=torch.float64, generator=generator).to(device)
    u /= u.norm()
    # Add sqrt(Λ-1) g u to each row: variance along u becomes 1 + (Λ-1).
    g = torch.randn(n, dtype=torch.float64, generator=generator).to(device)
    x.addr_(g, u, alpha=(lam - 1) ** 0.5)
    x -= x.mean(dim=0, keepdim=True)
    return x


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
    else:
        base = _peak_mb(device)
    start = time.perf_counter()
    value = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return value, seconds, max(0.0, _peak_mb(device) - base)


def run(args: argparse.Namespace) -> None:
    n, d = (4000, 1536) if args.quick else (40_000, 12_288)
    if getattr(args, "n", None):
        n, d = args.n, args.d
    lam = 60.0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gen = torch.Generator().manual_seed(0)
    x = _planted(n, d, lam, gen, device)
    print(f"spectrum benchmark on {device}: n = {n}, d = {d}, data {x.numel() * 8 / 2**30:.2f} GiB "
          f"float64, planted Λ = {lam}, threads = {torch.get_num_threads()}", flush=True)
    # Matrix-free first: the dense route's d x d buffers would otherwise raise the RSS high-water mark
    # before lobpcg is measured.
    lob, t_lob, m_lob = _timed(
        lambda: float(top_eigenvalue(x, k=1, tol=1e-9, generator=torch.Generator(device).manual_seed(1))[0]),
        device,
    )
    print(f"  lobpcg matrix-free : Λ = {lob:.6f}  time {t_lob:8.2f} s  peak +{m_lob:8.1f} MB", flush=True)

    def dense() -> float:
        cov = x.T @ x / (n - 1)
        return float(torch.linalg.eigvalsh(cov)[-1])

    ref, t_dense, m_dense = _timed(dense, device)
    print(f"  covariance+eigvalsh: Λ = {ref:.6f}  time {t_dense:8.2f} s  peak +{m_dense:8.1f} MB", flush=True)
    print(f"  relative difference of Λ: {abs(lob / ref - 1):.2e}", flush=True)
    # RSS is a high-water mark: a route that stays below the data's own footprint shows +0 MB.
    memory = f"{m_dense / m_lob:.1f}x" if m_lob >= 1.0 else "lobpcg below resolution (< 1 MB extra)"
    print(f"  ratio dense / lobpcg: time {t_dense / t_lob:.1f}x, memory {memory} "
          f"(the covariance alone is {d * d * 8 / 2**20:.0f} MB)", flush=True)
