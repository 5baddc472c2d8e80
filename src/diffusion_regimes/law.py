"""The collapse law on real data: t_C over a grid of resolutions and training-set sizes.

Theory (docs/science.md section 2) predicts the collapse time of the exact empirical score from the excess
entropy f^e(t) of the training set alone; for Gaussian data it is a function of alpha = log(n) / d.  A
*cell* of the grid is the prepared subset area-pooled to ``side x side`` pixels
(:meth:`PreparedSubset.pooled`; a data set of its own, with its own Λ) and cut to its first ``n`` images.
Per cell, :func:`law_cell` measures

* Λ of the pooled subset (all of its images: the data's spectrum, not the prefix's) and ½ log Λ (NaN when
  Λ <= 1: an 8 x 8 MNIST pair has Λ ≈ 0.3 and no speciation time);
* t_C from f^e of the cell's training set, with the band of the ±2 SE curves;
* t_C sampled with the exact score: the logistic fit of φ_C(t) (crossing 1/2, percentile interval) and the
  mean t̂_C of nearest-neighbour tracking with its standard error.

The sweep needs no classifier: only φ_C and t̂_C are read, so samples are labelled with the class of their
nearest training image (:func:`nearest_class_labeller`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from diffusion_regimes.entropy import collapse_time, excess_entropy
from diffusion_regimes.measures import nearest_index
from diffusion_regimes.regimes import Labeller, RegimesSpec, cloning_experiment
from diffusion_regimes.schedule import DDPMSchedule
from diffusion_regimes.score import EmpiricalScore
from diffusion_regimes.seeds import derived_seed
from diffusion_regimes.spectrum import channel_views, covariance_spectrum, t_speciation

LAW_COLUMNS = ("dataset", "resolution", "n", "d", "alpha", "Lambda", "t_s_theory",
               "t_c_entropy", "t_c_entropy_low", "t_c_entropy_high",
               "t_c_phi_c_fit", "t_c_phi_c_fit_low", "t_c_phi_c_fit_high",
               "t_c_hat_mean", "t_c_hat_se", "memorised_fraction", "pairs", "branch_times", "steps",
               "seed", "cell_seconds")
"""Columns of results/tables/regimes_law.csv, one row per (dataset, resolution, n)."""


def nearest_class_labeller(training: torch.Tensor, labels: torch.Tensor, *, classes: int = 2,
                           max_chunk_bytes: int = 64 * 2**20) -> Labeller:
    """``labeller(x)``: one-hot class of each sample's nearest training image (at t = 0)."""
    data = training.reshape(training.shape[0], -1).to(torch.float64)
    known = labels.reshape(-1).to(torch.long)

    def label(x: torch.Tensor) -> torch.Tensor:
        nearest = nearest_index(x, data, max_chunk_bytes=max_chunk_bytes)
        return torch.nn.functional.one_hot(known[nearest.cpu()], classes).to(torch.float64)

    return label


def top_eigenvalue_of(images: torch.Tensor) -> float:
    """Λ: the largest eigenvalue of the pixel-centred covariance of ``images (N, C, H, W)``, first channel
    (the convention of the spectra table and regimes.csv; dense: a pooled subset has d <= 1024)."""
    return float(covariance_spectrum(channel_views(images)[0])[0])


def law_cell(subset, *, side: int, n: int, spec: RegimesSpec, seed: int, device: torch.device | str = "cpu",
             chunk_dir: str | Path | None = None, progress: bool = False) -> dict:
    """One cell of the collapse-law grid (module docstring): ``subset`` is the prepared subset at its
    stored resolution; returns the row (:data:`LAW_COLUMNS`).  The f^e distances and the exact score run
    on ``device``."""
    start = time.perf_counter()
    stored = subset.shape[-1]
    pooled = subset if side == stored else subset.pooled(side)
    lam = top_eigenvalue_of(pooled.images)
    train = pooled.prefix(n)
    flat = train.flat(torch.float64)
    times = np.geomspace(spec.law_entropy_t_min, spec.entropy_t_max, spec.entropy_times)
    entropy = excess_entropy(flat.to(device), times=times, n_prime=spec.n_prime,
                             generator=torch.Generator().manual_seed(derived_seed(seed, "law-entropy")),
                             max_chunk_bytes=spec.max_chunk_bytes)
    t_c = collapse_time(entropy)
    branch = spec.law_branch_times(t_collapse=t_c.time, schedule=DDPMSchedule())
    sweep = cloning_experiment(score=EmpiricalScore(flat.to(device), max_chunk_bytes=spec.max_chunk_bytes),
                               training=train.images, spec=spec, n_pairs=spec.law_pairs, steps=spec.law_steps,
                               times=branch, seed=derived_seed(seed, "law-sweep"),
                               labeller=nearest_class_labeller(train.images, train.labels),
                               chunk_dir=chunk_dir, progress=progress)
    summary = sweep.summary()
    return {
        "dataset": subset.dataset, "resolution": side, "n": n, "d": train.d, "alpha": math.log(n) / train.d,
        "Lambda": lam, "t_s_theory": t_speciation(lam) if lam > 1.0 else math.nan,
        "t_c_entropy": t_c.time, "t_c_entropy_low": t_c.low, "t_c_entropy_high": t_c.high,
        "t_c_phi_c_fit": summary["t_c_phi_c_fit"], "t_c_phi_c_fit_low": summary["t_c_phi_c_fit_low"],
        "t_c_phi_c_fit_high": summary["t_c_phi_c_fit_high"],
        "t_c_hat_mean": summary["t_c_hat_mean"], "t_c_hat_se": summary["t_c_hat_se"],
        "memorised_fraction": summary["memorised_fraction"], "pairs": sweep.n_pairs,
        "branch_times": int(np.asarray(sweep.branch_times).size), "steps": sweep.n_steps, "seed": seed,
        "cell_seconds": time.perf_counter() - start,
    }


__all__ = ["LAW_COLUMNS", "law_cell", "nearest_class_labeller", "top_eigenvalue_of"]
