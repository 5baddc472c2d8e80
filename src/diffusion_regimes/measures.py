"""Measurements on sampled trajectories: agreement fractions, bootstrap errors, crossing times.

Used for phi(t) (same class), phi_C(t) (same nearest training point), the measured speciation time (phi
crossing 0.775) and collapse time, with bootstrap confidence intervals (docs/science.md sections 3 and 5).
Nearest training points come from one chunked matmul per block of training rows (never a loop over
samples); the collapse time of a trajectory is :func:`collapse_times`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


def bootstrap_weights(n: int, *, n_boot: int, generator: torch.Generator) -> torch.Tensor:
    """Resampling weights ``(n_boot, n)``: row r counts how often each of the n items is drawn (sum n).

    A bootstrap mean is then one matrix product, ``values @ weights.T / n``, never a Python loop.
    """
    idx = torch.randint(0, n, (n_boot, n), generator=generator)
    weights = torch.zeros(n_boot, n, dtype=torch.float64)
    return weights.scatter_add_(1, idx, torch.ones(n_boot, n, dtype=torch.float64))


def bootstrap_means(values: torch.Tensor, *, n_boot: int, generator: torch.Generator) -> torch.Tensor:
    """Bootstrap replicates of the mean over the last axis: ``(..., N)`` -> ``(..., n_boot)``.

    The same resampled items are used for every leading entry, which is the right bootstrap when the
    leading axis (e.g. branch times of a shared-trunk sweep) is correlated through shared items.
    """
    n = values.shape[-1]
    weights = bootstrap_weights(n, n_boot=n_boot, generator=generator)
    return values.to(torch.float64) @ weights.T / n


def bootstrap_standard_error(
    values: torch.Tensor, *, n_boot: int, generator: torch.Generator
) -> torch.Tensor:
    """Bootstrap standard error of the mean of ``values`` along its last axis: ``(..., N)`` -> ``(...)``."""
    return bootstrap_means(values, n_boot=n_boot, generator=generator).std(dim=-1, unbiased=True)


def crossing_time(times: np.ndarray, values: np.ndarray, level: float) -> float:
    """Largest time at which the curve ``values(times)`` crosses ``level`` (linear interpolation).

    ``times`` need not be sorted.  Returns ``nan`` when the curve never reaches ``level``.  For phi(t),
    which decreases from 1 to 1/2 as t grows, this is the measured speciation time at ``level = 0.775``.
    """
    order = np.argsort(times)
    t = np.asarray(times, dtype=np.float64)[order]
    v = np.asarray(values, dtype=np.float64)[order] - level
    crossings = np.nonzero(np.sign(v[:-1]) * np.sign(v[1:]) <= 0)[0]
    crossings = crossings[(v[crossings] != 0) | (v[crossings + 1] != 0)] if crossings.size else crossings
    if crossings.size == 0:
        return float("nan")
    j = crossings[-1]
    if v[j + 1] == v[j]:
        return float(t[j + 1])
    return float(t[j] + (t[j + 1] - t[j]) * (-v[j]) / (v[j + 1] - v[j]))


@dataclass(frozen=True)
class Crossing:
    """A crossing time with a bootstrap percentile interval (``level`` is the confidence, e.g. 0.95)."""

    time: float
    low: float
    high: float
    confidence: float


def crossing_with_interval(
    times: np.ndarray,
    agree: torch.Tensor,
    *,
    level: float,
    n_boot: int,
    generator: torch.Generator,
    confidence: float = 0.95,
) -> Crossing:
    """Crossing of the mean curve of ``agree`` (shape ``(B, N)``: B times, N pairs each) with ``level``.

    The interval resamples the N pairs (jointly across times, since a shared trunk correlates them) and
    takes percentiles of the resampled crossing times (resamples that never cross are dropped).
    """
    values = agree.to(torch.float64)
    point = crossing_time(times, values.mean(dim=1).numpy(), level)
    boot = bootstrap_means(values, n_boot=n_boot, generator=generator).T.numpy()  # (n_boot, B)
    samples = np.array([crossing_time(times, row, level) for row in boot])
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return Crossing(point, float("nan"), float("nan"), confidence)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return Crossing(point, float(low), float(high), confidence)


PHI_SPECIATION_LEVEL = 0.775
"""phi(t) level defining the measured speciation time (finite-d curves cross there, docs/science.md
section 3)."""

PHI_COLLAPSE_LEVEL = 0.5
"""phi_C(t) level defining the measured collapse time from clones (docs/science.md section 5)."""

MEMORISED_RATIO = 1.0 / 3.0
"""A sample is memorised when (distance to nearest) / (distance to second nearest training point) < 1/3."""


def two_nearest(
    x: torch.Tensor, data: torch.Tensor, *, t: float = 0.0, max_chunk_bytes: int = 256 * 2**20
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances and indices of the two nearest training points to ``x`` among ``data e^{-t}``.

    ``x``: ``(B, ...)`` (flattened to ``(B, d)``), ``data``: ``(n, d)`` with ``n >= 2``.  Returns
    ``(distances (B, 2) float64, indices (B, 2) long)``, nearest first.  Squared distances are
    ``|x|^2 + e^{-2t}|a|^2 - 2 e^{-t} x.a`` from one float64 matmul per chunk of training rows (chunk chosen
    so the ``(B, chunk)`` block stays below ``max_chunk_bytes``); per-chunk top-2 results are merged.
    """
    flat = x.reshape(x.shape[0], -1).to(device=data.device, dtype=torch.float64)
    a_all = data.to(torch.float64)
    n = a_all.shape[0]
    if n < 2:
        raise ValueError("two_nearest needs at least two training points")
    decay = math.exp(-t)
    x_sq = (flat * flat).sum(dim=1, keepdim=True)
    rows = max(2, min(n, max_chunk_bytes // max(1, 8 * flat.shape[0])))
    best_d = torch.full((flat.shape[0], 2), math.inf, dtype=torch.float64, device=flat.device)
    best_i = torch.zeros((flat.shape[0], 2), dtype=torch.long, device=flat.device)
    for start in range(0, n, rows):
        a = a_all[start:start + rows]
        sq = x_sq + decay**2 * (a * a).sum(dim=1)[None, :] - 2.0 * decay * (flat @ a.T)
        k = min(2, a.shape[0])
        d_chunk, i_chunk = torch.topk(sq, k, dim=1, largest=False)
        cand_d = torch.cat([best_d, d_chunk], dim=1)
        cand_i = torch.cat([best_i, i_chunk + start], dim=1)
        order = torch.argsort(cand_d, dim=1, stable=True)[:, :2]
        best_d = torch.gather(cand_d, 1, order)
        best_i = torch.gather(cand_i, 1, order)
    return best_d.clamp_min(0.0).sqrt(), best_i


def nearest_index(
    x: torch.Tensor, data: torch.Tensor, *, t: float = 0.0, max_chunk_bytes: int = 256 * 2**20
) -> torch.Tensor:
    """Index ``(B,)`` of the training point nearest to ``x (B, ...)`` among ``data (n, d)`` scaled by
    e^{-t}."""
    if data.shape[0] == 1:
        return torch.zeros(x.shape[0], dtype=torch.long, device=data.device)
    return two_nearest(x, data, t=t, max_chunk_bytes=max_chunk_bytes)[1][:, 0]


def memorisation(
    x: torch.Tensor, data: torch.Tensor, *, max_chunk_bytes: int = 256 * 2**20
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample the ratio ``|x - a_1| / |x - a_2|`` ``(B,)`` float64 and the indices ``(B, 2)`` of
    ``a_1``, ``a_2`` (nearest and second-nearest training point, at t = 0).

    Below :data:`MEMORISED_RATIO` the sample counts as a copy of its nearest training point.
    """
    dist, indices = two_nearest(x, data, t=0.0, max_chunk_bytes=max_chunk_bytes)
    return dist[:, 0] / dist[:, 1], indices


def memorisation_ratio(
    x: torch.Tensor, data: torch.Tensor, *, max_chunk_bytes: int = 256 * 2**20
) -> torch.Tensor:
    """The ratio of :func:`memorisation` alone, ``(B,)`` float64."""
    return memorisation(x, data, max_chunk_bytes=max_chunk_bytes)[0]


def collapse_times(indices: torch.Tensor, times: torch.Tensor, *, check_every: int = 1) -> torch.Tensor:
    """Per-trajectory collapse time t̂_C from nearest-index histories (docs/science.md section 5).

    ``indices``: ``(T+1, N)`` nearest training index of N trajectories at the grid times ``times``
    ``(T+1,)`` (descending, the last one is t = 0).  On the discrete grid, t̂_C is the largest grid time
    ``t_j`` such that the nearest index stays equal to its final value at every grid time ``t_{j'} <= t_j``:
    the time from which the trajectory is locked onto its training point.  If the index changes between
    ``t_{j-1}`` and ``t_j`` for the last time, t̂_C = ``t_j``; if it never changes, t̂_C = ``times[0]``.
    Returns ``(N,)`` float64.

    ``check_every = c`` tests the nearest index only at every c-th grid point counted back from the last
    (t = 0) one, as the paper's authors do every 50 DDPM steps.  Compared with ``c = 1`` this moves t̂_C
    down to the checked grid point at or below the last change (at most one interval of c grid points
    lower), except when the index leaves and comes back between two checks, which is then missed and
    leaves t̂_C higher.
    """
    if indices.dim() != 2 or indices.shape[0] != times.shape[0]:
        raise ValueError(f"indices must be (T+1, N) with T+1 = {times.shape[0]}, got {tuple(indices.shape)}")
    if check_every < 1:
        raise ValueError(f"check_every must be a positive number of grid points, got {check_every}")
    if check_every > 1:
        # keep the final grid point (t = 0) and every check_every-th one before it, in descending time
        keep = torch.arange(indices.shape[0] - 1, -1, -check_every, device=indices.device).flip(0)
        indices, times = indices[keep], times[keep.cpu()]
    changed = indices[1:] != indices[:-1]  # (T, N): change between grid points j-1 and j (j = row + 1)
    rows = torch.arange(1, indices.shape[0], device=indices.device)[:, None]
    locked = (rows * changed).max(dim=0).values if changed.numel() else torch.zeros(
        indices.shape[1], dtype=torch.long
    )
    return times.to(torch.float64)[locked.cpu()]


def agreement(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Elementwise ``first == second`` as float64: the per-pair summand of phi (classes) or phi_C
    (indices)."""
    return (first == second).to(torch.float64)
