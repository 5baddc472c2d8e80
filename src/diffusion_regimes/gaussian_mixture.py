"""The Gaussian-mixture experiments (docs/science.md section 3): speciation by cloning, collapse by f^e.

* :class:`GaussianMixture` -- two equal-weight clusters ``N(+-m, sigma^2 I)``: data, exact samples of P_t,
  the analytic score, and the exact one-dimensional reduction to ``q = m.x / |m|``.
* :func:`speciation` -- phi(t) by the shared-trunk cloning sweep of :mod:`sampler` (Euler-Maruyama, T = 10,
  1000 steps), with two engines sharing the one reverse step: ``full`` (x in R^d) and ``reduced`` (q in R).
* :func:`collapse` -- f^e(t)/alpha on n mixture points with :func:`entropy.excess_entropy`, t_C numeric
  and theory.

Configuration: :class:`GaussianMixtureConfig` (the ``gaussian_mixture:`` section of the config).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from diffusion_regimes import theory
from diffusion_regimes.entropy import CollapseTime, ExcessEntropy, collapse_time, excess_entropy
from diffusion_regimes.measures import Crossing, bootstrap_standard_error, crossing_with_interval
from diffusion_regimes.sampler import EulerMaruyama, clone_sweep
from diffusion_regimes.score import GaussianMixtureScore, gamma_t

Engine = Literal["full", "reduced"]


# ---------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class SpeciationConfig:
    dims: tuple[int, ...] = (256, 1024, 4096, 16384)
    pairs: int = 10_000
    branch_times: tuple[float, ...] = tuple(1.0 + 0.5 * k for k in range(19))
    t_max: float = 10.0
    n_steps: int = 1000
    engine: Engine = "reduced"
    dtype: Literal["float32", "float64"] = "float32"
    check_dim: int = 256
    check_pairs: int = 1000
    level: float = 0.775
    n_boot: int = 500


@dataclass(frozen=True)
class CollapseConfig:
    n: int = 20_000
    dims: tuple[int, ...] = (256, 1024, 4096)
    n_prime: int = 1024
    t_max: float = 8.0
    t_min: float = 0.55
    n_times: int = 20
    level: float = 0.1
    # spacing of the n_times times: "geometric", or "linear" as the paper's authors (t = 8 (1 - 0.049 i),
    # i = 0..19, which is linear from 8 to 0.552)
    grid: Literal["geometric", "linear"] = "geometric"


@dataclass(frozen=True)
class LawConfig:
    ns: tuple[int, ...] = (1000, 10_000)
    dims: tuple[int, ...] = (16, 32, 64, 128)
    n_prime: int = 512
    t_max: float = 4.0
    t_min: float = 0.05
    n_times: int = 30


@dataclass(frozen=True)
class GaussianMixtureConfig:
    mu_tilde: float = 1.0
    sigma: float = 1.0
    max_chunk_bytes: int = 256 * 2**20
    speciation: SpeciationConfig = field(default_factory=SpeciationConfig)
    collapse: CollapseConfig = field(default_factory=CollapseConfig)
    law: LawConfig = field(default_factory=LawConfig)
    potential_offsets: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)


# ------------------------------------------------------------------------------------------ table schemas
# Columns of the Gaussian-mixture tables (results/tables/gm_*.csv and their per-d parts).
SPECIATION_COLUMNS = ("d", "t", "t_over_tS", "phi_sim", "stderr", "phi_theory", "engine", "pairs")
TIMES_COLUMNS = ("d", "engine", "pairs", "t_S_theory", "t_S_measured", "low", "high", "level")
COLLAPSE_COLUMNS = ("d", "n", "n_prime", "t", "f_over_alpha", "stderr", "theory", "t_C_theory", "t_C_numeric",
                    "t_C_low", "t_C_high")
LAW_COLUMNS = ("n", "d", "alpha", "n_prime", "t_C_theory", "t_C_numeric", "t_C_low", "t_C_high")


# ------------------------------------------------------------------------------------------ the mixture
@dataclass(frozen=True)
class GaussianMixture:
    """Two equal-weight clusters ``N(+-m, sigma^2 I)``; ``m`` of shape ``(d,)``, float64."""

    m: torch.Tensor
    sigma: float = 1.0

    @classmethod
    def uniform(cls, d: int, *, mu_tilde: float = 1.0, sigma: float = 1.0) -> GaussianMixture:
        """``m = mu~ (1, ..., 1)``, ``|m|^2 = d mu~^2`` (the paper's speciation setting)."""
        return cls(torch.full((d,), float(mu_tilde), dtype=torch.float64), sigma)

    @classmethod
    def random(cls, d: int, *, mu_tilde: float = 1.0, sigma: float = 1.0,
               generator: torch.Generator) -> GaussianMixture:
        """``m`` uniform on the sphere of radius ``mu~ sqrt(d)`` (the paper's collapse setting)."""
        g = torch.randn(d, dtype=torch.float64, generator=generator)
        return cls(g * (mu_tilde * math.sqrt(d) / g.norm()), sigma)

    @property
    def d(self) -> int:
        return int(self.m.numel())

    def reduced(self) -> GaussianMixture:
        """The exact 1-D mixture of ``q = m.x/|m|``: means ``+-|m|``, same sigma.

        The dynamics of q is closed: projecting the score onto ``m/|m|`` gives the 1-D mixture score at
        ``q``, the projected Brownian increment is a standard 1-D one, and the class ``sign(m.x(0))`` is
        ``sign(q(0))``; the orthogonal components are independent OU processes that never enter.
        """
        return GaussianMixture(self.m.norm().reshape(1), self.sigma)

    def score(self) -> GaussianMixtureScore:
        return GaussianMixtureScore(self.m, sigma=self.sigma)

    def sample(self, n: int, *, generator: torch.Generator,
               dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``n`` data points ``a = s m + sigma z`` with a fair sign s, shape ``(n, d)``."""
        return self.sample_pt(n, t=0.0, generator=generator, dtype=dtype)

    def sample_pt(self, n: int, *, t: float, generator: torch.Generator,
                  dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Exact samples of ``P_t``: ``s m e^{-t} + sqrt(Gamma_t) z``, shape ``(n, d)``."""
        sign = torch.randint(0, 2, (n, 1), generator=generator).to(dtype) * 2 - 1
        z = torch.randn(n, self.d, dtype=dtype, generator=generator)
        return sign * (self.m.to(dtype) * math.exp(-t)) + math.sqrt(gamma_t(t, self.sigma)) * z

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class ``sign(m.x) > 0`` of states ``(..., d)`` -> bool ``(...)``."""
        return (x @ self.m.to(x.dtype)) > 0


# ----------------------------------------------------------------------------------------- speciation
@dataclass(frozen=True)
class SpeciationResult:
    """phi(t) at the branch times; ``agree`` is the bool ``(B, N)`` same-class matrix of the N pairs."""

    d: int
    engine: Engine
    branch_times: np.ndarray  # (B,)
    agree: torch.Tensor  # (B, N) bool
    phi: np.ndarray  # (B,)
    stderr: np.ndarray  # (B,)
    crossing: Crossing


def branch_indices(times: torch.Tensor, branch_times: tuple[float, ...]) -> list[int]:
    """Grid index of each branch time on the descending grid ``times`` (nearest; must be on the grid)."""
    idx = [int(torch.argmin(torch.abs(times - b))) for b in branch_times]
    for i, b in zip(idx, branch_times, strict=True):
        if abs(float(times[i]) - b) > 1e-9 * max(1.0, b):
            raise ValueError(f"branch time {b} is not on the Euler grid (step {float(times[0] - times[1])})")
    return idx


def speciation(
    mixture: GaussianMixture,
    *,
    engine: Engine,
    pairs: int,
    branch_times: tuple[float, ...],
    t_max: float,
    n_steps: int,
    level: float,
    n_boot: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
) -> SpeciationResult:
    """phi(t) by cloning (docs/science.md sections 3 and 5) with the ``full`` or the ``reduced`` engine.

    ``pairs`` trunks start from exact samples of ``P_T`` and run to t = 0 with Euler-Maruyama; at every
    branch time a clone is copied and continues with independent noise (:func:`sampler.clone_sweep`).
    phi(t_b) is the fraction of (trunk, clone_b) pairs in the same class; its standard error and the
    crossing of ``level`` (with a 95 % interval) come from the pair bootstrap of :mod:`measures`.

    ``dtype`` is the dtype of the simulated states (float32 by default: CPU Gaussian draws are ~10x faster
    than in float64, and the rounding it adds, ~1e-7 relative per step or ~1e-4 over 1000 steps, is far
    below the O(eta) = 1e-2 Euler error and the ~5e-3 statistical error of phi; the class sign(m.x) is
    decided at |q| ~ |m| = sqrt(d) mu~, far from rounding).  Schedule and bootstrap stay float64.
    """
    model = mixture if engine == "full" else mixture.reduced()
    integrator = EulerMaruyama.uniform(t_max=t_max, n_steps=n_steps)
    idx = branch_indices(integrator.times, branch_times)
    x_start = model.sample_pt(pairs, t=t_max, generator=generator, dtype=dtype)
    sweep = clone_sweep(x_start, integrator=integrator, score=model.score(), branch_indices=idx,
                        generator=generator, progress=progress)
    trunk_class = model.classify(sweep.trunk)  # (N,)
    agree = model.classify(sweep.clones) == trunk_class[None, :]  # (B, N), branch times sorted by index
    times = np.asarray(sweep.branch_times)
    values = agree.to(torch.float64)
    stderr = bootstrap_standard_error(values, n_boot=n_boot, generator=generator).numpy()
    crossing = crossing_with_interval(times, agree, level=level, n_boot=n_boot, generator=generator)
    return SpeciationResult(mixture.d, engine, times, agree, values.mean(dim=1).numpy(), stderr, crossing)


# ------------------------------------------------------------------------------------------- collapse
def collapse_times_grid(*, t_max: float, t_min: float, n_times: int, kind: str = "geometric") -> np.ndarray:
    """``n_times`` times ``(T,)`` float64 from ``t_max`` down to ``t_min``, geometric or linear.

    The paper's Fig. 3 uses 20 times from 8 to ~0.55; the authors' code spaces them linearly,
    ``t_i = 8 (1 - 0.049 i)`` for i = 0..19, which is ``kind = "linear"`` with ``t_min = 0.552``.
    """
    if kind == "geometric":
        return np.geomspace(t_max, t_min, n_times)
    if kind == "linear":
        return np.linspace(t_max, t_min, n_times)
    raise ValueError(f"gaussian_mixture.collapse.grid: {kind!r} is not valid; choose geometric or linear")


@dataclass(frozen=True)
class CollapseResult:
    entropy: ExcessEntropy
    numeric: CollapseTime
    t_c_theory: float
    theory: np.ndarray  # f(t)/alpha at entropy.times


def collapse(
    *,
    n: int,
    d: int,
    times: np.ndarray,
    n_prime: int,
    mu_tilde: float,
    sigma: float,
    level: float,
    max_chunk_bytes: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> CollapseResult:
    """f^e(t)/alpha on ``n`` points of a mixture with a random direction m (docs/science.md section 3).

    The training set is stored in float32 (like image data) and handed unchanged to the estimator.
    """
    mixture = GaussianMixture.random(d, mu_tilde=mu_tilde, sigma=sigma, generator=generator)
    data = mixture.sample(n, generator=generator, dtype=torch.float32).to(device)
    ent = excess_entropy(data, times=times, n_prime=n_prime, generator=generator,
                         max_chunk_bytes=max_chunk_bytes, progress=progress)
    alpha = ent.alpha
    return CollapseResult(
        entropy=ent,
        numeric=collapse_time(ent, level=level),
        t_c_theory=float(theory.t_collapse(n, d, sigma=sigma)),
        theory=theory.excess_entropy_theory(ent.times, n=n, d=d, sigma=sigma) / alpha,
    )
