import math

import numpy as np
import pytest
import torch

from diffusion_regimes.measures import (
    bootstrap_standard_error,
    bootstrap_weights,
    crossing_time,
    crossing_with_interval,
)


def test_bootstrap_weights_are_counts():
    w = bootstrap_weights(7, n_boot=5, generator=torch.Generator().manual_seed(0))
    assert w.shape == (5, 7) and torch.all(w.sum(dim=1) == 7)


def test_bootstrap_se_matches_binomial_formula():
    gen = torch.Generator().manual_seed(0)
    p, n = 0.8, 4000
    agree = (torch.rand(3, n, generator=gen) < p).double()
    se = bootstrap_standard_error(agree, n_boot=2000, generator=gen)
    exact = math.sqrt(p * (1 - p) / n)
    # the bootstrap SE of a proportion has ~1/sqrt(2 n_boot) ~ 1.6% relative error; allow 10%
    assert torch.allclose(se, torch.full((3,), exact, dtype=torch.float64), rtol=0.1)


def test_crossing_time_linear_interpolation_and_largest():
    t = np.array([3.0, 1.0, 2.0, 0.0])
    v = np.array([0.5, 0.9, 0.7, 1.0])
    # sorted: t=0:1.0, 1:0.9, 2:0.7, 3:0.5 -> 0.775 between t=1 and t=2 at 1 + 0.125/0.2
    assert crossing_time(t, v, 0.775) == pytest.approx(1.625)
    assert math.isnan(crossing_time(t, v, 0.2))
    # two crossings: the largest time wins
    assert crossing_time(np.arange(5.0), np.array([1, 0, 1, 0, 0.0]), 0.5) == pytest.approx(2.5)


def test_crossing_interval_brackets_truth():
    gen = torch.Generator().manual_seed(3)
    times = np.linspace(0, 4, 9)
    prob = 1 - 0.5 * (1 - np.exp(-times))  # crosses 0.775 at t = log(1 / 0.55)
    agree = (torch.rand(9, 3000, generator=gen) < torch.tensor(prob)[:, None]).double()
    cr = crossing_with_interval(times, agree, level=0.775, n_boot=400, generator=gen)
    assert cr.low <= cr.time <= cr.high
    assert cr.low - 0.05 < math.log(1 / 0.55) < cr.high + 0.05
