"""Speciation and collapse measured on a model: the cloning experiment of SCIENCE.md section 5.

One function, :func:`cloning_experiment`, serves every model: it receives a score (the exact empirical
score -> model ``exact``, the ideal model; or a trained UNet through :class:`score.NoisePredictorScore` ->
model ``unet``), the training set (for nearest training points) and a labeller (the classifier).  It runs
the shared-trunk cloning sweep from pure noise on the DDPM grid, classifies both members of every pair,
tracks the nearest training point along the trunk, and returns per-branch phi / phi_C with bootstrap
standard errors, per-trajectory t̂_C, the crossings and the memorisation ratios.

Sweeps run on image-shaped tensors ``(N, C, H, W)`` in float64 (the adapter casts to the network's dtype).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import torch

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
    DDPMAncestral,
    Score,
    StepRecorder,
    clone_sweep,
    restart_evaluations,
)
from diffusion_regimes.errors import ConfigError
from diffusion_regimes.schedule import DDPMSchedule

N_ALL = "all"
"""``ideal.n_values`` entry standing for the whole prepared subset (its n differs between datasets)."""

NValues = tuple[int | str, ...]


@dataclass(frozen=True)
class IdealSpec:
    """The ``ideal:`` config section (cloning sweeps and collapse measurements on real data)."""

    datasets: tuple[str, ...] = ("mnist",)  # prepared subsets (keys of the top-level datasets: mapping)
    # training-set sizes: even prefixes of the prepared subset, or "all"; one list for every dataset, or a
    # mapping dataset -> list (datasets left out use ["all"]).  Resolved by :meth:`n_values_for`.
    n_values: NValues | dict[str, NValues] = (100, N_ALL)
    n_pairs: int = 32  # clone pairs per branch time (paper: 4 000)
    branch_every: int = 50  # DDPM steps between branch times (paper: 50)
    branch_max_step: int = 600  # largest DDPM branch step k (paper: 1000, i.e. 20 branch times)
    n_boot: int = 400  # bootstrap resamples for standard errors and crossing intervals
    max_chunk_bytes: int = 64 * 2**20  # bound on the (batch, training chunk) distance block
    entropy_times: int = 20  # times of the f^e(t) curve, log-spaced between entropy_t_min and entropy_t_max
    entropy_t_min: float = 0.02
    entropy_t_max: float = 3.0
    # "geometric": the log-spaced grid above; "ddpm_steps": the times of DDPM steps L - s, L - 2s, ..., s
    # with s = entropy_step_every (the paper's authors: s = 50, steps 950 ... 50)
    entropy_grid: Literal["geometric", "ddpm_steps"] = "geometric"
    entropy_step_every: int = 50
    nearest_check_every: int = 1  # t̂_C: nearest index tested every so many DDPM steps (authors: 50)
    n_prime: int = 2000  # noisy samples of the excess-entropy estimate (paper: 250 000 - 400 000)
    strip_times: int = 6  # images per row of the strip figure
    threads: int = 1  # workflow only: CPU threads of each sweep / entropy job (does not change results)

    def n_values_for(self, dataset: str, *, subset_n: int) -> tuple[int, ...]:
        """The training-set sizes measured on ``dataset`` whose prepared subset holds ``subset_n`` images.

        ``"all"`` becomes ``subset_n``; the result is ascending without repeats.  A size above ``subset_n``
        or an odd one (unbalanced classes) is a :class:`ConfigError`.
        """
        chosen = self.n_values.get(dataset, (N_ALL,)) if isinstance(self.n_values, dict) else self.n_values
        sizes = set()
        for value in chosen:
            if value == N_ALL:
                sizes.add(int(subset_n))
            elif isinstance(value, int) and not isinstance(value, bool) and value >= 2 and value % 2 == 0:
                if value > subset_n:
                    raise ConfigError(f"ideal.n_values: n = {value} exceeds the {subset_n} images of the "
                                      f"prepared subset {dataset!r}; use {N_ALL!r} for the whole subset")
                sizes.add(value)
            else:
                raise ConfigError(f"ideal.n_values ({dataset}): {value!r} is not valid; give even "
                                  f"integers >= 2 or {N_ALL!r}")
        return tuple(sorted(sizes))

    def branch_steps(self, n_steps: int = 1000) -> tuple[int, ...]:
        """DDPM steps ``k`` at which clones branch, ascending: ``branch_every, 2 branch_every, ...``."""
        top = min(self.branch_max_step, n_steps)
        return tuple(range(self.branch_every, top + 1, self.branch_every))


@dataclass(frozen=True)
class CloningResult:
    """Outcome of :func:`cloning_experiment` (times are continuous OU times, SCIENCE.md section 1).

    Per branch b (ascending t): ``phi``, ``phi_se`` (same class), ``phi_c``, ``phi_c_se`` (same nearest
    training point at t = 0).  Per trunk trajectory: ``t_collapse`` (t̂_C), ``memorisation`` (nearest /
    second-nearest distance at t = 0), the generated ``samples`` and their two nearest training points
    ``neighbours`` (indices into the training set, nearest first).
    """

    branch_steps: np.ndarray  # (B,) DDPM k
    branch_times: np.ndarray  # (B,) t(k)
    phi: np.ndarray
    phi_se: np.ndarray
    phi_c: np.ndarray
    phi_c_se: np.ndarray
    t_speciation: Crossing  # phi crosses 0.775
    t_collapse_clones: Crossing  # phi_C crosses 0.5
    t_collapse: np.ndarray  # (N,) t̂_C per trunk trajectory
    memorisation: np.ndarray  # (N,) distance ratio of the trunk end states
    n_pairs: int
    n_steps: int
    score_evaluations: int  # per pair, shared trunk
    restart_score_evaluations: int  # per pair, had every branch restarted from noise
    seconds: float
    strip: list[tuple[int, float, torch.Tensor]] = field(default_factory=list)  # (k, t, rows of pair 0)
    samples: torch.Tensor | None = None  # (N, C, H, W) trunk end states at t = 0
    neighbours: torch.Tensor | None = None  # (N, 2) long: nearest and second-nearest training index

    def branch_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "k": self.branch_steps,
                "t": self.branch_times,
                "phi": self.phi,
                "phi_se": self.phi_se,
                "phi_c": self.phi_c,
                "phi_c_se": self.phi_c_se,
                "pairs": self.n_pairs,
            }
        )

    def summary(self) -> dict[str, float]:
        tc = self.t_collapse
        return {
            "t_s_measured": self.t_speciation.time,
            "t_s_low": self.t_speciation.low,
            "t_s_high": self.t_speciation.high,
            "t_c_clones": self.t_collapse_clones.time,
            "t_c_clones_low": self.t_collapse_clones.low,
            "t_c_clones_high": self.t_collapse_clones.high,
            "t_c_hat_mean": float(tc.mean()),
            "t_c_hat_se": float(tc.std(ddof=1) / math.sqrt(tc.size)) if tc.size > 1 else float("nan"),
            "t_c_hat_std": float(tc.std(ddof=1)) if tc.size > 1 else float("nan"),
            "memorisation_ratio_median": float(np.median(self.memorisation)),
            "memorised_fraction": float((self.memorisation < MEMORISED_RATIO).mean()),
            "pairs": self.n_pairs,
            "branch_times": int(self.branch_steps.size),
            "steps": self.n_steps,
            "score_evaluations_per_pair": self.score_evaluations,
            "restart_score_evaluations_per_pair": self.restart_score_evaluations,
            "seconds": self.seconds,
        }


def cloning_experiment(
    *,
    score: Score,
    training: torch.Tensor,
    labeller: Callable[[torch.Tensor], torch.Tensor],
    spec: IdealSpec,
    generator: torch.Generator,
    schedule: DDPMSchedule | None = None,
    progress: bool = False,
) -> CloningResult:
    """Shared-trunk cloning from pure noise on the DDPM grid, measured (SCIENCE.md section 5).

    ``training``: ``(n, C, H, W)`` (or ``(n, d)``) the model's training set, used for nearest training
    points (scaled by e^{-t} along the trunk).  ``labeller``: ``(M, C, H, W) -> (M,)`` class labels.
    The ``spec.n_pairs`` trunks start from N(0, I) at k = L; one clone branches at each of
    ``spec.branch_steps``; pair (trunk, clone) gives one sample of phi and phi_C at that branch time.
    """
    schedule = schedule or DDPMSchedule()
    integrator = DDPMAncestral(schedule)
    big_l = schedule.n_steps
    steps_k = spec.branch_steps(big_l)
    n = spec.n_pairs
    shape = training.shape[1:]
    data = training.reshape(training.shape[0], -1).to(torch.float64)
    start = time.perf_counter()
    x = torch.randn((n, *shape), dtype=torch.float64, generator=generator)

    # nearest training index of each trunk trajectory at every grid time (training set scaled by e^{-t})
    nearest = StepRecorder(lambda s, t: nearest_index(s, data, t=t, max_chunk_bytes=spec.max_chunk_bytes),
                           n_trunk=n)
    nearest(0, float(integrator.times[0]), x)
    # pair 0 (trunk and every alive clone) at a few times, for the image strip
    strip_k = np.unique(np.linspace(0, big_l, spec.strip_times).round().astype(int))
    strip_rec = StepRecorder(lambda s, t: s[0::n].clone(), n_trunk=n, part="all",
                             steps=[big_l - k for k in strip_k])
    strip_rec(0, float(integrator.times[0]), x)
    sweep = clone_sweep(x, integrator=integrator, score=score, branch_indices=[big_l - k for k in steps_k],
                        generator=generator, hooks=[nearest, strip_rec], progress=progress)
    # clone_sweep sorts branch indices ascending = DDPM steps descending; reorder to ascending k (ascending t)
    first, second = sweep.pairs()  # (B, N, ...)
    order = np.argsort(np.array(sweep.branch_indices))[::-1].copy()
    first, second = first[order], second[order]
    b = len(steps_k)

    labels_trunk = labeller(sweep.trunk)
    labels_clones = labeller(second.reshape(b * n, *shape)).reshape(b, n)
    same_class = agreement(labels_trunk.unsqueeze(0).expand(b, n), labels_clones)
    near_trunk = nearest_index(sweep.trunk, data, max_chunk_bytes=spec.max_chunk_bytes)
    near_clones = nearest_index(second.reshape(b * n, *shape), data, max_chunk_bytes=spec.max_chunk_bytes)
    same_point = agreement(near_trunk.unsqueeze(0).expand(b, n), near_clones.reshape(b, n))

    times_b = np.array([schedule.time_of_step(k) for k in steps_k])
    boot = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    t_s = crossing_with_interval(times_b, same_class, level=PHI_SPECIATION_LEVEL, n_boot=spec.n_boot,
                                 generator=boot)
    t_c = crossing_with_interval(times_b, same_point, level=PHI_COLLAPSE_LEVEL, n_boot=spec.n_boot,
                                 generator=boot)
    grid_times, indices = nearest.stacked()
    strip = [(big_l - i, t, rows) for i, (t, rows) in sorted(strip_rec.records.items())]
    if data.shape[0] > 1:
        memo, neighbours = memorisation(sweep.trunk, data, max_chunk_bytes=spec.max_chunk_bytes)
    else:
        memo, neighbours = torch.zeros(n, dtype=torch.float64), torch.zeros((n, 2), dtype=torch.long)
    return CloningResult(
        branch_steps=np.array(steps_k),
        branch_times=times_b,
        phi=same_class.mean(dim=1).numpy(),
        phi_se=bootstrap_standard_error(same_class, n_boot=spec.n_boot, generator=boot).numpy(),
        phi_c=same_point.mean(dim=1).numpy(),
        phi_c_se=bootstrap_standard_error(same_point, n_boot=spec.n_boot, generator=boot).numpy(),
        t_speciation=t_s,
        t_collapse_clones=t_c,
        t_collapse=collapse_times(indices, grid_times, check_every=spec.nearest_check_every).numpy(),
        memorisation=memo.numpy(),
        n_pairs=n,
        n_steps=big_l,
        score_evaluations=sweep.score_evaluations,
        restart_score_evaluations=restart_evaluations([big_l - k for k in steps_k], big_l),
        seconds=time.perf_counter() - start,
        strip=strip,
        samples=sweep.trunk.detach().cpu(),
        neighbours=neighbours.cpu(),
    )
