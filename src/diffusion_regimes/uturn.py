"""U-turn (forward-backward) experiments: noise a real image to time t, run the backward dynamics home.

For a start image x₀ and a time t on the sampler's grid: ``x_t = x₀ e^{-t} + sqrt(Delta_t) z`` with fresh
noise z (the exact forward law, docs/science.md section 1), then the backward dynamics from t to 0 with any
integrator of :mod:`diffusion_regimes.sampler` and any score.  Two probabilities as functions of t:

* ``same_class``: the end image has the class of x₀ (a labeller's argmax);
* ``returned``: the end image is a copy of x₀ itself, i.e. its nearest training image is x₀ and the
  memorisation ratio d₁/d₂ is below :data:`~diffusion_regimes.measures.MEMORISED_RATIO` (only for starts
  that are training images; a held-out start cannot return, and ``memorised`` then says whether the end
  copied *some* training image).

Speciation predicts the class curve to fall from 1 to the class prior around t_S; collapse predicts the
return curve to fall from 1 around t_C (for the exact score, which memorises).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from diffusion_regimes.measures import MEMORISED_RATIO, crossing_time, memorisation
from diffusion_regimes.sampler import Integrator, Score, snap_to_grid, staggered_reverse
from diffusion_regimes.schedule import delta_t

Labeller = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class UTurnResult:
    """Per U-turn time (ascending): the grid time used and the three fractions with binomial SEs."""

    times: np.ndarray
    same_class: np.ndarray
    returned: np.ndarray
    memorised: np.ndarray
    starts: int

    def stderr(self, values: np.ndarray) -> np.ndarray:
        return np.sqrt(np.clip(values * (1 - values), 0.0, None) / max(self.starts, 1))


def uturn(starts: torch.Tensor, *, start_labels: torch.Tensor, start_index: torch.Tensor,
          times: Sequence[float], training: torch.Tensor, score: Score, integrator: Integrator,
          labeller: Labeller, generator: torch.Generator, max_chunk_bytes: int = 256 * 2**20) -> UTurnResult:
    """U-turns of every start image at every time of ``times`` (snapped to the integrator's grid).

    ``starts``: ``(M, ...)`` images; ``start_labels``: ``(M,)`` their classes; ``start_index``: ``(M,)``
    the index of each start in ``training`` (``-1`` for held-out images); ``training``: ``(n, ...)`` the
    model's training set (for the nearest-image test).  One fresh noise draw per start and time.
    """
    # One staggered batch for all times (as the shared trunk of sampler.clone_sweep): the U-turns from the
    # largest t start first and those of each smaller t join the batch when the integration reaches their
    # grid index, so every step is one network call on up to (times x starts) images instead of one call
    # per time on the starts alone: the same evaluations, in the larger batches a CPU runs faster.
    indices = sorted(set(snap_to_grid(list(times), integrator)))  # ascending index = descending t
    x0 = starts.to(torch.float64)
    data = training.reshape(training.shape[0], -1).to(torch.float64)
    own = start_index.reshape(-1).to(torch.long)
    m = x0.shape[0]

    def noised(i: int) -> torch.Tensor:
        t = float(integrator.times[i])
        noise = torch.randn(x0.shape, dtype=torch.float64, generator=generator)
        return x0 * math.exp(-t) + math.sqrt(delta_t(t)) * noise

    state = staggered_reverse(indices, noised, integrator=integrator, score=score, generator=generator)
    labels = labeller(state.to(starts.dtype)).argmax(dim=1).cpu()
    ratio, neighbours = memorisation(state.reshape(state.shape[0], -1), data, max_chunk_bytes=max_chunk_bytes)
    copied = ratio < MEMORISED_RATIO
    nearest = neighbours[:, 0].cpu()
    rows = []
    for block, i in enumerate(indices):
        part = slice(block * m, (block + 1) * m)
        returned = copied[part] & (nearest[part] == own) & (own >= 0)
        same = float((labels[part] == start_labels.cpu()).double().mean())
        rows.append((float(integrator.times[i]), same, float(returned.double().mean()),
                     float(copied[part].double().mean())))
    rows.sort()
    t, same, back, copied = (np.array(column) for column in zip(*rows, strict=True))
    return UTurnResult(times=t, same_class=same, returned=back, memorised=copied, starts=int(x0.shape[0]))


UTURN_COLUMNS = ("dataset", "model", "sampler", "n", "starts_from", "t", "same_class", "same_class_se",
                 "returned", "returned_se", "memorised", "memorised_se", "starts", "class_prior",
                 "t_class_mid", "t_return_mid", "t_s_theory", "t_c_entropy", "seed")
"""Columns of results/tables/uturn.csv: one row per (dataset, model, sampler, n, kind of start, time)."""


def uturn_times(*, t_min: float, t_max: float, count: int) -> np.ndarray:
    """U-turn times: ``count`` log-spaced times on ``[t_min, t_max]`` (the return curve falls near t_C,
    the class curve near t_S, a few times larger: a geometric grid resolves both)."""
    return np.geomspace(t_min, t_max, count)


def class_prior(labels: torch.Tensor) -> float:
    """Chance agreement of two independent class draws from the training labels, ``sum_c q_c^2``: the
    class curve's limit at large t (1/2 for balanced classes)."""
    q = torch.bincount(labels.reshape(-1).to(torch.long)).to(torch.float64)
    q = q / q.sum()
    return float((q * q).sum())


def uturn_table(result: UTurnResult, *, prior: float, **keys: object) -> pd.DataFrame:
    """Rows of :data:`UTURN_COLUMNS` for one U-turn curve; ``keys`` fills the identifying columns
    (dataset, model, sampler, n, starts_from, t_s_theory, t_c_entropy, seed).

    ``t_class_mid``: where the class curve crosses halfway between 1 and ``prior``; ``t_return_mid``: where
    the return curve crosses 1/2 (NaN when a curve never crosses, e.g. held-out starts never return).
    """
    frame = pd.DataFrame({
        "t": result.times, "same_class": result.same_class, "same_class_se": result.stderr(result.same_class),
        "returned": result.returned, "returned_se": result.stderr(result.returned),
        "memorised": result.memorised, "memorised_se": result.stderr(result.memorised),
        "starts": result.starts, "class_prior": prior,
        "t_class_mid": crossing_time(result.times, result.same_class, 0.5 * (1.0 + prior)),
        "t_return_mid": crossing_time(result.times, result.returned, 0.5),
    })
    for key, value in keys.items():
        frame[key] = value
    missing = [c for c in UTURN_COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"uturn_table: give the identifying column(s) {missing}")
    return frame[list(UTURN_COLUMNS)]


__all__ = ["UTURN_COLUMNS", "UTurnResult", "class_prior", "uturn", "uturn_table", "uturn_times"]
