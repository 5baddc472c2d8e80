"""The training-time estimators (docs/science.md, training time): the onset fit and the power law."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffusion_regimes.errors import DataError
from diffusion_regimes.estimators import fit_onset, fit_power_law, onset_curve


def _synthetic_counts(steps: np.ndarray, *, tau: float, width: float, samples: int, seed: int) -> np.ndarray:
    """Binomial counts of a logistic onset in log steps, p(tau) = 1/2."""
    p = 1.0 / (1.0 + np.exp(-np.log(steps / tau) / width))
    return np.random.default_rng(seed).binomial(samples, p)


def test_onset_recovers_a_known_onset_within_its_interval() -> None:
    # 13 checkpoints log-spaced over three decades, 64 samples each: the memorisation protocol.  The
    # parametric-bootstrap 95 % interval must contain the true onset in about 95 % of synthetic series;
    # over 40 series the count of misses is Binomial(40, 0.05), mean 2, P(> 7 misses) < 2e-4.
    steps = np.unique(np.geomspace(100, 100_000, 13).round())
    tau, width = 3000.0, 0.6
    misses, rel_errors, widths = 0, [], []
    for seed in range(40):
        counts = _synthetic_counts(steps, tau=tau, width=width, samples=64, seed=seed)
        fit = fit_onset(steps, counts, 64, n_boot=200, generator=torch.Generator().manual_seed(seed))
        assert fit.censored == "none"
        misses += not fit.low <= tau <= fit.high
        rel_errors.append(math.log(fit.time / tau))
        widths.append(math.log(fit.high / fit.low))
    assert misses <= 7
    # and the intervals are informative: 2 x 1.96 x ~0.07 = 0.28 in log (measured median 0.28), not wide
    # enough to cover by being vague
    assert np.median(widths) < 0.45
    # the estimate is unbiased in log to well within its spread: mean of 40 log errors, each with a
    # standard deviation ~0.1 (Fisher information of 13 x 64 Bernoulli draws on this curve), below 0.08
    assert abs(np.mean(rel_errors)) < 0.08


def test_onset_at_another_level_and_the_fitted_curve() -> None:
    steps = np.unique(np.geomspace(50, 50_000, 16).round())
    # no noise (expected counts of 10^6 samples): the fit is the curve itself
    p = 1.0 / (1.0 + np.exp(-np.log(steps / 2000.0) / 0.5))
    counts = np.rint(p * 1_000_000)
    fit = fit_onset(steps, counts, 1_000_000, level=0.1, n_boot=20,
                    generator=torch.Generator().manual_seed(0))
    # p = 0.1 at log(s / 2000) = 0.5 logit(0.1)
    assert fit.time == pytest.approx(2000.0 * math.exp(0.5 * math.log(0.1 / 0.9)), rel=1e-3)
    assert fit.width == pytest.approx(0.5, rel=1e-3)
    assert np.allclose(onset_curve(steps, fit), p, atol=1e-3)


def test_onset_censored_cases() -> None:
    steps = np.array([100.0, 300.0, 1000.0, 3000.0])
    gen = torch.Generator().manual_seed(0)
    never = fit_onset(steps, np.array([0, 1, 3, 10]), 64, generator=gen)
    assert never.censored == "right" and never.low == 3000.0 and math.isinf(never.time)
    always = fit_onset(steps, np.array([40, 50, 60, 64]), 64, generator=gen)
    assert always.censored == "left" and always.high == 100.0
    # a jump from 0 to all between two checkpoints: no width can be fitted, the onset is bracketed
    jump = fit_onset(steps, np.array([0, 0, 64, 64]), 64, generator=gen)
    assert jump.censored == "interval" and (jump.low, jump.high) == (300.0, 1000.0)
    with pytest.raises(DataError):
        fit_onset(steps, np.array([0, 70, 1, 2]), 64, generator=gen)


def test_power_law_recovers_gamma_and_its_interval_covers() -> None:
    # tau = 40 n^1 with log-normal errors of known size; the 95 % interval on gamma must cover 1 in about
    # 95 % of 200 draws (misses ~ Binomial(200, 0.05): mean 10, P(> 20) < 0.002)
    n = np.array([16, 16, 32, 32, 64, 128, 256], dtype=float)
    sigma = 0.15
    z = 1.959963984540054
    rng = np.random.default_rng(1)
    misses, gammas = 0, []
    for _ in range(200):
        tau = 40.0 * n * np.exp(sigma * rng.standard_normal(n.size))
        fit = fit_power_law(n, tau, tau * np.exp(-z * sigma), tau * np.exp(z * sigma))
        misses += not fit.gamma_low <= 1.0 <= fit.gamma_high
        gammas.append(fit.gamma)
    assert misses <= 20
    # WLS standard error: sigma / sqrt(sum (log n - mean)^2) = 0.15 / 2.17 = 0.069; the mean of 200 fits
    # lies within 0.069 / sqrt(200) * 4 = 0.02 of the truth
    assert abs(np.mean(gammas) - 1.0) < 0.02


def test_power_law_leaves_out_censored_points() -> None:
    n = np.array([16, 32, 64])
    fit = fit_power_law(n, np.array([100.0, 200.0, math.inf]), np.array([80.0, 160.0, 500.0]),
                        np.array([120.0, 240.0, math.inf]))
    assert fit.points == 2 and fit.gamma == pytest.approx(1.0)
    assert math.isnan(fit_power_law(n[:1], np.array([1.0]), np.array([0.5]), np.array([2.0])).gamma)
