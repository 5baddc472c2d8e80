"""Scores ``F(x, t) = grad_x log P_t(x)``: one callable interface for every model (see :mod:`sampler`).

This module holds the closed-form Gaussian-mixture score (SCIENCE.md section 3); the exact empirical
score of a training set and the adapter for noise-predicting networks implement the same interface.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from diffusion_regimes.schedule import delta_t


def gamma_t(t: float, sigma: float) -> float:
    """``Gamma_t = Delta_t + sigma^2 e^{-2t}``: variance of each noised cluster (SCIENCE.md section 3)."""
    return float(delta_t(t)) + sigma**2 * math.exp(-2.0 * t)


@dataclass(frozen=True)
class GaussianMixtureScore:
    """Exact score of ``P_t`` for two equal-weight clusters ``N(+-m, sigma^2 I)`` (SCIENCE.md section 3).

    ``F(x, t) = m (e^{-t}/Gamma_t) tanh((e^{-t}/Gamma_t) x.m) - x/Gamma_t`` for ``x`` of shape ``(B, d)``.
    With ``m`` of shape ``(1,)`` holding ``|m|`` this is the exact score of the projection ``q = m.x/|m|``
    (the reduced, one-dimensional engine).
    """

    m: torch.Tensor  # (d,)
    sigma: float = 1.0

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        g = gamma_t(t, self.sigma)
        c = math.exp(-t) / g
        m = self.m.to(dtype=x.dtype, device=x.device)
        proj = x @ m  # (B,)
        return torch.tanh(c * proj).unsqueeze(-1) * (c * m) - x / g
