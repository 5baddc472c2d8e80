"""Time conventions: the Ornstein-Uhlenbeck forward process and the discrete DDPM schedule.

One time axis everywhere (docs/science.md section 1): the forward process ``dx = -x dt + sqrt(2) dW`` gives
``x(t) = a e^{-t} + sqrt(Delta_t) z`` with ``Delta_t = 1 - e^{-2t}``.  The DDPM step ``k`` of the linear
beta schedule maps to continuous time ``t = -1/2 log alpha_bar(k)``.  All schedule arithmetic is float64
(docs/architecture.md principle 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

DTYPE = torch.float64


def delta_t(t: float | torch.Tensor) -> float | torch.Tensor:
    """Noise variance ``Delta_t = 1 - e^{-2t}`` of the OU process at time ``t`` (docs/science.md
    section 1)."""
    if isinstance(t, torch.Tensor):
        return -torch.expm1(-2.0 * t)
    return -math.expm1(-2.0 * t)


def forward_noise(a: torch.Tensor, t: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample ``x(t) = a e^{-t} + sqrt(Delta_t) z`` for data points ``a`` of shape ``(B, ...)``."""
    z = torch.randn(a.shape, dtype=a.dtype, device=a.device, generator=generator)
    return a * math.exp(-t) + math.sqrt(delta_t(t)) * z


def ou_time_grid(*, t_max: float, n_steps: int) -> torch.Tensor:
    """Uniform descending grid ``t_max = t_0 > t_1 > ... > t_L = 0`` of ``L = n_steps`` Euler steps,
    ``(L+1,)``."""
    if t_max <= 0 or n_steps < 1:
        raise ValueError(f"need t_max > 0 and n_steps >= 1, got t_max={t_max}, n_steps={n_steps}")
    return torch.linspace(t_max, 0.0, n_steps + 1, dtype=DTYPE)


@dataclass(frozen=True)
class DDPMSchedule:
    """Linear-beta DDPM schedule of Ho et al. (2020) with ``n_steps`` steps (docs/science.md section 1).

    Index conventions: step ``k`` runs from 1 to ``L = n_steps``; arrays are indexed by ``k`` directly,
    with entry 0 standing for the clean data (``alpha_bar(0) = 1``, ``t = 0``).
    """

    n_steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 2e-2

    def __post_init__(self) -> None:
        if self.n_steps < 1 or not (0 < self.beta_start <= self.beta_end < 1):
            raise ValueError(f"invalid DDPM schedule {self}")

    @cached_property
    def betas(self) -> torch.Tensor:
        """``beta_k`` for ``k = 0..L`` (``beta_0 = 0`` is a placeholder), shape ``(L+1,)``, float64."""
        b = torch.linspace(self.beta_start, self.beta_end, self.n_steps, dtype=DTYPE)
        return torch.cat([torch.zeros(1, dtype=DTYPE), b])

    @cached_property
    def alpha_bar(self) -> torch.Tensor:
        """``alpha_bar(k) = prod_{s<=k} (1 - beta_s)`` for ``k = 0..L``, shape ``(L+1,)``, float64."""
        return torch.cumprod(1.0 - self.betas, dim=0)

    @cached_property
    def times(self) -> torch.Tensor:
        """Continuous time of every step, ``t(k) = -1/2 log alpha_bar(k)``, shape ``(L+1,)``, float64."""
        return -0.5 * torch.log(self.alpha_bar)

    def time_of_step(self, k: int) -> float:
        """Continuous time of DDPM step ``k`` (``k = 1000`` gives ``t ~ 5.05``)."""
        return float(self.times[k])

    def step_of_time(self, t: float) -> int:
        """The step ``k`` whose continuous time is nearest to ``t``."""
        return int(torch.argmin(torch.abs(self.times - t)))
