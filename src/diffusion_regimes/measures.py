"""Measurements on sampled trajectories: agreement fractions, bootstrap errors, crossing times.

Used for phi(t) (same class), phi_C(t) (same nearest training point), the measured speciation time (phi
crossing 0.775) and collapse time, with bootstrap confidence intervals (SCIENCE.md sections 3 and 5).
"""

from __future__ import annotations

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
