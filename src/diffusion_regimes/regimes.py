"""Speciation and collapse measured on a model: the cloning experiment of docs/science.md section 5.

One function, :func:`cloning_experiment`, serves every model: it receives a score (the exact empirical
score -> model ``exact``, the ideal model; or a trained UNet through :class:`score.NoisePredictorScore` ->
model ``unet``), the training set (for nearest training points) and a labeller (the classifier's class
probabilities).  It runs shared-trunk cloning sweeps from pure noise on a (possibly respaced) DDPM grid,
classifies both members of every pair, tracks the nearest training point along the trunk, and summarises:

* phi(t) and phi_C(t) per branch time with bootstrap standard errors;
* t_S from a maximum-likelihood fit of the whole phi(t) curve in the Gaussian-mixture family
  (``estimators.fit_speciation_theory``), a logistic shape check, and the phi = 0.775 crossing;
* t_C from a monotone fit of phi_C(t) (crossing 1/2), the crossing itself, and mean / median t̂_C;
* the memorisation ratio and the classifier's confidence on the generated samples (the quality gate).

Pairs run in chunks of ``spec.chunk_pairs``; chunk ``c`` draws its noise from a generator seeded by
``seeds.derived_seed(seed, "clone-chunk", c)``, so the result does not depend on how many chunks a run
needed, and a chunk directory lets an interrupted sweep resume from its last completed chunk with a result
identical to an uninterrupted run.

Sweeps run on image-shaped tensors ``(N, C, H, W)`` in float64 (the adapter casts to the network's dtype).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from diffusion_regimes.errors import ConfigError
from diffusion_regimes.estimators import (
    CurveFit,
    fit_collapse_logistic,
    fit_speciation_logistic,
    fit_speciation_theory,
    logistic_curve,
    phi_theory_curve,
)
from diffusion_regimes.measures import (
    MEMORISED_RATIO,
    PHI_COLLAPSE_LEVEL,
    PHI_SPECIATION_LEVEL,
    Crossing,
    agreement,
    bootstrap_standard_error,
    collapse_times,
    crossing_with_interval,
    memorisation,
    nearest_index,
)
from diffusion_regimes.sampler import (
    VARIANCES,
    DDPMAncestral,
    EulerMaruyama,
    HeunODE,
    Integrator,
    Score,
    StepRecorder,
    clone_sweep,
    restart_evaluations,
    snap_to_grid,
)
from diffusion_regimes.schedule import DDPMSchedule
from diffusion_regimes.seeds import derived_seed

N_ALL = "all"
"""``regimes.n_values`` entry standing for the whole prepared subset (its n differs between datasets)."""

MODELS = ("exact", "unet")
"""Models a sweep can measure: the exact empirical score (ideal model) and the trained UNet."""

SAMPLERS = ("ddpm", "euler_maruyama", "heun")
"""Backward dynamics a sweep can run, all on the times of the (respaced) DDPM grid and behind the one
reverse-step interface of :mod:`diffusion_regimes.sampler`: the DDPM ancestral sampler (the paper's), an
Euler-Maruyama discretisation of the reverse SDE, and the probability-flow ODE with Heun steps."""

DETERMINISTIC_SAMPLERS = ("heun",)
"""Samplers without noise: clones of a shared trunk never separate, so their sweeps have no branch times
(phi and phi_C are not defined); t̂_C, the memorised fraction and the U-turns are."""

CONFIDENT = 0.9
"""A sample is labelled confidently when the classifier's largest class probability reaches this."""

LAW_RESOLUTIONS = (8, 16, 32)
"""Default pooled sides of the collapse-law grid."""

LAW_N_VALUES: tuple[int | str, ...] = (25, 50, 100, 300, N_ALL)
"""Default training-set sizes of the collapse-law grid."""


def _per_dataset(value, dataset: str | None, default):
    """A ``regimes`` value given once for every dataset, or as a mapping dataset -> value (datasets left
    out, or no dataset named: ``default``)."""
    if isinstance(value, dict):
        return value.get(dataset, default) if dataset is not None else default
    return value


def _per_model(count: int | dict[str, int], model: str) -> int:
    """A count given once, or as a mapping model -> count (models left out: the largest count given)."""
    return int(count.get(model, max(count.values())) if isinstance(count, dict) else count)


NValues = tuple[int | str, ...]
Labeller = Callable[[torch.Tensor], torch.Tensor]
"""``labeller(images (M, C, H, W)) -> class probabilities (M, K)``."""


@dataclass(frozen=True)
class RegimesSpec:
    """The ``regimes:`` config section (cloning sweeps and collapse measurements on real data)."""

    datasets: tuple[str, ...] = ("mnist",)  # prepared subsets (keys of the top-level datasets: mapping)
    # training-set sizes: even prefixes of the prepared subset, or "all"; one list for every dataset, or a
    # mapping dataset -> list (datasets left out use ["all"]).  Resolved by :meth:`n_values_for`.
    n_values: NValues | dict[str, NValues] = (100, N_ALL)
    # models measured: one list for every dataset or a mapping dataset -> list (left out: every model)
    models: tuple[str, ...] | dict[str, tuple[str, ...]] = MODELS
    # clone pairs per branch time at the whole subset: one count, or a mapping model -> count
    n_pairs: int | dict[str, int] = 1000
    n_pairs_prefix: int = 500  # the exact score at a smaller training prefix than the whole subset
    chunk_pairs: int = 128  # pairs per resumable chunk of a sweep
    # DDPM steps of the sampler per model: K of the 1000 steps, respaced (missing models: 1000)
    sampler_steps: dict[str, int] = field(default_factory=dict)
    # noise variance of the sampler's steps per model: "large" (sigma^2 = beta') or "posterior" (beta~');
    # missing models: "large"
    sampler_variance: dict[str, str] = field(default_factory=dict)
    # branch times: "time" = a grid in t around the theory t_S and the f^e t_C of each subset;
    # "steps" = every branch_every DDPM steps up to branch_max_step (the paper's protocol)
    branch_grid: str = "time"
    branch_uniform: int = 10  # evenly spaced branch times from branch_t_min to branch_t_max_factor * t_S
    branch_dense: int = 4  # extra times around t_S and around t_C each
    branch_dense_width: float = 0.3  # relative half-width of the dense bands (t_S (1 +- width))
    branch_t_min: float = 0.05
    branch_t_max_factor: float = 2.5
    branch_every: int = 50  # DDPM steps between branch times (paper: 50), branch_grid = steps
    branch_max_step: int = 1000  # largest DDPM branch step k (paper: 1000), branch_grid = steps
    n_boot: int = 400  # bootstrap resamples for standard errors and intervals
    max_chunk_bytes: int = 64 * 2**20  # bound on the (batch, training chunk) distance block
    entropy_times: int = 20  # times of the f^e(t) curve, log-spaced between entropy_t_min and entropy_t_max
    entropy_t_min: float = 0.02
    entropy_t_max: float = 3.0
    # "geometric": the log-spaced grid above; "ddpm_steps": the times of DDPM steps L - s, L - 2s, ..., s
    # with s = entropy_step_every (the paper's authors: s = 50, steps 950 ... 50)
    entropy_grid: Literal["geometric", "ddpm_steps"] = "geometric"
    entropy_step_every: int = 50
    # t̂_C: nearest index tested at DDPM steps 0, c, 2c, ... (c = this; authors: 50), converted to grid
    # points by :func:`nearest_check_points`; 1 = at every point of the sampler's grid
    nearest_check_every: int = 1
    n_prime: int = 2000  # noisy samples of the excess-entropy estimate (paper: 250 000 - 400 000)
    strip_times: int = 6  # images per row of the strip figure
    quality_phi_min: float = 0.97  # a row whose phi at the smallest branch time is lower is flagged
    quality_confidence_gap: float = 0.10  # flagged when the confident fraction trails the real one by more
    # --- the sampler question: every model is also swept with these samplers at n = all ("ddpm" first);
    # one list for every dataset, or a mapping dataset -> list (datasets left out: ["ddpm"])
    samplers: tuple[str, ...] | dict[str, tuple[str, ...]] = ("ddpm",)
    # clone pairs at the whole subset per dataset (a count, or a mapping model -> count), overriding n_pairs
    n_pairs_by_dataset: dict[str, int | dict[str, int]] = field(default_factory=dict)
    n_pairs_sampler: int | dict[str, int] = 128  # pairs per branch time of the samplers other than ddpm
    # --- U-turns (forward-backward) from real images, per (model, n) of the ddpm sweeps
    uturn: bool = False
    uturn_starts: int | dict[str, int] = 64  # start images of each kind (training, held-out); or per model
    uturn_times: int = 10  # U-turn times, log-spaced on [branch_t_min, branch_t_max_factor x t_S]
    # --- the collapse law on real data: t_C over (resolution, n) of the exact score
    law_datasets: tuple[str, ...] = ()
    # one list for every law dataset, or a mapping dataset -> list (datasets left out: the defaults)
    law_resolutions: tuple[int, ...] | dict[str, tuple[int, ...]] = LAW_RESOLUTIONS
    law_n_values: tuple[int | str, ...] | dict[str, tuple[int | str, ...]] = LAW_N_VALUES
    law_pairs: int = 256
    law_steps: int = 250  # DDPM steps K of the cells' sampler (pooled cells collapse at t ~ 0.005)
    law_entropy_t_min: float = 0.001  # smallest f^e time of a cell (entropy_t_max and _times shared)
    law_branches: int = 16  # branch times of a cell, log-spaced from law_t_min_factor x its f^e t_C ...
    law_t_min_factor: float = 0.25
    law_t_max_factor: float = 8.0  # ... to this multiple (sampled t_C lies at 1.5-6 x the f^e t_C on MNIST)

    def __post_init__(self) -> None:
        if self.branch_grid not in ("time", "steps"):
            raise ConfigError(f"regimes.branch_grid: {self.branch_grid!r} is not valid; "
                              "choose 'time' or 'steps'")
        unknown = {m for m in self.sampler_steps if m not in MODELS}
        unknown |= {m for m in self.sampler_variance if m not in MODELS}
        unknown |= {m for m in (self.n_pairs if isinstance(self.n_pairs, dict) else {}) if m not in MODELS}
        if unknown:
            raise ConfigError(f"regimes: unknown model(s) {sorted(unknown)} in n_pairs / sampler_steps / "
                              "sampler_variance; "
                              f"models are {list(MODELS)}")
        bad = {m: v for m, v in self.sampler_variance.items() if v not in VARIANCES}
        if bad:
            raise ConfigError(f"regimes.sampler_variance: {bad} is not valid; choose from {list(VARIANCES)}")
        if not 0 < self.branch_t_min < self.branch_t_max_factor:
            raise ConfigError("regimes: need 0 < branch_t_min and a positive branch_t_max_factor")
        lists = self.samplers.values() if isinstance(self.samplers, dict) else [self.samplers]
        for chosen in lists:
            if any(s not in SAMPLERS for s in chosen) or not chosen or chosen[0] != "ddpm":
                raise ConfigError(f"regimes.samplers: {list(chosen)} is not valid; list 'ddpm' first (the "
                                  f"sampler of every sweep and figure), then any of {list(SAMPLERS[1:])}")
        for name, counts in (("n_pairs_sampler", self.n_pairs_sampler), ("uturn_starts", self.uturn_starts)):
            if isinstance(counts, dict) and set(counts) - set(MODELS):
                raise ConfigError(f"regimes.{name}: unknown model(s) {sorted(set(counts) - set(MODELS))}; "
                                  f"models are {list(MODELS)}")

    def samplers_for(self, dataset: str) -> tuple[str, ...]:
        """Samplers run on ``dataset`` (``ddpm`` first; config ``regimes.samplers``, a list or a mapping)."""
        return tuple(_per_dataset(self.samplers, dataset, ("ddpm",)))

    def sampler_pairs(self, model: str) -> int:
        """Clone pairs per branch time of a sweep with a sampler other than ddpm."""
        return _per_model(self.n_pairs_sampler, model)

    def sweep_pairs(self, model: str, *, sampler: str, n: int, subset_n: int,
                    dataset: str | None = None) -> int:
        """Clone pairs per branch time of one sweep: :meth:`pairs_for` with the DDPM sampler,
        :meth:`sampler_pairs` with the others."""
        if sampler != "ddpm":
            return self.sampler_pairs(model)
        return self.pairs_for(model, n=n, subset_n=subset_n, dataset=dataset)

    def uturn_starts_for(self, model: str) -> int:
        """Start images of each kind (training, held-out) of the U-turns of ``model``."""
        return _per_model(self.uturn_starts, model)

    def law_resolutions_for(self, dataset: str) -> tuple[int, ...]:
        """Pooled sides of the collapse-law grid of ``dataset``."""
        return tuple(_per_dataset(self.law_resolutions, dataset, LAW_RESOLUTIONS))

    def law_n_for(self, *, subset_n: int, dataset: str | None = None) -> tuple[int, ...]:
        """Training-set sizes of the collapse-law grid (``"all"`` = ``subset_n``), ascending.

        Unlike the sweeps' n these may be odd (a prefix alternates classes, so an odd n has one class one
        image larger): the law is about n, not about balance.
        """
        sizes = set()
        for value in _per_dataset(self.law_n_values, dataset, LAW_N_VALUES):
            size = int(subset_n) if value == N_ALL else int(value)
            if not 2 <= size <= subset_n:
                raise ConfigError(f"regimes.law_n_values: n = {value!r} is outside [2, {subset_n}] (the "
                                  f"prepared subset's size); use {N_ALL!r} for the whole subset")
            sizes.add(size)
        return tuple(sorted(sizes))

    def law_branch_times(self, *, t_collapse: float, schedule: DDPMSchedule) -> np.ndarray:
        """Branch times of a collapse-law cell: ``law_branches`` times log-spaced on
        ``[law_t_min_factor t_C, law_t_max_factor t_C]`` around the cell's f^e ``t_C``.

        The grid follows t_C alone (a pooled resolution can have Λ < 1 and no speciation time) and is
        geometric because t_C spans two decades over the grid (≈ 0.005 at 8 x 8, ≈ 0.3 at 32 x 32 for
        MNIST).  Without a finite t_C: log-spaced on ``[law_entropy_t_min, branch_t_max_factor]``.
        """
        t_end = schedule.time_of_step(schedule.n_steps)
        if np.isfinite(t_collapse) and t_collapse > 0:
            low, high = self.law_t_min_factor * t_collapse, min(self.law_t_max_factor * t_collapse, t_end)
        else:
            low, high = self.law_entropy_t_min, min(self.branch_t_max_factor, t_end)
        return np.geomspace(low, high, self.law_branches)

    def n_values_for(self, dataset: str, *, subset_n: int) -> tuple[int, ...]:
        """The training-set sizes measured on ``dataset`` whose prepared subset holds ``subset_n`` images.

        ``"all"`` becomes ``subset_n``; the result is ascending without repeats.  A size above ``subset_n``
        or an odd one (unbalanced classes) is a :class:`ConfigError`.
        """
        sizes = set()
        for value in _per_dataset(self.n_values, dataset, (N_ALL,)):
            if value == N_ALL:
                sizes.add(int(subset_n))
            elif isinstance(value, int) and not isinstance(value, bool) and value >= 2 and value % 2 == 0:
                if value > subset_n:
                    raise ConfigError(f"regimes.n_values: n = {value} exceeds the {subset_n} images of the "
                                      f"prepared subset {dataset!r}; use {N_ALL!r} for the whole subset")
                sizes.add(value)
            else:
                raise ConfigError(f"regimes.n_values ({dataset}): {value!r} is not valid; give even "
                                  f"integers >= 2 or {N_ALL!r}")
        return tuple(sorted(sizes))

    def models_for(self, dataset: str) -> tuple[str, ...]:
        """Models measured on ``dataset`` (config ``regimes.models``, a list or a per-dataset mapping)."""
        chosen = _per_dataset(self.models, dataset, MODELS)
        unknown = [m for m in chosen if m not in MODELS]
        if unknown:
            raise ConfigError(f"regimes.models ({dataset}): unknown model(s) {unknown}; "
                              f"choose from {list(MODELS)}")
        return tuple(chosen)

    def pairs_for(self, model: str, *, n: int, subset_n: int, dataset: str | None = None) -> int:
        """Clone pairs per branch time for ``model`` trained on ``n`` of the ``subset_n`` images (of
        ``dataset``, whose ``n_pairs_by_dataset`` entry wins at the whole subset)."""
        if model == "exact" and n < subset_n:
            return self.n_pairs_prefix
        return _per_model(_per_dataset(self.n_pairs_by_dataset, dataset, self.n_pairs), model)

    def steps_for(self, model: str) -> int:
        """DDPM sampler steps ``K`` of ``model`` (1000 = the full ancestral sampler)."""
        return int(self.sampler_steps.get(model, 1000))

    def variance_for(self, model: str) -> str:
        """Noise variance rule of ``model``'s sampler steps (``large`` unless configured)."""
        return self.sampler_variance.get(model, "large")

    def branch_times(self, *, t_speciation: float, t_collapse: float, schedule: DDPMSchedule) -> np.ndarray:
        """Requested branch times (ascending, float64), before snapping to the sampler's grid.

        ``time`` grid: ``branch_uniform`` evenly spaced times on ``[branch_t_min, branch_t_max_factor t_S]``
        plus ``branch_dense`` times on ``t (1 +- branch_dense_width)`` around the theory t_S and the f^e
        t_C (skipped when not finite), so that both crossings are resolved.  ``steps`` grid: the
        continuous times of DDPM steps ``branch_every, 2 branch_every, ..., branch_max_step``.
        """
        if self.branch_grid == "steps":
            top = min(self.branch_max_step, schedule.n_steps)
            return np.array([schedule.time_of_step(k) for k in range(self.branch_every, top + 1,
                                                                       self.branch_every)])
        if not (np.isfinite(t_speciation) and t_speciation > 0):
            raise ConfigError(f"regimes.branch_grid 'time' needs a positive theory t_S, got {t_speciation}")
        t_max = self.branch_t_max_factor * t_speciation
        times = [np.linspace(self.branch_t_min, max(t_max, 2 * self.branch_t_min), self.branch_uniform)]
        for centre in (t_speciation, t_collapse):
            if np.isfinite(centre) and centre > 0 and self.branch_dense > 0:
                times.append(centre * (1.0 + np.linspace(-self.branch_dense_width, self.branch_dense_width,
                                                         self.branch_dense)))
        grid = np.concatenate(times)
        return np.unique(grid[(grid > 0) & (grid <= schedule.time_of_step(schedule.n_steps))])


def nearest_check_points(ddpm_steps: Sequence[int], every: int, *, where: str = "regimes") -> np.ndarray:
    """Grid indices at which t̂_C compares the nearest training index, in ascending index (descending t).

    ``every`` counts DDPM steps, whatever the sampler's grid: the checks sit at DDPM steps
    ``k = 0, every, 2 every, ...`` up to the grid's first step (the authors: every 50 steps, k = 1000, 950,
    ..., 50, 0).  ``every = 1`` checks at every grid point (on the full 1000-step sampler: every DDPM step).
    ``ddpm_steps``: the DDPM step of each grid point, descending to 0 (``DDPMAncestral.ddpm_steps``).
    A grid that lacks one of these steps (a respaced sampler) cannot honour ``every``: :class:`ConfigError`.
    """
    steps = [int(k) for k in ddpm_steps]
    if every < 1:
        raise ConfigError(f"{where}.nearest_check_every = {every}: give a positive number of DDPM steps")
    if every == 1:
        return np.arange(len(steps), dtype=np.int64)
    position = {k: i for i, k in enumerate(steps)}
    wanted = range(0, max(steps) + 1, every)
    missing = [k for k in wanted if k not in position]
    if missing:
        shown = ", ".join(str(k) for k in missing[:6]) + (", ..." if len(missing) > 6 else "")
        raise ConfigError(
            f"{where}.nearest_check_every = {every} counts DDPM steps, but the {len(steps) - 1}-step "
            f"sampler's grid has no point at k = {shown} ({len(missing)} of the {len(wanted)} checks); run "
            f"the full 1000-step sampler there (regimes.sampler_steps / law_steps: 1000), or check at every "
            f"grid point "
            f"(nearest_check_every: 1)")
    return np.array(sorted(position[k] for k in wanted), dtype=np.int64)


def sweep_integrator(*, steps: int, schedule: DDPMSchedule, variance: str = "large") -> DDPMAncestral:
    """The ancestral DDPM sampler on ``steps`` of the schedule's steps (respaced when fewer)."""
    return DDPMAncestral.respaced(steps, schedule=schedule, variance=variance)


def sampler_integrator(sampler: str, *, steps: int, schedule: DDPMSchedule,
                       variance: str = "large") -> Integrator:
    """The integrator of ``sampler`` (:data:`SAMPLERS`) on the times of the ``steps``-step DDPM grid.

    All three share the grid, so branch times snap to the same indices and the samplers are compared step
    for step; ``variance`` only concerns ``ddpm``.
    """
    ancestral = sweep_integrator(steps=steps, schedule=schedule, variance=variance)
    if sampler == "ddpm":
        return ancestral
    if sampler == "euler_maruyama":
        return EulerMaruyama(ancestral.times)
    if sampler == "heun":
        return HeunODE(ancestral.times)
    raise ConfigError(f"sampler {sampler!r} is not valid; choose one of {list(SAMPLERS)}")


def branch_indices(times: np.ndarray, integrator: Integrator) -> np.ndarray:
    """Grid indices of the sampler nearest to ``times`` (unique, ordered by ascending branch time).

    Index ``i`` of the integrator is the state at ``integrator.times[i]`` (descending), so a clone
    branched at index ``i`` runs ``n_steps - i`` independent steps.  Times that snap to t = 0 (no
    independent step left) are dropped.
    """
    idx = np.unique(np.asarray(snap_to_grid(times, integrator), dtype=np.int64))
    idx = idx[idx < integrator.n_steps]
    return idx[np.argsort(integrator.times.numpy()[idx])]


@dataclass(frozen=True)
class CloningResult:
    """Outcome of :func:`cloning_experiment` (times are continuous OU times, docs/science.md section 1).

    Per branch b (ascending t): ``phi``, ``phi_se`` (same class), ``phi_c``, ``phi_c_se`` (same nearest
    training point at t = 0) and the fitted curves.  Per trunk trajectory: ``t_collapse`` (t̂_C),
    ``memorisation`` (nearest / second-nearest distance at t = 0), ``confidence`` (classifier's largest
    class probability), the generated ``samples`` and their two nearest training points ``neighbours``.
    """

    branch_steps: np.ndarray  # (B,) DDPM k of each branch point
    branch_times: np.ndarray  # (B,) t(k)
    phi: np.ndarray
    phi_se: np.ndarray
    phi_c: np.ndarray
    phi_c_se: np.ndarray
    t_speciation: Crossing  # phi crosses 0.775
    t_collapse_clones: Crossing  # phi_C crosses 0.5
    speciation_fit: CurveFit  # Gaussian-mixture family, t_S = 1/2 log Lambda_eff
    speciation_logistic: CurveFit  # shape check
    collapse_fit: CurveFit  # logistic phi_C, crossing 1/2
    t_collapse: np.ndarray  # (N,) t̂_C per trunk trajectory
    t_collapse_median_se: float
    memorisation: np.ndarray  # (N,) distance ratio of the trunk end states
    confidence: np.ndarray  # (N,) classifier max probability of the trunk end states
    labels: np.ndarray  # (N,) classifier label of the trunk end states
    n_pairs: int
    n_steps: int  # sampler steps K
    score_evaluations: int  # per pair, shared trunk
    restart_score_evaluations: int  # per pair, had every branch restarted from noise
    seconds: float
    chunks: int
    strip: list[tuple[int, float, torch.Tensor]] = field(default_factory=list)  # (k, t, rows of pair 0)
    samples: torch.Tensor | None = None  # (N, C, H, W) trunk end states at t = 0
    neighbours: torch.Tensor | None = None  # (N, 2) long: nearest and second-nearest training index
    sampler: str = "ddpm"

    def branch_table(self) -> pd.DataFrame:
        fit, col = self.speciation_fit, self.collapse_fit
        return pd.DataFrame(
            {
                "k": self.branch_steps,
                "t": self.branch_times,
                "phi": self.phi,
                "phi_se": self.phi_se,
                "phi_fit": phi_theory_curve(self.branch_times, fit.params["lambda_eff"])
                if fit.params.get("lambda_eff", math.nan) > 1.0 else math.nan,
                "phi_c": self.phi_c,
                "phi_c_se": self.phi_c_se,
                "phi_c_fit": logistic_curve(self.branch_times, centre=col.params.get("t_c", math.nan),
                                            width=col.params.get("width", math.nan)),
                "pairs": self.n_pairs,
            }
        )

    def summary(self) -> dict[str, float | str]:
        tc = self.t_collapse
        fit, logi, col = self.speciation_fit, self.speciation_logistic, self.collapse_fit
        return {
            "t_s_fit": fit.time, "t_s_fit_low": fit.low, "t_s_fit_high": fit.high,
            "lambda_eff": fit.params.get("lambda_eff", math.nan),
            "lambda_eff_low": fit.params.get("lambda_eff_low", math.nan),
            "lambda_eff_high": fit.params.get("lambda_eff_high", math.nan),
            "t_s_logistic": logi.time, "t_s_logistic_low": logi.low, "t_s_logistic_high": logi.high,
            "t_s_crossing": self.t_speciation.time,
            "t_s_crossing_low": self.t_speciation.low,
            "t_s_crossing_high": self.t_speciation.high,
            "t_c_phi_c_fit": col.time, "t_c_phi_c_fit_low": col.low, "t_c_phi_c_fit_high": col.high,
            "t_c_phi_c": self.t_collapse_clones.time,
            "t_c_phi_c_low": self.t_collapse_clones.low,
            "t_c_phi_c_high": self.t_collapse_clones.high,
            "t_c_hat_mean": float(tc.mean()),
            "t_c_hat_se": float(tc.std(ddof=1) / math.sqrt(tc.size)) if tc.size > 1 else math.nan,
            "t_c_hat_std": float(tc.std(ddof=1)) if tc.size > 1 else math.nan,
            "t_c_hat_median": float(np.median(tc)),
            "t_c_hat_median_se": self.t_collapse_median_se,
            "memorisation_ratio_median": float(np.median(self.memorisation)),
            "memorised_fraction": float((self.memorisation < MEMORISED_RATIO).mean()),
            "confident_fraction": float((self.confidence >= CONFIDENT).mean()),
            "class_one_fraction": float(self.labels.mean()),
            "t_min": float(self.branch_times[0]) if self.branch_times.size else math.nan,
            "phi_t_min": float(self.phi[0]) if self.phi.size else math.nan,
            "phi_t_min_se": float(self.phi_se[0]) if self.phi_se.size else math.nan,
            "sampler": self.sampler,
            "pairs": self.n_pairs,
            "branch_times": int(self.branch_steps.size),
            "steps": self.n_steps,
            "chunks": self.chunks,
            "score_evaluations_per_pair": self.score_evaluations,
            "restart_score_evaluations_per_pair": self.restart_score_evaluations,
            "seconds": self.seconds,
        }


def _clone_chunk(
    *,
    score: Score,
    data: torch.Tensor,
    shape: tuple[int, ...],
    labeller: Labeller,
    integrator: Integrator,
    grid_steps: Sequence[int],
    indices: np.ndarray,
    n_pairs: int,
    generator: torch.Generator,
    max_chunk_bytes: int,
    strip_times: int,
    check_points: np.ndarray,
    progress: bool,
) -> dict:
    """One chunk of ``n_pairs`` shared-trunk sweeps: the raw per-pair measurements, branch order =
    ``indices``.

    ``grid_steps``: the DDPM step of each grid index (the strip's labels); ``check_points``: the grid
    indices where the nearest training index is compared (:func:`nearest_check_points`).  Returns tensors
    ``same_class``, ``same_point`` ``(B, P)`` uint8 (``B = 0`` without branch times); ``t_collapse``,
    ``memorisation``,
    ``confidence`` ``(P,)`` float64; ``labels`` ``(P,)``; ``neighbours`` ``(P, 2)``; ``samples``
    ``(P, *shape)`` float32; ``score_evaluations``; and ``strip`` (pair 0 at ``strip_times`` grid points).
    """
    n = n_pairs
    big_l = integrator.n_steps
    x = torch.randn((n, *shape), dtype=torch.float64, generator=generator)
    # nearest training index of each trunk trajectory at the check points (training set scaled by e^{-t})
    nearest = StepRecorder(lambda s, t: nearest_index(s, data, t=t, max_chunk_bytes=max_chunk_bytes),
                           n_trunk=n, steps=check_points.tolist())
    nearest(0, float(integrator.times[0]), x)
    strip_i = np.unique(np.linspace(0, big_l, strip_times).round().astype(int))
    strip_rec = StepRecorder(lambda s, t: s[0::n].clone().float(), n_trunk=n, part="all",
                             steps=strip_i.tolist())
    strip_rec(0, float(integrator.times[0]), x)
    sweep = clone_sweep(x, integrator=integrator, score=score, branch_indices=indices.tolist(),
                        generator=generator, hooks=[nearest, strip_rec], progress=progress)
    # clone_sweep orders clones by ascending grid index (descending t); reorder to ``indices``
    position = {int(i): j for j, i in enumerate(sweep.branch_indices)}
    clones = sweep.clones[[position[int(i)] for i in indices]]
    b = len(indices)
    probs_trunk = labeller(sweep.trunk)
    labels_trunk = probs_trunk.argmax(dim=1)
    if b:
        probs_clones = labeller(clones.reshape(b * n, *shape))
        same_class = agreement(labels_trunk.unsqueeze(0).expand(b, n),
                               probs_clones.argmax(dim=1).reshape(b, n))
    else:  # a deterministic sampler: no clones
        same_class = torch.zeros((0, n), dtype=torch.bool)
    grid_times, history = nearest.stacked()
    if data.shape[0] > 1:
        memo, neighbours = memorisation(sweep.trunk, data, max_chunk_bytes=max_chunk_bytes)
    else:
        memo, neighbours = torch.zeros(n, dtype=torch.float64), torch.zeros((n, 2), dtype=torch.long)
    if b:
        near_clones = nearest_index(clones.reshape(b * n, *shape), data, max_chunk_bytes=max_chunk_bytes)
        same_point = agreement(neighbours[:, 0].unsqueeze(0).expand(b, n), near_clones.reshape(b, n))
    else:
        same_point = torch.zeros((0, n), dtype=torch.bool)
    step_k = grid_steps
    return {
        "same_class": same_class.to(torch.uint8),
        "same_point": same_point.to(torch.uint8),
        "t_collapse": collapse_times(history, grid_times),
        "memorisation": memo.cpu(),
        "confidence": probs_trunk.max(dim=1).values.to(torch.float64).cpu(),
        "labels": labels_trunk.cpu(),
        "neighbours": neighbours.cpu(),
        "samples": sweep.trunk.detach().float().cpu(),
        "score_evaluations": int(sweep.score_evaluations),
        "strip": [(int(step_k[i]), t, rows) for i, (t, rows) in sorted(strip_rec.records.items())],
    }


def cloning_experiment(
    *,
    score: Score,
    training: torch.Tensor,
    labeller: Labeller,
    spec: RegimesSpec,
    n_pairs: int,
    steps: int,
    times: np.ndarray,
    seed: int,
    variance: str = "large",
    sampler: str = "ddpm",
    schedule: DDPMSchedule | None = None,
    chunk_dir: str | Path | None = None,
    progress: bool = False,
) -> CloningResult:
    """Shared-trunk cloning from pure noise on a DDPM grid of ``steps`` steps, measured (docs/science.md
    section 5).

    ``training``: ``(n, C, H, W)`` (or ``(n, d)``) the model's training set, used for nearest training
    points (scaled by e^{-t} along the trunk).  ``labeller``: ``(M, C, H, W) -> (M, K)`` class
    probabilities.  ``times``: requested branch times, snapped to the sampler's grid; ``variance``: the
    noise rule of the steps (:data:`~diffusion_regimes.sampler.VARIANCES`).  ``n_pairs`` trunks
    start from N(0, I) at k = L, in chunks of ``spec.chunk_pairs`` (chunk ``c`` seeded by
    ``derived_seed(seed, "clone-chunk", c)``); with ``chunk_dir`` each finished chunk is saved there and
    a re-run loads it instead of recomputing it (the caller names the folder after everything that
    determines the result).  ``sampler`` (:data:`SAMPLERS`) picks the backward dynamics on the same grid;
    a deterministic one runs the trunks only (no branch times, phi and phi_C not defined).
    """
    from diffusion_regimes.provenance import provenance_record, save_torch

    schedule = schedule or DDPMSchedule()
    grid = sweep_integrator(steps=steps, schedule=schedule, variance=variance)
    integrator = sampler_integrator(sampler, steps=steps, schedule=schedule, variance=variance)
    deterministic = sampler in DETERMINISTIC_SAMPLERS
    indices = np.zeros(0, dtype=np.int64) if deterministic else branch_indices(times, integrator)
    if not deterministic and indices.size < 2:
        raise ConfigError(f"regimes: only {indices.size} distinct branch time(s) on a {steps}-step sampler; "
                          "raise regimes.sampler_steps or the number of branch times")
    check_points = nearest_check_points(grid.ddpm_steps, spec.nearest_check_every)
    shape = tuple(training.shape[1:])
    data = training.reshape(training.shape[0], -1).to(torch.float64)
    start = time.perf_counter()
    sizes = [min(spec.chunk_pairs, n_pairs - s) for s in range(0, n_pairs, spec.chunk_pairs)]
    chunks = []
    folder = Path(chunk_dir) if chunk_dir is not None else None
    for c, size in enumerate(sizes):
        path = folder / f"chunk-{c:05d}-p{size}.pt" if folder is not None else None
        if path is not None and path.is_file():
            chunks.append(torch.load(path, weights_only=True))
            continue
        gen = torch.Generator().manual_seed(derived_seed(seed, "clone-chunk", c))
        chunk = _clone_chunk(score=score, data=data, shape=shape, labeller=labeller, integrator=integrator,
                             grid_steps=grid.ddpm_steps, indices=indices, n_pairs=size, generator=gen,
                             max_chunk_bytes=spec.max_chunk_bytes, strip_times=spec.strip_times,
                             check_points=check_points, progress=progress)
        if path is not None:
            # embedded provenance: what produced this resumable piece of the sweep
            chunk["provenance"] = provenance_record(
                config={"chunk_pairs": spec.chunk_pairs, "max_chunk_bytes": spec.max_chunk_bytes,
                        "strip_times": spec.strip_times, "nearest_check_every": spec.nearest_check_every,
                        "chunk": c, "pairs": size, "steps": steps, "sampler": sampler,
                        "variance": variance, "times": np.asarray(times).tolist()}, seed=seed)
            save_torch(chunk, path)
        chunks.append(chunk)
    return _summarise(chunks, integrator=grid, indices=indices, spec=spec, seed=seed,
                      seconds=time.perf_counter() - start, sampler=sampler)


def _not_measured(method: str) -> tuple[Crossing, CurveFit]:
    """The crossing and fit of a curve a deterministic sampler does not have (every value NaN)."""
    nan = math.nan
    return (Crossing(time=nan, low=nan, high=nan, confidence=nan),
            CurveFit(method=method, time=nan, low=nan, high=nan, confidence=nan, params={},
                     log_likelihood=nan, n_boot=0))


def _summarise(chunks: Sequence[dict], *, integrator: DDPMAncestral, indices: np.ndarray, spec: RegimesSpec,
               seed: int, seconds: float, sampler: str = "ddpm") -> CloningResult:
    """Estimates from the raw per-pair measurements of every chunk (pairs concatenated in chunk order)."""
    def cat(key: str, dim: int = 0) -> torch.Tensor:
        return torch.cat([c[key] for c in chunks], dim=dim)

    same_class = cat("same_class", 1).to(torch.float64)
    same_point = cat("same_point", 1).to(torch.float64)
    t_hat = cat("t_collapse").to(torch.float64)
    times_b = integrator.times.numpy()[indices]
    steps_k = np.asarray(integrator.ddpm_steps)[indices]
    n = int(same_class.shape[1])

    # one bootstrap stream per estimate, so adding an estimate changes no other
    streams = (torch.Generator().manual_seed(derived_seed(seed, "bootstrap", i)) for i in itertools.count())

    def next_gen() -> torch.Generator:
        return next(streams)

    if indices.size:
        t_s = crossing_with_interval(times_b, same_class, level=PHI_SPECIATION_LEVEL, n_boot=spec.n_boot,
                                     generator=next_gen())
        t_c = crossing_with_interval(times_b, same_point, level=PHI_COLLAPSE_LEVEL, n_boot=spec.n_boot,
                                     generator=next_gen())
        fit = fit_speciation_theory(times_b, same_class, n_boot=spec.n_boot, generator=next_gen())
        logi = fit_speciation_logistic(times_b, same_class, n_boot=spec.n_boot, generator=next_gen(),
                                       level=PHI_SPECIATION_LEVEL)
        col = fit_collapse_logistic(times_b, same_point, n_boot=spec.n_boot, generator=next_gen(),
                                    level=PHI_COLLAPSE_LEVEL)
    else:  # deterministic sampler: the trunk measures only (same bootstrap streams below either way)
        (t_s, fit), (t_c, col) = _not_measured("gm_theory"), _not_measured("logistic")
        logi = _not_measured("logistic")[1]
        for _ in range(5):
            next_gen()
    median_boot = _bootstrap_median(t_hat, n_boot=spec.n_boot, generator=next_gen())
    k_big = integrator.n_steps
    return CloningResult(
        branch_steps=steps_k,
        branch_times=times_b,
        phi=same_class.mean(dim=1).numpy(),
        phi_se=_standard_errors(same_class, n_boot=spec.n_boot, generator=next_gen()),
        phi_c=same_point.mean(dim=1).numpy(),
        phi_c_se=_standard_errors(same_point, n_boot=spec.n_boot, generator=next_gen()),
        t_speciation=t_s,
        t_collapse_clones=t_c,
        speciation_fit=fit,
        speciation_logistic=logi,
        collapse_fit=col,
        t_collapse=t_hat.numpy(),
        t_collapse_median_se=median_boot,
        memorisation=cat("memorisation").numpy(),
        confidence=cat("confidence").numpy(),
        labels=cat("labels").numpy(),
        n_pairs=n,
        n_steps=k_big,
        score_evaluations=int(chunks[0]["score_evaluations"]),
        restart_score_evaluations=restart_evaluations(indices.tolist(), k_big),
        seconds=seconds,
        chunks=len(chunks),
        strip=list(chunks[0]["strip"]),
        samples=cat("samples"),
        neighbours=cat("neighbours"),
        sampler=sampler,
    )


def _standard_errors(agree: torch.Tensor, *, n_boot: int, generator: torch.Generator) -> np.ndarray:
    """Bootstrap standard error per branch time of ``agree (B, N)`` (empty when B = 0)."""
    if agree.shape[0] == 0:
        return np.zeros(0)
    return bootstrap_standard_error(agree, n_boot=n_boot, generator=generator).numpy()


def _bootstrap_median(values: torch.Tensor, *, n_boot: int, generator: torch.Generator) -> float:
    """Bootstrap standard error of the median of ``values`` ``(N,)`` (resampled with replacement)."""
    if values.numel() < 2:
        return math.nan
    idx = torch.randint(0, values.numel(), (n_boot, values.numel()), generator=generator)
    return float(values[idx].median(dim=1).values.std(unbiased=True))


def quality_verdict(*, phi_t_min: float, confident_fraction: float, real_confident_fraction: float,
                    spec: RegimesSpec, deterministic: bool = False) -> tuple[bool, str]:
    """The quality gate of a measured model: ``(ok, reason)``.

    A model is flagged when clones branched at the smallest branch time disagree in class more often than
    ``1 - quality_phi_min`` (they share almost all their history, so disagreement means the classifier
    cannot label the samples consistently), or when the classifier is confident (max probability
    >= 0.9) on a fraction of the generated samples more than ``quality_confidence_gap`` below the same
    fraction on held-out real images.  A ``deterministic`` sampler has no clones (phi NaN): only the
    second test applies.
    """
    reasons = []
    if math.isnan(phi_t_min) and deterministic:
        pass  # no clones: the gate rests on the confident fraction alone
    elif not phi_t_min >= spec.quality_phi_min:
        reasons.append(f"phi(t_min) = {phi_t_min:.3f} < {spec.quality_phi_min}")
    if not np.isfinite(real_confident_fraction):
        reasons.append("no held-out confident fraction recorded with the classifier")
    elif not confident_fraction >= real_confident_fraction - spec.quality_confidence_gap:
        reasons.append(f"confident fraction {confident_fraction:.3f} < real {real_confident_fraction:.3f} "
                       f"- {spec.quality_confidence_gap}")
    return (not reasons, "; ".join(reasons) if reasons else "ok")


# ---------------------------------------------------------------------------- one sweep's plan
@dataclass(frozen=True)
class SweepPlan:
    """Everything that fixes one cloning sweep besides the score and the data: its branch times, pairs,
    sampler, seed, and the key that names its folder of resumable chunks."""

    times: np.ndarray
    pairs: int
    steps: int
    variance: str
    seed: int
    chunk_key: str
    sampler: str = "ddpm"


def plan_sweep(spec: RegimesSpec, *, dataset: str, model: str, n: int, subset_n: int, t_s_theory: float,
               t_c_entropy: float, base_seed: int, inputs_digest: str, pairs: int | None = None,
               steps: int | None = None, variance: str | None = None, sampler: str = "ddpm") -> SweepPlan:
    """The plan of the sweep of ``model`` on the first ``n`` of the ``subset_n`` images of ``dataset``.

    ``pairs``, ``steps``, ``variance``: the per-model values the workflow resolves (``None``: from
    ``spec``).  The seed is one stream per dataset, shared by every model and n on purpose (pair j starts
    from the same noise in the exact and the learned sweeps, and at every n: a paired comparison).  The
    chunk key hashes everything that determines the chunks, ``inputs_digest`` (the bytes of the subset,
    classifier and checkpoint) included, so a changed input starts a fresh folder.  A ``sampler`` other
    than ddpm runs at the whole subset only, with ``n_pairs_sampler`` pairs unless ``pairs`` is given.
    """
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler {sampler!r} is not valid; choose one of {list(SAMPLERS)}")
    if sampler != "ddpm" and n != subset_n:
        raise ConfigError(f"regimes.samplers: the sampler {sampler!r} is compared at n = {subset_n} (the "
                          f"whole subset of {dataset}) only, not at n = {n}")
    if model == "unet" and n != subset_n:
        # train-ddpm fits the UNet on the whole prepared subset: phi_C, t̂_C and the memorisation ratio
        # must be measured against that same training set
        raise ConfigError(f"model 'unet' was trained on all {subset_n} images of {dataset}; measure it at "
                          f"n = {subset_n}, not {n}")
    times = spec.branch_times(t_speciation=t_s_theory, t_collapse=t_c_entropy, schedule=DDPMSchedule())
    if pairs is None:
        pairs = spec.sweep_pairs(model, sampler=sampler, n=n, subset_n=subset_n, dataset=dataset)
    steps = steps if steps is not None else spec.steps_for(model)
    variance = variance if variance is not None else spec.variance_for(model)
    seed = derived_seed(base_seed, "regimes-clone", dataset)
    key = {"model": model, "n": n, "seed": seed, "steps": steps, "variance": variance, "sampler": sampler,
           "times": times.tolist(), "chunk_pairs": spec.chunk_pairs, "strip_times": spec.strip_times,
           "max_chunk_bytes": spec.max_chunk_bytes, "check_every": spec.nearest_check_every,
           "files": inputs_digest}
    chunk_key = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return SweepPlan(times=times, pairs=int(pairs), steps=int(steps), variance=variance, seed=seed,
                     chunk_key=chunk_key, sampler=sampler)


# ---------------------------------------------------------------------------- the regimes table
# Columns of results/tables/regimes.csv, grouped by where they come from (the table's schema).
ROW_KEYS = ("dataset", "model", "sampler", "n", "d", "alpha", "Lambda", "t_s_theory")
SPECIATION_COLUMNS = ("t_s_fit", "t_s_fit_low", "t_s_fit_high", "lambda_eff", "lambda_eff_low",
                      "lambda_eff_high", "t_s_logistic", "t_s_logistic_low", "t_s_logistic_high",
                      "t_s_crossing", "t_s_crossing_low", "t_s_crossing_high")
ENTROPY_COLUMNS = ("t_c_entropy", "t_c_entropy_low", "t_c_entropy_high")
COLLAPSE_COLUMNS = ("t_c_phi_c_fit", "t_c_phi_c_fit_low", "t_c_phi_c_fit_high", "t_c_phi_c", "t_c_phi_c_low",
                    "t_c_phi_c_high", "t_c_hat_mean", "t_c_hat_se", "t_c_hat_std", "t_c_hat_median",
                    "t_c_hat_median_se")
QUALITY_COLUMNS = ("memorised_fraction", "memorisation_ratio_median", "confident_fraction",
                   "real_confident_fraction", "class_one_fraction", "t_min", "phi_t_min", "phi_t_min_se",
                   "classifier_accuracy", "pairs", "branch_times", "steps")
REGIMES_COLUMNS = (*ROW_KEYS, *SPECIATION_COLUMNS, *ENTROPY_COLUMNS, *COLLAPSE_COLUMNS, *QUALITY_COLUMNS,
                   "quality_ok", "quality", "seed", "sweep_seconds", "checkpoint_step")


def regimes_row(*, dataset: str, model: str, summary: dict, entropy: pd.DataFrame, lam: float,
                spec: RegimesSpec, seed: int) -> dict:
    """One row of the regimes table (:data:`REGIMES_COLUMNS`) from a sweep's summary, the f^e table of its
    training prefix and the subset's Λ, with the quality verdict of :func:`quality_verdict`."""
    from diffusion_regimes.spectrum import t_speciation

    sampler = str(summary.get("sampler", "ddpm"))
    ok, reason = quality_verdict(phi_t_min=summary["phi_t_min"],
                                 confident_fraction=summary["confident_fraction"],
                                 real_confident_fraction=summary["real_confident_fraction"], spec=spec,
                                 deterministic=sampler in DETERMINISTIC_SAMPLERS)
    first = entropy.iloc[0]
    row = {
        "dataset": dataset, "model": model, "sampler": sampler, "n": int(first["n"]), "d": int(first["d"]),
        "alpha": float(first["alpha"]), "Lambda": lam,
        "t_s_theory": t_speciation(lam),
        **{key: summary[key] for key in SPECIATION_COLUMNS},
        **{key: float(first[key]) for key in ENTROPY_COLUMNS},
        **{key: summary[key] for key in (*COLLAPSE_COLUMNS, *QUALITY_COLUMNS)},
        "quality_ok": ok, "quality": reason, "seed": seed, "sweep_seconds": summary["seconds"],
        # the DDPM optimiser step of the UNet checkpoint (empty for the exact score)
        "checkpoint_step": summary.get("checkpoint_step"),
    }
    return {key: row[key] for key in REGIMES_COLUMNS}


def regimes_table(rows: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The rows of every (dataset, model, n), in the table's column order, sorted."""
    frame = pd.concat(list(rows), ignore_index=True)
    missing = [c for c in REGIMES_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"regimes rows lack the column(s) {missing}: they were written by an older "
                          "version; re-run the regimes_row jobs (snakemake --forcerun regimes_row)")
    order = {name: i for i, name in enumerate(SAMPLERS)}
    frame = frame[list(REGIMES_COLUMNS)]
    frame = frame.sort_values(["dataset", "model", "sampler", "n"],
                              key=lambda col: col.map(order) if col.name == "sampler" else col)
    return frame.reset_index(drop=True)


__all__ = [
    "MODELS",
    "N_ALL",
    "REGIMES_COLUMNS",
    "CloningResult",
    "RegimesSpec",
    "SweepPlan",
    "branch_indices",
    "cloning_experiment",
    "nearest_check_points",
    "plan_sweep",
    "quality_verdict",
    "regimes_row",
    "regimes_table",
    "sweep_integrator",
]
